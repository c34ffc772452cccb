// node:test reporter that prints the plain closing line CI reads: `N passed, N failed`.
// Skipped and todo tests are neither passed nor failed; they are counted on a line of their own.
export default async function* summary(source) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for await (const event of source) {
    if (event.data?.details?.type === 'suite') continue;
    if (event.type === 'test:pass') {
      if (event.data.skip || event.data.todo) skipped++;
      else passed++;
    }
    if (event.type === 'test:fail') {
      // A failing todo test does not fail the run: count it as skipped, as the runner does.
      if (event.data.todo) skipped++;
      else failed++;
    }
  }
  if (skipped) yield `\n${skipped} skipped`;
  yield `\n${passed} passed, ${failed} failed\n`;
}

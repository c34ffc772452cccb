// Child process for netlink-table.test.ts, run inside a throw-away netns (`ip netns exec NS node ...`):
// for each step of the JSON on stdin, replaces (or, with `check`, checks) the table with the step's
// plan over netlink in one batch, or, with `from`, takes it from `from` to the plan with the
// incremental change batch (encodeChangeBatch); prints one line per step: "ok" or "error <message>".
import { readFileSync } from 'node:fs';
import { NftNetlink } from '../../../src/enforce/backends/nft/netlink.js';
import { applyTableChange, replaceTable } from '../../../src/enforce/backends/nft/netlink-table.js';
import { incrementalScript } from '../../../src/enforce/incremental.js';
import type { RulesetPlan } from '../../../src/enforce/plan-model.js';

const { table, steps } = JSON.parse(readFileSync(0, 'utf8')) as { table: string; steps: { plan: RulesetPlan; check?: boolean; from?: RulesetPlan }[] };
const nl = NftNetlink.open();
if (!nl) {
  console.log('error netlink module unavailable');
  process.exit(0);
}
for (const s of steps) {
  try {
    if (s.from) {
      const d = incrementalScript(s.from, s.plan, { table });
      if (!d.incremental) throw new Error(`not incremental: ${d.reason}`);
      await applyTableChange(nl, d.netlink.change, table, s.plan.nflogGroup, d.netlink.existing);
    } else await replaceTable(nl, s.plan, table, { check: s.check });
    console.log('ok');
  } catch (e) {
    console.log(`error ${(e as Error).message}`);
  }
}
nl.close();

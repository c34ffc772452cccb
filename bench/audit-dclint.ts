// Benchmark: moat audit vs dclint (npm `dclint`) on the shared Compose corpus, side by side in one run.
//
//   npm install --prefix bench/.tools dclint      (once; bench/.tools/ is git-ignored)
//   node --import tsx bench/audit-dclint.ts [--rounds N] [--json]
//
// Both tools run in this process on the same 47 files, so neither pays for starting Node. dclint lints
// each file on its own; moat audits each project (an override group merged on its base, see GROUPS). moat runs the full audit: Compose resolution (.env, interpolation,
// anchors, profiles), every check, the reachability analysis and suppressions. The port-exposure
// findings of both are compared per file, service and port; every difference is classified.
// Results and the explanation of the differences: bench/README.md, section "Audit".
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runAudit, type Finding } from '../src/audit/index.js';
import { CORPUS, composeFilesUnder } from '../test/helpers/corpus.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const DCLINT = join(REPO, 'bench', '.tools', 'node_modules', 'dclint', 'dist', 'index.esm.js');

const args = process.argv.slice(2);
const rounds = Math.min(50, Math.max(1, Number(args[args.indexOf('--rounds') + 1]) || 5));
const asJson = args.includes('--json');

const walk = composeFilesUnder;

interface DcMessage {
  rule: string;
  line: number;
  message: string;
  data?: { serviceName?: string; portItem?: string };
}
interface DcResult {
  filePath: string;
  messages: DcMessage[];
}

if (!existsSync(DCLINT)) {
  console.error(`dclint not installed: run  npm install --prefix bench/.tools dclint`);
  process.exit(2);
}
if (!existsSync(CORPUS)) {
  console.error(`corpus not found at ${CORPUS}`);
  process.exit(2);
}
const { DCLinter } = (await import(pathToFileURL(DCLINT).href)) as { DCLinter: new (c: unknown) => { lintFiles(p: string[], r: boolean): DcResult[] } };
const dclintVersion = (JSON.parse(readFileSync(join(dirname(DCLINT), '..', 'package.json'), 'utf8')) as { version: string }).version;
const linter = new DCLinter({ rules: {}, quiet: false, debug: false, exclude: [] });

const files = walk(CORPUS);

/**
 * Override and extension files are not projects on their own (Compose rejects most of them alone): moat
 * audits each group once, merged on its base file (`-f base -f o1 -f o2 ...`), and keeps for each of
 * them the findings located in it. Every other file is audited alone. 47 files, 43 audit runs.
 */
const GROUPS: { base: string; dir: string }[] = [
  { base: join(CORPUS, 'mailcow-dockerized', 'docker-compose.yml'), dir: '/mailcow-dockerized/helper-scripts/' },
  { base: join(CORPUS, 'docker-elk', 'docker-compose.yml'), dir: '/docker-elk/extensions/' },
];

async function moatOnce(): Promise<Map<string, Finding[]>> {
  const out = new Map<string, Finding[]>();
  for (const f of files) {
    if (GROUPS.some((g) => f.includes(g.dir))) continue;
    out.set(f, (await runAudit({ composeFiles: [f], env: {} })).result.findings);
  }
  for (const g of GROUPS) {
    const members = files.filter((f) => f.includes(g.dir));
    const r = await runAudit({ composeFiles: [g.base, ...members], env: {} });
    for (const m of members) out.set(m, r.result.findings.filter((x) => x.pos?.file === m));
  }
  return out;
}

function dclintOnce(): DcResult[] {
  // dclint prints its own progress to the console; keep the bench output readable.
  const log = console.log;
  const info = console.info;
  const warn = console.warn;
  const error = console.error;
  console.log = console.info = console.warn = console.error = () => {};
  try {
    return linter.lintFiles(files, false);
  } finally {
    console.log = log;
    console.info = info;
    console.warn = warn;
    console.error = error;
  }
}

// Warm-up (JIT, file cache), then timed rounds, interleaved so both see the same machine load.
await moatOnce();
dclintOnce();
let moatMs = 0;
let dclintMs = 0;
let moatFindings = new Map<string, Finding[]>();
let dcResults: DcResult[] = [];
for (let i = 0; i < rounds; i++) {
  let t = performance.now();
  moatFindings = await moatOnce();
  moatMs += performance.now() - t;
  t = performance.now();
  dcResults = dclintOnce();
  dclintMs += performance.now() - t;
}
const moatFps = (files.length * rounds) / (moatMs / 1000);
const dclintFps = (files.length * rounds) / (dclintMs / 1000);
const ratio = moatFps / dclintFps;

// ---------------------------------------------------------------- port-exposure comparison
const PORT_CHECKS = new Set(['port-all-interfaces', 'port-high-risk', 'port-publish-all']);
const rel = (f: string) => relative(CORPUS, f);
type Row = { file: string; service: string; line: number; text: string };
const moatPorts: Row[] = [];
for (const [file, fs] of moatFindings) {
  for (const f of fs) {
    if (!PORT_CHECKS.has(f.checkId) || !f.pos) continue;
    moatPorts.push({ file: rel(f.pos.file === file ? file : f.pos.file), service: f.service ?? '', line: f.pos.line, text: `${f.checkId}: ${f.message}` });
  }
}
const dcPorts: Row[] = [];
for (const r of dcResults) {
  for (const m of r.messages) {
    if (m.rule !== 'no-unbound-port-interfaces') continue;
    dcPorts.push({ file: rel(r.filePath), service: m.data?.serviceName ?? '', line: m.line, text: m.data?.portItem ?? m.message });
  }
}
const raw = new Map<string, string[]>();
const lineOf = (file: string, n: number) => {
  let lines = raw.get(file);
  if (!lines) raw.set(file, (lines = readFileSync(join(CORPUS, file), 'utf8').split('\n')));
  return (lines[n - 1] ?? '').trim();
};
/** dclint reports the line of the service's `ports:` key or of the item; match on file, service and the port text. */
const key = (r: Row) => `${r.file}|${r.service}`;
const byKey = (rows: Row[]) => {
  const m = new Map<string, Row[]>();
  for (const r of rows) m.set(key(r), [...(m.get(key(r)) ?? []), r]);
  return m;
};
const mk = byKey(moatPorts);
const dk = byKey(dcPorts);
interface Diff {
  side: 'dclint only' | 'moat only';
  file: string;
  service: string;
  what: string;
  reason: string;
}
const diffs: Diff[] = [];
const classifyDclintOnly = (r: Row): string => {
  const t = r.text;
  if (/\$\{[^}]*:-127\.0\.0\.1[:}]/.test(t) || /127\.0\.0\.1/.test(t)) return 'loopback through an interpolation default: dclint reads the text, not the resolved value (false positive)';
  if (/\$/.test(t)) return 'interpolated: dclint cannot tell which interface it resolves to';
  return 'unclassified';
};
for (const [k, drows] of dk) {
  const mrows = mk.get(k) ?? [];
  // Match each dclint port text with a moat finding whose entry line shows the same text.
  for (const d of drows) {
    const hit = mrows.find((m) => lineOf(m.file, m.line).includes(d.text));
    if (!hit) diffs.push({ side: 'dclint only', file: d.file, service: d.service, what: d.text, reason: classifyDclintOnly(d) });
  }
}
for (const [k, mrows] of mk) {
  const drows = dk.get(k) ?? [];
  for (const m of mrows) {
    const text = lineOf(m.file, m.line);
    const hit = drows.find((d) => text.includes(d.text));
    if (hit) continue;
    let reason = 'unclassified';
    if (/0\.0\.0\.0|\[::\]|"::"|host_ip/.test(text)) reason = 'explicit all-interfaces address (0.0.0.0, ::): dclint accepts any written interface';
    else if (/^-?\s*target:/.test(text) || /^-\s*target:/.test(text)) reason = 'long syntax without host_ip: dclint checks only the short syntax';
    else if (/\$/.test(text)) reason = 'interpolated: moat resolves the value (.env or default) and finds no interface in it';
    else if (/^-\s*"?\d+"?$/.test(text)) reason = 'container port only (random host port, all interfaces)';
    diffs.push({ side: 'moat only', file: m.file, service: m.service, what: `${text}  [${m.text}]`, reason });
  }
}

const summary = {
  files: files.length,
  rounds,
  moat: { ms: Math.round(moatMs), filesPerSecond: Math.round(moatFps), portFindings: moatPorts.length, findings: [...moatFindings.values()].reduce((a, f) => a + f.length, 0) },
  dclint: { version: dclintVersion, ms: Math.round(dclintMs), filesPerSecond: Math.round(dclintFps), portFindings: dcPorts.length },
  ratio: Number(ratio.toFixed(1)),
  differences: diffs,
};
if (asJson) console.log(JSON.stringify(summary, null, 2));
else {
  console.log(`corpus: ${files.length} Compose files, ${rounds} rounds each, in-process, interleaved`);
  console.log(`moat audit     ${summary.moat.filesPerSecond.toString().padStart(7)} files/s  (${summary.moat.ms} ms; ${summary.moat.findings} findings per round, ${moatPorts.length} port exposure)`);
  console.log(`dclint ${dclintVersion.padEnd(7)} ${summary.dclint.filesPerSecond.toString().padStart(7)} files/s  (${summary.dclint.ms} ms; ${dcPorts.length} no-unbound-port-interfaces)`);
  console.log(`ratio: moat is ${summary.ratio}x dclint ${ratio >= 10 ? '(>= 10x: ok)' : '(< 10x: BELOW TARGET)'}`);
  console.log(`\nport-exposure differences (${diffs.length}):`);
  const groups = new Map<string, Diff[]>();
  for (const d of diffs) groups.set(`${d.side}: ${d.reason}`, [...(groups.get(`${d.side}: ${d.reason}`) ?? []), d]);
  for (const [g, list] of groups) {
    console.log(`  ${g} (${list.length})`);
    for (const d of list) console.log(`    ${d.file} ${d.service}: ${d.what}`);
  }
}
process.exitCode = ratio >= 10 ? 0 : 1;

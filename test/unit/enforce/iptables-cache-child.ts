// Child process for iptables-cache.test.ts, run inside a throw-away netns (`ip netns exec NS node ...`),
// where the iptables backend runs without a `netns` option, as a controller does: applies the steps
// of the JSON on stdin in one process and prints, per step, how many iptables-save reads it took and
// what iptables-save then shows of moat (one JSON line per step).
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { IptablesBackend, iptablesReads } from '../../../src/enforce/backends/iptables/backend.js';
import type { RulesetPlan } from '../../../src/enforce/plan-model.js';

type Step = { plan: RulesetPlan } | { run: string[] };
const { steps } = JSON.parse(readFileSync(0, 'utf8')) as { steps: Step[] };
const be = new IptablesBackend({});
for (const s of steps) {
  if ('run' in s) {
    const r = spawnSync(s.run[0], s.run.slice(1), { encoding: 'utf8' });
    console.log(JSON.stringify({ ran: s.run.join(' '), status: r.status }));
    continue;
  }
  const before = iptablesReads.saves;
  try {
    await be.apply(s.plan);
    const save = (tool: string) => spawnSync(tool, ['-t', 'filter'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /MOAT/.test(l) && !l.startsWith('#'));
    console.log(JSON.stringify({ saves: iptablesReads.saves - before, v4: save('iptables-save'), v6: save('ip6tables-save') }));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message }));
  }
}
await be.remove();

// Control-plane benchmark of the iptables backend, beside bench/enforce-control.ts (nft): the whole
// ruleset for 10,000 endpoints / 1,000 policies applied as the controller applies it (ipsets by
// `ipset restore`, both families checked with `iptables-restore --test`, then restored), and containers
// added one at a time (the controller's compile session, then the same apply: the iptables backend has
// no incremental path, every change rebuilds moat's chains). Inside a throw-away network namespace
// (iptables, ip6tables and ipsets of its own). Needs root, iptables, ip6tables and ipset.
//   node --import tsx bench/enforce-control-iptables.ts [--endpoints 10000] [--policies 1000] [--rounds 3] [--iterations 6]
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPlan, compilePlan } from '../src/enforce/index.js';
import { CompileSession } from '../src/enforce/compile/session.js';
import { IptablesBackend, iptablesReads } from '../src/enforce/backends/iptables/backend.js';
import { inThrowawayNetns } from './in-netns.js';
import { extraEndpoint, syntheticPolicies, syntheticWorld } from './enforce-world.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const ENDPOINTS = arg('endpoints', 10_000);
const POLICIES = arg('policies', 1_000);
const ROUNDS = Math.max(1, arg('rounds', 3));
const ITER = Math.min(Math.max(1, arg('iterations', 6)), 140);

inThrowawayNetns('moatbi');
const stateDir = mkdtempSync(join(tmpdir(), 'moat-bench-ipt-'));
const opts = { backend: 'iptables' as const, stateDir, check: false, record: false };
const round1 = (x: number) => +x.toFixed(0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
try {
  const world = syntheticWorld(ENDPOINTS);
  const policies = syntheticPolicies(POLICIES, ENDPOINTS);
  const whole: { compile: number; apply: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const plan = compilePlan(world, policies, {});
    const t1 = performance.now();
    await applyPlan(plan, opts);
    whole.push({ compile: round1(t1 - t0), apply: round1(performance.now() - t1) });
  }
  const session = new CompileSession();
  session.compile({ ...world, endpoints: [...world.endpoints] }, policies, 'bench');
  session.prepare();
  const adds: { compile: number; apply: number; total: number; mode: string; iptablesSaves: number }[] = [];
  for (let k = 0; k < ITER; k++) {
    world.endpoints.push(extraEndpoint(k));
    const t0 = performance.now();
    const c = session.compile({ ...world, endpoints: [...world.endpoints] }, policies, 'bench');
    const t1 = performance.now();
    const saves = iptablesReads.saves;
    await applyPlan(c.plan, opts);
    const t2 = performance.now();
    // iptablesSaves: families read with iptables-save (0 when the apply started from what moat's own
    // last restores left, nobody else having committed since: backend.ts lastRestore).
    adds.push({ compile: round1(t1 - t0), apply: round1(t2 - t1), total: round1(t2 - t0), mode: c.mode, iptablesSaves: iptablesReads.saves - saves });
  }
  const tr = performance.now();
  await new IptablesBackend({}).remove();
  const removeMs = round1(performance.now() - tr);
  console.log(JSON.stringify({
    endpoints: ENDPOINTS, policies: POLICIES,
    wholeMs: { rounds: whole, applyMedian: median(whole.map((w) => w.apply)) },
    containerAddedMs: { p50: median(adds.map((a) => a.total)), max: Math.max(...adds.map((a) => a.total)), rounds: adds },
    // Everything moat added taken away (`moat uninstall`): both families' chains and jumps, every ipset.
    removeMs,
  }, null, 1));
} finally {
  rmSync(stateDir, { recursive: true, force: true });
}

// Control-plane benchmark: compile + apply for 10,000 endpoints / 1,000 policies (target <= 250 ms),
// and one container added, applied incrementally (target p99 <= 20 ms). The rulesets go into a
// throw-away network namespace (the real kernel, not the host's ruleset). Needs root and nft.
//   node --import tsx bench/enforce-control.ts [--endpoints 10000] [--policies 1000] [--rounds 6] [--iterations 50] [--no-idle-gc]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { applyPlan, compilePlan, incrementalScript, type RulesetPlan } from '../src/enforce/index.js';
import { planSummary } from '../src/enforce/summary.js';
import { capacitiesOf } from '../src/enforce/plan-model.js';
import { inThrowawayNetns } from './in-netns.js';
import { CompileSession } from '../src/enforce/compile/session.js';
import { NftBackend } from '../src/enforce/backends/nft/backend.js';
import { sharedNetlink } from '../src/enforce/backends/nft/netlink.js';
import { encodeTableBatch, replaceTable } from '../src/enforce/backends/nft/netlink-table.js';
import { collectYoung } from '../src/controller/gc.js';
import { saveApplied } from '../src/enforce/state.js';
import { extraEndpoint, syntheticPolicies, syntheticWorld } from './enforce-world.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const ENDPOINTS = arg('endpoints', 10_000);
const POLICIES = arg('policies', 1_000);
const WARMUP = 4;
/** Whole-table rounds of the controller's path: the first is cold, the rest warm (at least 2). */
const ROUNDS = Math.max(2, arg('rounds', 8));
/** Whole-table rounds of the comparison paths (nft -f, nft -c, the netlink batch alone, `moat apply`). */
const REF_ROUNDS = 3;
// At most 140 synthetic extra containers (enforce-world.ts extraEndpoint), warm-up included.
const ITER = Math.min(arg('iterations', 50), (140 - WARMUP) / 2);
/** Policy-change rounds over netlink (and as many by `nft -f` of the same kind of change, for comparison). */
const POLICY_ROUNDS = Math.max(1, arg('policy-rounds', 6));
/** `--no-idle-gc`: leave all collection to V8 (events back to back, no idle time between them). */
const IDLE_GC = !process.argv.includes('--no-idle-gc');

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)].toFixed(1);
};
const median = (xs: number[]) => pct(xs, 50);

// The whole benchmark runs inside a throw-away network namespace (the netlink writer's socket lives
// in the process's namespace).
inThrowawayNetns('moatbc');
const stateDir = mkdtempSync(join(tmpdir(), 'moat-bench-'));
const cleanup = () => {
  rmSync(stateDir, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

try {
  const world = syntheticWorld(ENDPOINTS);
  const policies = syntheticPolicies(POLICIES, ENDPOINTS);
  const opts = { stateDir, table: 'moatbench' };
  const nft = new NftBackend(opts);

  const nl = sharedNetlink();
  if (!nl) throw new Error('netlink writer not available');

  // The controller's whole-table path, ROUNDS times, first (so its first round is the first compile
  // of the process and the first load into an empty namespace: a controller's start): compile, then
  // applyPlan as the controller runs it (Controller.controllerApply: no separate check, the
  // transaction being atomic; the state directory's record written later, off the event path, and
  // timed apart here). Before each round, off the measured path, the young generation is collected,
  // as the controller does when no event waits (src/controller/gc.ts).
  type CtlKey = 'compile' | 'apply' | 'compileAndApply' | 'stateRecord';
  const ctl: Record<CtlKey, number>[] = [];
  const vias: string[] = [];
  let plan: RulesetPlan | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    if (IDLE_GC) collectYoung();
    const t0 = performance.now();
    plan = compilePlan(world, policies, opts);
    const t1 = performance.now();
    const b = await applyPlan(plan, { ...opts, check: false, record: false });
    const t2 = performance.now();
    saveApplied(stateDir, { backend: 'nft', target: 'moatbench', appliedAt: new Date().toISOString(), plan, script: '' });
    const t3 = performance.now();
    vias.push(`${b.via}${b.fallback ? ` (${b.fallback})` : ''}`);
    ctl.push({ compile: t1 - t0, apply: t2 - t1, compileAndApply: t2 - t0, stateRecord: t3 - t2 });
  }

  // For comparison, REF_ROUNDS more (warm): the same table four ways: `nft -c` then `nft -f` of the
  // rendered script (the old path), the netlink batch alone (encode; checked without committing;
  // committed), and applyPlan as `moat apply` runs it (check, commit, state record).
  type RefKey = 'compile' | 'render' | 'nftCheck' | 'nftApply' | 'encode' | 'netlinkCheck' | 'netlinkApply' | 'applyPlan' | 'compileAndApplyChecked';
  const ref: Record<RefKey, number>[] = [];
  for (let r = 0; r < REF_ROUNDS; r++) {
    const t0 = performance.now();
    plan = compilePlan(world, policies, opts);
    const t1 = performance.now();
    const script = nft.render(plan);
    const t2 = performance.now();
    await nft.check(script);
    const t3 = performance.now();
    await nft.applyIncrementalScript(script); // the whole-table replace without the separate check
    const t4 = performance.now();
    encodeTableBatch(plan, 'moatbench', 1);
    const t5 = performance.now();
    await replaceTable(nl, plan, 'moatbench', { check: true });
    const t6 = performance.now();
    await replaceTable(nl, plan, 'moatbench');
    const t7 = performance.now();
    const a = await applyPlan(plan, opts); // what `moat apply` does: check, apply, record
    const t8 = performance.now();
    vias.push(`${a.via}${a.fallback ? ` (${a.fallback})` : ''}`);
    ref.push({ compile: t1 - t0, render: t2 - t1, nftCheck: t3 - t2, nftApply: t4 - t3, encode: t5 - t4, netlinkCheck: t6 - t5, netlinkApply: t7 - t6, applyPlan: t8 - t7, compileAndApplyChecked: t1 - t0 + (t8 - t7) });
  }
  const p = plan!;

  // One container added at a time, applied incrementally: alternately over netlink (what
  // applyIncremental does for element-only changes) and with `nft -f` of the same change.
  const recompile: number[] = [];
  const diff: number[] = [];
  const kernel: number[] = [];
  const kernelNft: number[] = [];
  let prev = p;
  // The controller's compile: a session that adds just the new container to the previous plan.
  const session = new CompileSession();
  session.compile({ ...world, endpoints: [...world.endpoints] }, policies, 'bench');
  session.prepare(); // the delta index, built in idle time as the controller does (collectIfIdle)
  const compileModes: Record<string, number> = {};
  const idleGc: number[] = [];
  // The first additions run this code for the first time (V8 has not optimised it yet): they are
  // warm-up, reported apart (the controller's first event after start pays this once).
  const warmup: number[] = [];
  /** Additions that filled a peer set (counted in the figures of their path too). */
  const resizes: { addition: number; via: string; ms: number; sets: number; chainsReloaded: number }[] = [];
  for (let k = 0; k < WARMUP + 2 * ITER; k++) {
    world.endpoints.push(extraEndpoint(k));
    const t0 = performance.now();
    const c = session.compile({ ...world, endpoints: [...world.endpoints] }, policies, 'bench');
    compileModes[c.mode] = (compileModes[c.mode] ?? 0) + 1;
    const next = c.plan;
    const t1 = performance.now();
    const d = incrementalScript(prev, next, { table: 'moatbench' });
    const t2 = performance.now();
    if (!d.incremental) throw new Error(`a container addition not incremental: ${d.reason}`);
    // Element changes only, unless a peer set filled up: then it is created anew with a larger
    // capacity and the chains that use it reloaded, in one change batch (incremental.ts).
    if (!d.elementOps && !d.changes.setsResized.length) throw new Error(`a container addition changed sets or chains: ${JSON.stringify(d.changes)}`);
    if (k % 2 === 0) {
      if (d.elementOps) await nft.applyElements(d.elementOps);
      else await nft.applyChange(d.netlink.change, next.nflogGroup, d.netlink.existing);
    } else await nft.applyIncrementalScript(d.script);
    const t3 = performance.now();
    // What the controller does once an event's change is in the kernel and no other event waits:
    // collect the young generation (src/controller/gc.ts), off the measured path.
    if (IDLE_GC) {
      const g = collectYoung();
      if (g !== undefined) idleGc.push(g);
    }
    if (k < WARMUP) {
      if (k % 2 === 0) warmup.push(t3 - t0);
      prev = next;
      continue;
    }
    recompile.push(t1 - t0);
    if (d.changes.setsResized.length) resizes.push({ addition: k - WARMUP + 1, via: k % 2 === 0 ? 'netlink' : 'nft -f', ms: +(t3 - t0).toFixed(1), sets: d.changes.setsResized.length, chainsReloaded: d.changes.chainsReloaded.length });
    if (k % 2 === 0) {
      diff.push(t2 - t1);
      kernel.push(t3 - t2);
    } else kernelNft.push(t3 - t2);
    prev = next;
  }
  // Policy changes with the table in place: one policy's ports changed per round (the previous
  // round's change undone), as a controller sees an edited policy file. The controller's compile
  // session compiles the containers the changed policies select (a policy delta, session.ts), the
  // plan diff finds the new and removed chains, sets and elements, and one netlink change batch
  // applies them (applyIncremental); every other round the same change by `nft -f` of the incremental
  // script, for comparison. In the same rounds, off the measured path: a full compile of the same
  // policies (what the session did before policy deltas) and a whole-table replace of the plan.
  const policyRounds: { compile: number; diff: number; apply: number; total: number; fullCompile: number; replace: number; chainsAdded: number; chainsRemoved: number; setsAdded: number; setsRemoved: number; elements: number }[] = [];
  const policyModes: Record<string, number> = {};
  const policyNft: number[] = [];
  const basePolicies = policies.policies;
  for (let r = 0; r < 2 * POLICY_ROUNDS; r++) {
    const j = (r * 37) % basePolicies.length;
    const pol = basePolicies[j];
    const ingress = pol.ingress.length ? [{ ...pol.ingress[0], ports: [{ protocol: 'TCP' as const, port: 7000 + r }, { protocol: 'TCP' as const, port: 7100 + r }] }, ...pol.ingress.slice(1)] : pol.ingress;
    const changed = { ...policies, policies: basePolicies.map((x, i) => (i === j ? { ...x, ingress } : x)) };
    // Idle time before the change, as in the controller: the last full compile's delta index, then
    // the young generation.
    session.prepare();
    if (IDLE_GC) collectYoung();
    const t0 = performance.now();
    const c = session.compile({ ...world, endpoints: [...world.endpoints] }, changed, `bench-policy-${r}`);
    policyModes[c.mode] = (policyModes[c.mode] ?? 0) + 1;
    if (c.mode === 'delta') throw new Error('a policy change compiled as a container delta');
    const next = c.plan;
    const t1 = performance.now();
    const d = incrementalScript(prev, next, { table: 'moatbench' });
    const t2 = performance.now();
    if (!d.incremental) throw new Error(`policy change not incremental: ${d.reason}`);
    if (r % 2 === 0) await nft.applyChange(d.netlink.change, next.nflogGroup, d.netlink.existing);
    else await nft.applyIncrementalScript(d.script);
    const t3 = performance.now();
    if (r % 2 === 1) {
      policyNft.push(t3 - t2);
      prev = next;
      continue;
    }
    // The same plan as a whole-table replace (the path without the diff), then the kernel is back
    // where the next round's diff starts.
    const t4 = performance.now();
    await applyPlan(next, { ...opts, check: false, record: false });
    const t5 = performance.now();
    if (IDLE_GC) collectYoung();
    const t6 = performance.now();
    compilePlan({ ...world, endpoints: [...world.endpoints] }, changed, { ...opts, capacities: capacitiesOf(prev) });
    const t7 = performance.now();
    const ch = d.netlink.change;
    policyRounds.push({ compile: t1 - t0, diff: t2 - t1, apply: t3 - t2, total: t3 - t0, fullCompile: t7 - t6, replace: t5 - t4, chainsAdded: ch.chains.length, chainsRemoved: ch.chainsRemoved.length, setsAdded: ch.sets.length + ch.portSets.length, setsRemoved: ch.setsRemoved.length, elements: ch.elements.reduce((n, e) => n + e.elements.length, 0) });
    prev = next;
  }

  // The kernel holds what the last plan says (read back and compared), so the writes were real.
  const back = await nft.readBack();
  const want = planSummary(prev);
  const sorted = (o: Record<string, string> | undefined) => JSON.stringify(Object.entries(o ?? {}).sort());
  for (const m of ['ingress4', 'egress4']) if (sorted(back.maps[m]) !== sorted(want.maps[m])) throw new Error(`kernel map ${m} differs from the plan`);
  // The peer sets of host addresses (those the additions joined), element by element.
  for (const s of prev.sets.filter((x) => x.exact).map((x) => x.name)) if (JSON.stringify([...(back.sets[s] ?? [])].sort()) !== JSON.stringify([...(want.sets[s] ?? [])].sort())) throw new Error(`kernel set ${s} differs from the plan`);
  const last = incrementalScript(p, prev, { table: 'moatbench' });
  const elements = p.sets.reduce((n, s) => n + s.elements.length, 0) + p.maps.reduce((n, m) => n + m.elements.length, 0);
  const rules = p.chains.reduce((n, c) => n + c.rules.length, 0);
  const round1 = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, +v.toFixed(1)]));
  const summary = <K extends string>(rows: Record<K, number>[], f: (xs: number[]) => number) => Object.fromEntries(Object.keys(rows[0]).map((k) => [k, f(rows.map((r) => r[k as K]))]));
  // The controller's first round is cold (V8 runs this code for the first time, the namespace has no
  // table yet: a controller's start); the others warm (a recompile after a policy or network change).
  const warm = ctl.slice(1);
  console.log(JSON.stringify({
    endpoints: ENDPOINTS, policies: POLICIES,
    ruleset: { chains: p.chains.length, rules, sets: p.sets.length, elements, scriptBytes: nft.render(p).length },
    controllerMs: { cold: round1(ctl[0]), warmMedian: summary(warm, median), warmMax: summary(warm, (xs) => pct(xs, 100)), warmRounds: warm.length, rounds: ctl.map(round1) },
    referenceMs: { median: summary(ref, median), rounds: ref.map(round1) },
    applyPlanVia: [...new Set(vias)],
    incremental: {
      iterations: ITER,
      diffPlusKernelMs: { p50: median(diff.map((d, i) => d + kernel[i])), p99: pct(diff.map((d, i) => d + kernel[i]), 99) },
      netlinkMs: { p50: median(kernel), p99: pct(kernel, 99) },
      nftScriptMs: { p50: median(kernelNft), p99: pct(kernelNft, 99) },
      diffMs: { p50: median(diff), p99: pct(diff, 99) },
      compileMs: { p50: median(recompile), p99: pct(recompile, 99), modes: compileModes },
      compilePlusDiffPlusNetlinkMs: (() => {
        const xs = kernel.map((x, i) => x + diff[i] + recompile[2 * i]);
        // Which additions went over 20 ms, and where their time went (the first one is the first run
        // of this path: V8 has not optimised it yet).
        const slow = xs.flatMap((x, i) => (x > 20 ? [{ addition: i + 1, ms: +x.toFixed(1), compile: +recompile[2 * i].toFixed(1), diff: +diff[i].toFixed(1), netlink: +kernel[i].toFixed(1) }] : []));
        return { p50: median(xs), p90: pct(xs, 90), p95: pct(xs, 95), p99: pct(xs, 99), max: pct(xs, 100), over20ms: `${slow.length} of ${xs.length}`, slow };
      })(),
      setResizes: resizes,
      warmupMs: { firstAddition: +warmup[0].toFixed(1), all: warmup.map((x) => +x.toFixed(1)) },
      idleGcMs: IDLE_GC ? { p50: idleGc.length ? median(idleGc) : null, p99: idleGc.length ? pct(idleGc, 99) : null, runs: idleGc.length } : 'off (--no-idle-gc)',
      lastScriptLines: last.incremental ? last.script.split('\n').length - 1 : -1,
      sampleScript: last.incremental ? incrementalScript(p, compilePlan({ ...world, endpoints: [...world.endpoints.slice(0, ENDPOINTS), extraEndpoint(0)] }, policies, opts), { table: 'moatbench' }) : undefined,
    },
    policyChange: {
      rounds: policyRounds.length,
      compileModes: policyModes,
      compilePlusDiffPlusNetlinkMs: { median: median(policyRounds.map((x) => x.total)), max: pct(policyRounds.map((x) => x.total), 100) },
      median: summary(policyRounds, median),
      perRound: policyRounds.map(round1),
      sameChangeByNftScriptMs: { median: policyNft.length ? median(policyNft) : null, rounds: policyNft.map((x) => +x.toFixed(1)) },
    },
  }, (key, v) => (key === 'sampleScript' && v && typeof v === 'object' ? (v as { script?: string }).script : v), 1));
} finally {
  cleanup();
}

// Controller benchmark: event-to-enforced latency at 1,000 endpoints, and memory.
//   node --import tsx bench/controller-latency.ts [--endpoints 1000] [--changes 200]
// The controller's hot path for one Docker event, measured piece by piece on a synthetic host of N
// endpoints (bench/enforce-world.ts, addresses in 100.64.0.0/10) whose ruleset lives in a throw-away
// network namespace: the world update, labels + policy merge, the full compile, and the incremental
// `nft -f` transaction (one container added or removed). Plus one real `GET /containers/ID/json`
// against the local engine when one answers (the inspect the controller makes per changed container).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { applyIncremental, applyPlan } from '../src/enforce/index.js';
import { CompileSession } from '../src/enforce/compile/session.js';
import { mergePolicySets } from '../src/model/ir.js';
import { compileLabels } from '../src/policy/labels/index.js';
import type { Endpoint, World } from '../src/model/world.js';
import { syntheticPolicies, syntheticWorld } from './enforce-world.js';
import { inThrowawayNetns } from './in-netns.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('endpoints', 1000);
const CHANGES = arg('changes', 200);
// Inside a throw-away network namespace, so that the netlink writer (what the controller uses for
// element changes) reaches the benchmark's table.
inThrowawayNetns('moatctlb');
const stateDir = mkdtempSync(join(tmpdir(), 'moat-ctlbench-'));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  const base = syntheticWorld(N);
  const files = syntheticPolicies(Math.max(10, N / 10), N);
  const opts = { stateDir, table: 'moatctlbench' };
  // As the controller does: a compile session (only the changed containers when it can), keyed by the
  // policy files and the labels' policies.
  const session = new CompileSession();
  const compileModes = new Map<string, number>();
  const planOf = (w: World) => {
    const labels = compileLabels(w).policySet;
    const r = session.compile(w, mergePolicySets([files, labels]), `files|${JSON.stringify(labels)}`);
    compileModes.set(r.mode, (compileModes.get(r.mode) ?? 0) + 1);
    return r.plan;
  };
  let plan = planOf(base);
  await applyPlan(plan, opts);
  const extra: Endpoint = { ...base.endpoints[0], id: 'bench/extra', name: 'extra', attachments: base.endpoints[0].attachments.map((a) => ({ ...a, ipv4: a.ipv4!.replace(/\.\d+$/, '.250') })) };
  const endpoints = new Map(base.endpoints.map((e) => [e.id, e]));
  const total: number[] = [];
  const compileMs: number[] = [];
  const applyMs: number[] = [];
  const modes = new Map<string, number>();
  for (let i = 0; i < CHANGES; i++) {
    const t0 = performance.now();
    if (i % 2 === 0) endpoints.set(extra.id, extra);
    else endpoints.delete(extra.id);
    const w: World = { ...base, endpoints: [...endpoints.values()] };
    const next = planOf(w);
    const t1 = performance.now();
    const r = await applyIncremental(plan, next, { ...opts, record: false });
    const t2 = performance.now();
    modes.set(`${r.mode}${r.via ? `/${r.via}` : ""}`, (modes.get(`${r.mode}${r.via ? `/${r.via}` : ""}`) ?? 0) + 1);
    plan = next;
    compileMs.push(t1 - t0);
    applyMs.push(t2 - t1);
    total.push(t2 - t0);
  }
  let inspectMs: number[] = [];
  try {
    const docker = new Docker({ socketPath: '/var/run/docker.sock', timeout: 2000 });
    const list = await docker.listContainers({ limit: 1 });
    if (list[0]) {
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        await docker.getContainer(list[0].Id).inspect();
        inspectMs.push(performance.now() - t0);
      }
    }
  } catch {
    inspectMs = [];
  }
  const rss = process.memoryUsage().rss / 1024 / 1024;
  const heap = process.memoryUsage().heapUsed / 1024 / 1024;
  const f = (x: number) => x.toFixed(1);
  console.log(`endpoints ${N}, changes ${CHANGES}, apply modes ${JSON.stringify(Object.fromEntries(modes))}, compile modes ${JSON.stringify(Object.fromEntries(compileModes))}`);
  console.log(`compile (world -> plan)      p50 ${f(pct(compileMs, 50))} ms  p99 ${f(pct(compileMs, 99))} ms`);
  console.log(`incremental nft transaction  p50 ${f(pct(applyMs, 50))} ms  p99 ${f(pct(applyMs, 99))} ms`);
  console.log(`event to enforced (no API)   p50 ${f(pct(total, 50))} ms  p99 ${f(pct(total, 99))} ms`);
  if (inspectMs.length) console.log(`container inspect (engine)   p50 ${f(pct(inspectMs, 50))} ms  p99 ${f(pct(inspectMs, 99))} ms`);
  console.log(`RSS ${rss.toFixed(0)} MB (JS heap in use ${heap.toFixed(0)} MB)`);
} finally {
  rmSync(stateDir, { recursive: true, force: true });
}

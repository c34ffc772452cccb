// Controller benchmark: CPU while idle, and memory.
//   node --import tsx bench/controller-idle.ts [--containers 100] [--idle 60] [--settle 5] [--resync 60] [--drift 10] [--profile DIR] [--source]
// Root, with a local dockerd. Starts N real containers (busybox, one Compose project of its own, a
// /24 network), a real `moat run` for that project (its own nft table, state directory and unix
// socket, the default timers: drift check every 10 s, resync every 60 s), waits until it is ready and
// has enforced all of them, lets it settle, then reads /proc/<pid>/stat (utime, stime, and cutime,
// cstime: the `nft` and `iptables-save` children it waited for) before and after an idle window with
// no Docker event. Prints CPU seconds, % of one core, and RSS (VmRSS, VmHWM). Removes everything after.
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { request } from '../src/controller/server.js';
import { NftBackend } from '../src/enforce/backends/nft/backend.js';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from '../src/demo/images.js';
import { listenerCommand } from '../src/demo/bringup.js';
import { CLK_TCK, numberArg, procMem, procStat } from './proc.js';

const N = Math.min(numberArg('containers', 100), 250);
const IDLE_S = Math.min(numberArg('idle', 60), 600);
const SETTLE_S = Math.min(numberArg('settle', 5), 120);
/** The controller's timers in seconds (0 disables one), to attribute the idle cost. */
const RESYNC_S = Math.min(numberArg('resync', 60), 3600);
const DRIFT_S = Math.min(numberArg('drift', 10), 3600);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
// The user's launcher (bin/moat.js): the compiled CLI when `npm run build` is current, else tsx.
// --source runs the TypeScript sources through tsx instead, for comparison.
const FROM_SOURCE = process.argv.includes('--source');
const CLI = join(REPO, 'bin', 'moat.js');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const project = `moatidle${BigInt(`0x${randomBytes(6).toString('hex')}`).toString(36)}`.slice(0, 24);
const dir = mkdtempSync(join(tmpdir(), `${project}-`));
const sock = join(dir, 'moat.sock');
const policyFile = join(dir, 'policies', 'p.yaml');
const docker = new Docker({ socketPath: '/var/run/docker.sock', timeout: 60_000 });
const containers: string[] = [];
let netId: string | undefined;
let child: ReturnType<typeof spawn> | undefined;

/** Sum of a metric's samples (all label sets) in /metrics. */
async function metricSum(name: string): Promise<number> {
  try {
    const r = await request({ kind: 'unix', path: sock }, '/metrics', undefined, 5000);
    let sum = 0;
    for (const line of r.body.split('\n')) {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`).exec(line);
      if (m) sum += Number(m[1]);
    }
    return sum;
  } catch {
    return NaN;
  }
}

async function status(): Promise<Record<string, any> | undefined> { // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    const r = await request({ kind: 'unix', path: sock }, '/status', undefined, 5000);
    return r.status === 200 ? JSON.parse(r.body) : undefined;
  } catch {
    return undefined;
  }
}

try {
  await ensureBusyboxImage(docker);
  let prefix = '';
  for (let i = 0; i < 20 && !netId; i++) {
    prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
    try {
      const net = await docker.createNetwork({ Name: `${project}_net`, CheckDuplicate: true, Driver: 'bridge', IPAM: { Driver: 'default', Config: [{ Subnet: `${prefix}.0/24` }] }, Labels: { 'com.docker.compose.project': project } });
      netId = net.id;
    } catch (e) {
      if (!/overlap|already/i.test((e as Error).message)) throw e;
    }
  }
  if (!netId) throw new Error('no free subnet');
  mkdirSync(dirname(policyFile), { recursive: true });
  writeFileSync(policyFile, `apiVersion: moat/v1
kind: Policy
metadata:
  name: idle-bench
groups:
  api:
    select:
      namespace: ${project}
      labels: { role: api }
  db:
    select:
      namespace: ${project}
      labels: { role: db }
    ingress:
      - from: [api]
        ports: [80]
`);
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const role = i % 2 ? 'db' : 'api';
    const c = await docker.createContainer({
      name: `${project}-c${i}`, Image: BUSYBOX_IMAGE, Cmd: listenerCommand(role === 'db' ? [80] : []), StopTimeout: 1,
      Labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': `s${i}`, role },
      HostConfig: { NetworkMode: `${project}_net` },
    });
    containers.push(c.id);
    await c.start();
  }
  console.log(`${N} containers started in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const fd = openSync(join(dir, 'moat.log'), 'a');
  // --profile DIR: a V8 CPU profile of the controller (written when it exits) to see where idle time goes.
  const pi = process.argv.indexOf('--profile');
  const profile = pi > 0 ? ['--cpu-prof', '--cpu-prof-dir', process.argv[pi + 1]] : [];
  child = spawn(process.execPath, [...profile, CLI, 'run', '--project', project, '--table', project, '--state-dir', join(dir, 'state'), '--listen', `unix://${sock}`, '--policy', policyFile, '--resync-interval', `${RESYNC_S}s`, '--drift-interval', `${DRIFT_S}s`], { cwd: REPO, stdio: ['ignore', fd, fd], env: { ...process.env, MOAT_FROM_SOURCE: FROM_SOURCE ? '1' : '0' } });
  const pid = child.pid!;
  const deadline = Date.now() + 120_000;
  let st: Record<string, any> | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (;;) {
    st = await status();
    const enforced = (st?.endpoints ?? []).filter((e: { enforced: boolean }) => e.enforced).length;
    if (st?.ready && enforced === N) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`controller not ready with ${N} enforced (enforced ${enforced}); log in ${dir}`);
    await sleep(500);
  }
  const startup = procStat(pid);
  console.log(`ready, ${N} endpoints enforced, ${st!.ruleset?.rules ?? '?'} rules, ${st!.ruleset?.setElements ?? '?'} set elements; start-up CPU ${(startup.self / CLK_TCK).toFixed(2)} s`);
  await sleep(SETTLE_S * 1000);
  const evA = await metricSum('moat_docker_events_total');
  const rcA = await metricSum('moat_reconcile_duration_seconds_count');
  const a = procStat(pid);
  const ta = Date.now();
  await sleep(IDLE_S * 1000);
  const b = procStat(pid);
  // Other work on the engine (containers of other projects) still reaches the event stream.
  console.log(`during the window: ${await metricSum('moat_docker_events_total') - evA} Docker events received, ${await metricSum('moat_reconcile_duration_seconds_count') - rcA} reconciles`);
  const secs = (Date.now() - ta) / 1000;
  const mem = procMem(pid);
  const self = (b.self - a.self) / CLK_TCK;
  const kids = (b.children - a.children) / CLK_TCK;
  console.log(`launcher: ${FROM_SOURCE ? "sources through tsx" : "bin/moat.js (compiled dist/ if current)"}; timers: resync ${RESYNC_S || 'off'}${RESYNC_S ? ' s' : ''}, drift ${DRIFT_S || 'off'}${DRIFT_S ? ' s' : ''}`);
  console.log(`idle ${secs.toFixed(1)} s: controller CPU ${self.toFixed(2)} s (${((100 * self) / secs).toFixed(2)} % of one core), its nft/iptables children ${kids.toFixed(2)} s (${((100 * kids) / secs).toFixed(2)} %)`);
  console.log(`RSS ${mem.rss.toFixed(0)} MB (peak ${mem.hwm.toFixed(0)} MB)`);
} finally {
  if (child?.pid && child.exitCode === null) {
    process.kill(child.pid, 'SIGTERM');
    await Promise.race([new Promise((r) => child!.once('exit', r)), sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }
  for (const id of containers) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
  if (netId) await docker.getNetwork(netId).remove().catch(() => undefined);
  await new NftBackend({ table: project }).remove().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}

// Test harness for the controller: runs `moat run` as a child process (so it can be SIGKILLed),
// scoped to one Compose project, with its own nft table, state directory and unix socket.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { request } from '../../../src/controller/server.js';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { cleanup, runContainer, uniqueName } from '../../helpers/docker.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
export const PROBE = join(HERE, 'probe-loop.mjs');

export type Status = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Harness {
  project: string;
  table: string;
  dir: string;
  stateDir: string;
  sock: string;
  logFile: string;
  policyFile: string;
  extraArgs: string[];
  child?: ChildProcess;
}

export function makeHarness(prefix: string, extraArgs: string[] = []): Harness {
  const project = uniqueName(prefix, 24).replace(/-/g, '');
  const dir = mkdtempSync(join(tmpdir(), `${project}-`));
  const h: Harness = { project, table: project.slice(0, 30), dir, stateDir: join(dir, 'state'), sock: join(dir, 'moat.sock'), logFile: join(dir, 'moat.log'), policyFile: join(dir, 'policies', 'p.yaml'), extraArgs };
  cleanup.add(`controller ${project}`, async () => {
    stopController(h, 'SIGKILL');
    await new NftBackend({ table: h.table }).remove().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return h;
}

export function writePolicy(h: Harness, text: string): void {
  spawnSync('mkdir', ['-p', dirname(h.policyFile)]);
  // Write then rename, like an editor.
  writeFileSync(`${h.policyFile}.tmp`, text);
  spawnSync('mv', [`${h.policyFile}.tmp`, h.policyFile]);
}

export function startController(h: Harness, args: string[] = []): ChildProcess {
  const argv = [
    '--import', 'tsx', join(HERE, 'moat-cli.ts'), 'run',
    '--project', h.project, '--table', h.table, '--state-dir', h.stateDir, '--listen', `unix://${h.sock}`,
    ...h.extraArgs, ...args,
  ];
  const fd = openSync(h.logFile, 'a');
  const child = spawn(process.execPath, argv, { cwd: REPO, stdio: ['ignore', fd, fd] });
  h.child = child;
  return child;
}

export function stopController(h: Harness, signal: NodeJS.Signals = 'SIGTERM'): void {
  const c = h.child;
  if (c && c.exitCode === null && c.signalCode === null && c.pid) {
    try {
      process.kill(c.pid, signal);
    } catch {
      /* gone */
    }
  }
}

export async function waitExit(h: Harness, timeoutMs = 15_000): Promise<void> {
  const c = h.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  await Promise.race([new Promise((r) => c.once('exit', r)), sleep(timeoutMs)]);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function status(h: Harness): Promise<Status | undefined> {
  try {
    const r = await request({ kind: 'unix', path: h.sock }, '/status', undefined, 5000);
    return r.status === 200 ? (JSON.parse(r.body) as Status) : undefined;
  } catch {
    return undefined;
  }
}

export async function get(h: Harness, path: string): Promise<{ status: number; body: string } | undefined> {
  try {
    return await request({ kind: 'unix', path: h.sock }, path, undefined, 5000);
  } catch {
    return undefined;
  }
}

/** Polls `check` until it returns a truthy value or the time is up (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as T;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await sleep(everyMs);
  }
}

export function log(h: Harness): string {
  try {
    return readFileSync(h.logFile, 'utf8');
  } catch {
    return '';
  }
}

/** Starts a probe loop inside the netns of `pid`; resolves with what got through. */
export function probeLoop(pid: number, targets: string[], durationMs: number, timeoutMs = 300): { done: Promise<{ tries: number; successes: { target: string; at: number }[] }>; child: ChildProcess } {
  const child = spawn('nsenter', ['-t', String(pid), '-n', process.execPath, PROBE, String(durationMs), String(timeoutMs), ...targets], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), durationMs + 30_000);
  const done = new Promise<{ tries: number; successes: { target: string; at: number }[] }>((resolve, reject) => {
    child.on('close', (code) => {
      clearTimeout(killer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`probe loop failed (exit ${code}): ${err.slice(0, 500)}`));
      }
    });
  });
  return { done, child };
}

/** One quick round of probes: which targets answer. */
export async function reachable(pid: number, targets: string[], timeoutMs = 400): Promise<Set<string>> {
  const r = await probeLoop(pid, targets, 0, timeoutMs).done;
  return new Set(r.successes.map((s) => s.target));
}

/** A free /24 in 10.200.0.0/13 for a test network (retries on overlap). */
export async function createProjectNetwork(docker: Docker, project: string, suffix = 'net'): Promise<{ name: string; prefix: string }> {
  for (let i = 0; i < 20; i++) {
    const prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
    const name = `${project}_${suffix}`;
    try {
      const net = await docker.createNetwork({ Name: name, CheckDuplicate: true, Driver: 'bridge', IPAM: { Driver: 'default', Config: [{ Subnet: `${prefix}.0/24` }] }, Labels: { 'com.docker.compose.project': project } });
      cleanup.network(docker, net.id);
      return { name, prefix };
    } catch (e) {
      if (!/overlap|already/i.test((e as Error).message)) throw e;
    }
  }
  throw new Error('no free test subnet');
}

export const labelsFor = (project: string, service: string, role: string) => ({
  'com.docker.compose.project': project,
  'com.docker.compose.service': service,
  role,
});

/** moat/v1: role=db accepts TCP 80 from role=api only; everything else isolated. */
export function dbPolicy(project: string): string {
  return `apiVersion: moat/v1
kind: Policy
metadata:
  name: ctl-test
groups:
  api:
    select:
      namespace: ${project}
      labels:
        role: api
  db:
    select:
      namespace: ${project}
      labels:
        role: db
    ingress:
      - from: [api]
        ports: [80]
`;
}

/**
 * The usual scene: the db policy written, a project network, a db listening on 80, an api the policy
 * lets in, and an intruder it does not.
 */
export async function dbScene(docker: Docker, h: Harness) {
  writePolicy(h, dbPolicy(h.project));
  const net = await createProjectNetwork(docker, h.project);
  const db = await runContainer(docker, { name: `${h.project}-db`, networks: [net.name], tcpPorts: [80], labels: labelsFor(h.project, 'db', 'db') });
  const api = await runContainer(docker, { name: `${h.project}-api`, networks: [net.name], labels: labelsFor(h.project, 'api', 'api') });
  const intruder = await runContainer(docker, { name: `${h.project}-intruder`, networks: [net.name], labels: labelsFor(h.project, 'intruder', 'other') });
  return { net, db, api, intruder, dbTarget: `${db.ipv4[net.name]}:80` };
}

/** Status once the controller says it is ready. */
export function waitReady(h: Harness): Promise<Status> {
  return waitFor('controller ready', async () => { const s = await status(h); return s?.ready ? s : undefined; }, 60_000, 200);
}

// Helpers for integration tests that need a real Docker engine.
//
//   import { test } from 'node:test';
//   import { requireDocker, uniqueName, createNetwork, runContainer, cleanup } from '../../helpers/docker.js';
//
//   test('something', async (t) => {
//     const docker = await requireDocker(t);   // skips the test (with the reason) when no engine can run
//     if (!docker) return;
//     const net = await createNetwork(docker, { subnet: '10.213.7.0/24' });
//     const web = await runContainer(docker, { networks: [net.name], tcpPorts: [80] });
//     ...                                      // everything created here is removed after the file's tests
//   });
//
// Importing this module registers an `after` hook that runs `cleanup` (removes what the helpers created,
// newest first, tolerating things already gone). Names are unique per run: `uniqueName('moat-x')`.
import { after, type TestContext } from 'node:test';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from '../../src/demo/images.js';
import { listenerCommand, listeningTcpPorts } from '../../src/demo/bringup.js';

/** The listener command (busybox httpd on each TCP port, idle loop, exits on SIGTERM). */
export { listenerCommand };

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// ---------------------------------------------------------------- cleanup registry

type Task = { what: string; run: () => Promise<void> };

export class Cleanup {
  private tasks: Task[] = [];
  /** Registers a clean-up action; actions run newest first. */
  add(what: string, run: () => Promise<void> | void): void {
    this.tasks.push({ what, run: async () => run() });
  }
  container(docker: Docker, idOrName: string): void {
    this.add(`container ${idOrName}`, () => removeContainer(docker, idOrName));
  }
  network(docker: Docker, idOrName: string): void {
    this.add(`network ${idOrName}`, () => removeNetwork(docker, idOrName));
  }
  /** Runs every action (newest first); failures are printed, never thrown. */
  async run(): Promise<void> {
    const tasks = this.tasks.reverse();
    this.tasks = [];
    for (const t of tasks) {
      try {
        await t.run();
      } catch (err) {
        console.error(`cleanup: ${t.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

/** The shared registry; run automatically after the tests of the file that imports this module. */
export const cleanup = new Cleanup();
after(() => cleanup.run());

function statusCode(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

export async function removeContainer(docker: Docker, idOrName: string): Promise<void> {
  try {
    await docker.getContainer(idOrName).remove({ force: true, v: true });
  } catch (err) {
    if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
  }
}

export async function removeNetwork(docker: Docker, idOrName: string): Promise<void> {
  // Disconnect whatever is still attached (a container another test left), then remove.
  try {
    const info = (await docker.getNetwork(idOrName).inspect()) as Docker.NetworkInspectInfo;
    for (const id of Object.keys(info.Containers ?? {})) {
      try {
        await docker.getNetwork(idOrName).disconnect({ Container: id, Force: true });
      } catch {
        /* gone */
      }
    }
    await docker.getNetwork(idOrName).remove();
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
  }
}

/** Removes containers and networks whose name starts with `prefix` (leftovers of earlier runs). */
export async function sweepLeftovers(docker: Docker, prefix: string): Promise<void> {
  if (!/^[a-z0-9][a-z0-9_.-]{3,}$/.test(prefix)) throw new Error(`refusing to sweep with prefix '${prefix}'`);
  const containers = await docker.listContainers({ all: true, filters: { name: [prefix] } });
  for (const c of containers) {
    if (c.Names.some((n) => n.replace(/^\//, '').startsWith(prefix))) await removeContainer(docker, c.Id);
  }
  const networks = await docker.listNetworks({ filters: { name: [prefix] } });
  for (const n of networks) if (n.Name.startsWith(prefix)) await removeNetwork(docker, n.Id);
}

// ---------------------------------------------------------------- names

/** `prefix-<10 random base36 chars>`, lower case; at most `maxLength` characters (default 40). */
export function uniqueName(prefix: string, maxLength = 40): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(prefix)) throw new Error(`bad name prefix '${prefix}'`);
  const suffix = BigInt(`0x${randomBytes(8).toString('hex')}`).toString(36).slice(0, 10).padStart(10, '0');
  const name = `${prefix}-${suffix}`;
  if (name.length > maxLength) {
    const keep = Math.max(1, maxLength - suffix.length - 1);
    return `${prefix.slice(0, keep)}-${suffix}`.slice(0, maxLength);
  }
  return name;
}

// ---------------------------------------------------------------- engine

let availability: Promise<{ docker?: Docker; reason?: string }> | undefined;

/**
 * Makes sure an engine answers (running scripts/ensure-dockerd.sh when needed) and the test image exists.
 * Resolves to a client, or to the reason why not. Memoised per process.
 */
/** Whether the engine answers `GET /_ping`. */
export async function engineAnswers(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

export function dockerAvailability(): Promise<{ docker?: Docker; reason?: string }> {
  availability ??= (async () => {
    if (process.platform !== 'linux') return { reason: 'integration tests need Linux' };
    if (process.getuid?.() !== 0) return { reason: 'integration tests need root (dockerd, nsenter, netfilter)' };
    const docker = new Docker({ socketPath: '/var/run/docker.sock', timeout: 60_000 });
    const ping = () => engineAnswers(docker);
    if (!(await ping())) {
      const script = join(REPO, 'scripts', 'ensure-dockerd.sh');
      if (!existsSync(script)) return { reason: `no Docker engine and no ${script}` };
      const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 15 * 60_000 });
      if (r.status !== 0 || !(await ping())) {
        return { reason: `no Docker engine: scripts/ensure-dockerd.sh failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' / ')}` };
      }
    }
    try {
      await ensureBusyboxImage(docker);
    } catch (err) {
      return { reason: `cannot build ${BUSYBOX_IMAGE}: ${err instanceof Error ? err.message : String(err)}` };
    }
    return { docker };
  })();
  return availability;
}

/** A Docker client, or undefined after marking the test skipped with the reason (`if (!docker) return;`). */
export async function requireDocker(t: TestContext): Promise<Docker | undefined> {
  const a = await dockerAvailability();
  if (!a.docker) {
    t.skip(a.reason);
    return undefined;
  }
  return a.docker;
}

// ---------------------------------------------------------------- networks

export interface NetworkSpec {
  /** Default: uniqueName('moat-net'). */
  name?: string;
  driver?: string;
  /** CIDRs (IPv4 and/or IPv6); gateways are Docker's choice. */
  subnets?: string[];
  /** Shorthand for one subnet. */
  subnet?: string;
  internal?: boolean;
  ipv6?: boolean;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

export interface CreatedNetwork {
  name: string;
  id: string;
}

/** Creates a network (registered for clean-up). */
export async function createNetwork(docker: Docker, spec: NetworkSpec = {}): Promise<CreatedNetwork> {
  const name = spec.name ?? uniqueName('moat-net');
  const subnets = [...(spec.subnets ?? []), ...(spec.subnet ? [spec.subnet] : [])];
  const net = await docker.createNetwork({
    Name: name,
    CheckDuplicate: true,
    Driver: spec.driver ?? 'bridge',
    Internal: spec.internal ?? false,
    EnableIPv6: spec.ipv6 ?? subnets.some((s) => s.includes(':')),
    IPAM: { Driver: 'default', Config: subnets.map((s) => ({ Subnet: s })) },
    Labels: spec.labels ?? {},
    Options: spec.options ?? {},
  });
  cleanup.network(docker, net.id);
  return { name, id: net.id };
}

// ---------------------------------------------------------------- containers

export interface PublishSpec {
  hostIp?: string;
  /** Omitted: Docker picks a free port. */
  hostPort?: number;
  containerPort: number;
  protocol?: 'tcp' | 'udp';
}

export interface ContainerSpec {
  /** Default: uniqueName('moat-ctr'). */
  name?: string;
  image?: string;
  /** Networks to attach, in order (the first at create time). Default: Docker's default bridge. */
  networks?: string[];
  /** Fixed addresses per network name. */
  ipv4?: Record<string, string>;
  aliases?: Record<string, string[]>;
  /** TCP ports with a listener (busybox httpd on each). */
  tcpPorts?: number[];
  /** Declared (EXPOSE) ports, e.g. `['80/tcp']`; the tcpPorts are declared too. */
  expose?: string[];
  publish?: PublishSpec[];
  labels?: Record<string, string>;
  /** `host`, `none`, `container:<id>`; overrides `networks`. */
  networkMode?: string;
  /** Replaces the listener command entirely. */
  cmd?: string[];
  /** Create without starting. */
  start?: boolean;
  /** Docker's restart policy `always` (the container comes back after a dockerd restart). */
  restartAlways?: boolean;
}

export interface RunningContainer {
  id: string;
  name: string;
  /** 0 when not started. */
  pid: number;
  /** IPv4 address per attached network. */
  ipv4: Record<string, string>;
  ipv6: Record<string, string>;
}

function checkPort(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad port ${p}`);
  return p;
}

/** Creates (and by default starts) a moat-busybox:1 container, registered for clean-up. */
export async function runContainer(docker: Docker, spec: ContainerSpec = {}): Promise<RunningContainer> {
  const name = spec.name ?? uniqueName('moat-ctr');
  const tcpPorts = spec.tcpPorts ?? [];
  const exposed: Record<string, object> = {};
  for (const p of tcpPorts) exposed[`${checkPort(p)}/tcp`] = {};
  for (const e of spec.expose ?? []) exposed[e] = {};
  const portBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of spec.publish ?? []) {
    const key = `${checkPort(p.containerPort)}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    (portBindings[key] ??= []).push({ HostIp: p.hostIp ?? '', HostPort: p.hostPort ? String(checkPort(p.hostPort)) : '' });
  }
  const networks = spec.networkMode ? [] : (spec.networks ?? []);
  const endpointConfig = (net: string) => ({
    ...(spec.ipv4?.[net] ? { IPAMConfig: { IPv4Address: spec.ipv4[net] } } : {}),
    ...(spec.aliases?.[net] ? { Aliases: spec.aliases[net] } : {}),
  });
  const container = await docker.createContainer({
    name,
    Image: spec.image ?? BUSYBOX_IMAGE,
    Cmd: spec.cmd ?? listenerCommand(tcpPorts),
    Labels: spec.labels ?? {},
    ExposedPorts: exposed,
    StopTimeout: 1,
    HostConfig: {
      NetworkMode: spec.networkMode ?? networks[0] ?? 'bridge',
      PortBindings: portBindings,
      Init: false,
      ...(spec.restartAlways ? { RestartPolicy: { Name: 'always' } } : {}),
    },
    NetworkingConfig: networks.length ? { EndpointsConfig: { [networks[0]]: endpointConfig(networks[0]) } } : undefined,
  });
  cleanup.container(docker, container.id);
  for (const net of networks.slice(1)) {
    await docker.getNetwork(net).connect({ Container: container.id, EndpointConfig: endpointConfig(net) });
  }
  if (spec.start !== false) await container.start();
  const info = await container.inspect();
  const ipv4: Record<string, string> = {};
  const ipv6: Record<string, string> = {};
  for (const [net, n] of Object.entries(info.NetworkSettings.Networks ?? {})) {
    if (n.IPAddress) ipv4[net] = n.IPAddress;
    if (n.GlobalIPv6Address) ipv6[net] = n.GlobalIPv6Address;
  }
  const result = { id: container.id, name, pid: info.State.Pid ?? 0, ipv4, ipv6 };
  if (spec.start !== false && tcpPorts.length && !spec.cmd) await waitListening(result.pid, tcpPorts);
  return result;
}

export async function containerPid(docker: Docker, idOrName: string): Promise<number> {
  const info = await docker.getContainer(idOrName).inspect();
  if (!info.State.Running || !info.State.Pid) throw new Error(`container ${idOrName} is not running`);
  return info.State.Pid;
}

/** TCP ports in LISTEN state in the network namespace of process `pid` (the demo's reader). */
export { listeningTcpPorts };

/** Waits (at most `timeoutMs`) until every port listens in the netns of `pid`. */
export async function waitListening(pid: number, ports: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = listeningTcpPorts(pid);
    const missing = ports.filter((p) => !open.has(p));
    if (!missing.length) return;
    if (Date.now() > deadline) throw new Error(`ports ${missing.join(',')} not listening in pid ${pid} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a command inside the network namespace of `pid` (nsenter -t PID -n), bounded by `timeoutMs`. */
export function inNetns(pid: number, argv: string[], timeoutMs = 10_000): { status: number | null; stdout: string; stderr: string } {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad pid ${pid}`);
  const r = spawnSync('nsenter', ['-t', String(pid), '-n', ...argv], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

// Live audit: the running engine's containers, networks and daemon settings, mapped onto the same
// facts as Compose files so the same checks run.
import type Docker from 'dockerode';
import { userError } from '../model/diagnostics.js';
import { loadPolicies } from '../policy/load.js';
import { dockerClient, discoverUserlandProxy, loadDockerWorld, parseDockerHost } from '../sources/docker/index.js';
import { runProjectChecks } from './checks.js';
import { runDaemonChecks, type DaemonSettings } from './daemon.js';
import type { NetworkFacts, PortFact, ProjectFacts, ServiceFacts } from './facts.js';
import type { Finding } from './types.js';

export interface LiveOptions {
  dockerHost?: string;
  /** Only containers of this Compose project. */
  project?: string;
  /** Skip the reachability analysis (faster). */
  noReachability?: boolean;
}

const ICC = 'com.docker.network.bridge.enable_icc';

function containerName(c: Docker.ContainerInspectInfo): string {
  return c.Name.replace(/^\//, '');
}

/** Maps one inspected container onto ServiceFacts (no file positions). */
export function serviceFactsFromContainer(c: Docker.ContainerInspectInfo): ServiceFacts {
  const hc = c.HostConfig ?? {};
  const ports: PortFact[] = [];
  let index = 0;
  const bindings = (hc.PortBindings ?? {}) as Record<string, { HostIp?: string; HostPort?: string }[] | null>;
  for (const [key, list] of Object.entries(bindings)) {
    const m = /^(\d+)(?:-(\d+))?\/(tcp|udp|sctp)$/.exec(key);
    if (!m) continue;
    for (const b of list ?? []) {
      const hostPort = b.HostPort && /^\d+$/.test(b.HostPort) && b.HostPort !== '0' ? Number(b.HostPort) : undefined;
      const f: PortFact = { hostIp: (b.HostIp ?? '').replace(/^\[|\]$/g, ''), target: Number(m[1]), protocol: m[3], index: index++ };
      if (hostPort !== undefined) {
        f.hostPort = hostPort;
        f.published = String(hostPort);
      } else if (b.HostPort && /^\d+-\d+$/.test(b.HostPort)) f.published = b.HostPort;
      ports.push(f);
    }
  }
  const containerPorts = new Set<number>();
  for (const k of Object.keys(c.Config?.ExposedPorts ?? {})) {
    const m = /^(\d+)\//.exec(k);
    if (m) containerPorts.add(Number(m[1]));
  }
  for (const p of ports) containerPorts.add(p.target);
  const env: Record<string, string | null> = {};
  for (const e of c.Config?.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const mode = hc.NetworkMode ?? 'default';
  const networkMode = mode === 'host' || mode === 'none' || mode.startsWith('container:') ? mode : undefined;
  const cmd = [...(c.Config?.Entrypoint ? ([] as string[]).concat(c.Config.Entrypoint as string | string[]) : []), ...(c.Config?.Cmd ?? [])];
  return {
    name: containerName(c),
    image: c.Config?.Image,
    built: false,
    ports,
    publishAll: hc.PublishAllPorts === true,
    containerPorts: [...containerPorts],
    networkMode,
    networks: networkMode ? [] : Object.keys(c.NetworkSettings?.Networks ?? {}),
    volumes: (c.Mounts ?? []).map((m) => ({ type: m.Type ?? 'volume', source: m.Source || undefined, target: m.Destination, readOnly: m.RW === false })),
    privileged: hc.Privileged === true,
    capAdd: hc.CapAdd ?? [],
    capDrop: hc.CapDrop ?? [],
    user: c.Config?.User ?? '',
    readOnly: hc.ReadonlyRootfs === true,
    securityOpt: hc.SecurityOpt ?? [],
    environment: env,
    commandText: cmd.join(' '),
    pos: () => undefined,
  };
}

export function networkFactsFromInspect(n: Docker.NetworkInspectInfo): NetworkFacts {
  return { key: n.Name, name: n.Name, driver: n.Driver, internal: n.Internal === true, external: false, options: { ...(n.Options ?? {}) } };
}

/** Audits the live engine: containers (running and created), networks, and what the engine tells of its settings. */
export async function auditLive(opts: LiveOptions = {}): Promise<{ findings: Finding[]; warnings: string[]; origin: string }> {
  // loadDockerWorld pings and turns an unreachable engine into a UserError.
  const world = await loadDockerWorld({ dockerHost: opts.dockerHost, project: opts.project });
  const docker = dockerClient(opts.dockerHost);
  const filters = opts.project ? { label: [`com.docker.compose.project=${opts.project}`] } : undefined;
  const summaries = await docker.listContainers({ all: true, ...(filters ? { filters } : {}) });
  const services: ServiceFacts[] = [];
  const ids = new Map<string, string>();
  for (const s of summaries) {
    if (!['running', 'created', 'restarting', 'paused'].includes(s.State)) continue;
    let c: Docker.ContainerInspectInfo;
    try {
      c = await docker.getContainer(s.Id).inspect();
    } catch {
      continue; // removed meanwhile
    }
    const f = serviceFactsFromContainer(c);
    services.push(f);
    ids.set(f.name, c.Id);
  }
  const networks: Record<string, NetworkFacts> = {};
  const rawNets = (await docker.listNetworks(filters ? { filters } : {})) as Docker.NetworkInspectInfo[];
  for (const n of rawNets) networks[n.Name] = networkFactsFromInspect(n);
  const warnings: string[] = [];
  let policySet;
  if (!opts.noReachability) {
    const p = loadPolicies([], world, undefined, true);
    policySet = p.policySet;
    for (const d of p.diagnostics) if (d.severity === 'error') warnings.push(`label policy: ${d.message}`);
  }
  const facts: ProjectFacts = {
    name: world.origin,
    source: 'live',
    services,
    networks,
    world: opts.noReachability ? undefined : world,
    policySet,
    endpointIdOf: (name) => ids.get(name) ?? name,
  };
  const r = runProjectChecks(facts, 'live');
  warnings.push(...r.warnings);
  const findings = [...r.findings];
  // Daemon settings the engine reveals.
  let info: { LiveRestoreEnabled?: boolean; LoggingDriver?: string };
  try {
    info = (await docker.info()) as typeof info;
  } catch (e) {
    throw userError('docker.unreachable', `cannot read the engine's info: ${(e as Error).message}`, { fix: 'check --docker-host' });
  }
  const settings: DaemonSettings = {};
  if (typeof info.LiveRestoreEnabled === 'boolean') settings.liveRestore = info.LiveRestoreEnabled;
  const bridge = rawNets.find((n) => n.Name === 'bridge') ?? (await docker.getNetwork('bridge').inspect().catch(() => undefined));
  if (bridge) settings.icc = (bridge.Options?.[ICC] ?? 'true') !== 'false';
  // The userland-proxy setting can only be read from a local dockerd's command line or daemon.json.
  const proxy = parseDockerHost(opts.dockerHost).local ? discoverUserlandProxy() : undefined;
  if (proxy !== undefined) settings.userlandProxy = proxy;
  const known = new Set(['daemon-no-live-restore', 'daemon-icc', ...(proxy !== undefined ? ['daemon-userland-proxy'] : [])]);
  for (const f of runDaemonChecks({ settings, positions: {}, source: 'live' })) if (known.has(f.checkId)) findings.push(f);
  return { findings, warnings, origin: world.origin };
}

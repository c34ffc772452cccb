// The live source: reads a running Docker Engine (API 1.41 and later; paths are unversioned so the
// client never asks for more than the daemon speaks) and maps it onto the World model.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import Docker from 'dockerode';
import { userError } from '../../model/diagnostics.js';
import { cidrContains, isIp, parseCidr } from '../../model/address.js';
import { spawnSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import {
  completeNamespaces,
  DEFAULT_NAMESPACE,
  emptyWorld,
  type Attachment,
  type DeclaredPort,
  type Endpoint,
  type Network,
  type NetworkMode,
  type Protocol,
  type PublishedPort,
  type World,
} from '../../model/world.js';

export const COMPOSE_PROJECT_LABEL = 'com.docker.compose.project';
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';
export const ICC_OPTION = 'com.docker.network.bridge.enable_icc';
const DEFAULT_SOCKET = '/var/run/docker.sock';

export interface DockerSourceOptions {
  /** `unix:///path`, `tcp://host:port`, or a socket path. Default: $DOCKER_HOST, else /var/run/docker.sock. */
  dockerHost?: string;
  /** Only containers (and networks) with `com.docker.compose.project=<project>`. */
  project?: string;
  /** Request timeout in milliseconds (default 15000). */
  timeoutMs?: number;
}

interface Connection {
  docker: Docker;
  /** The engine address as shown to users: `unix:///var/run/docker.sock`, `tcp://h:p`. */
  display: string;
  local: boolean;
}

/** Parses a docker host string. Throws UserError when it is not a form moat understands. */
export function parseDockerHost(
  hostText: string | undefined,
  timeoutMs = 15000,
): Connection {
  const text = (hostText ?? process.env.DOCKER_HOST ?? '').trim() || `unix://${DEFAULT_SOCKET}`;
  const bad = () =>
    userError('docker.bad-host', `cannot use Docker host '${text}'`, {
      fix: 'pass --docker-host unix:///var/run/docker.sock or --docker-host tcp://HOST:PORT',
    });
  if (text.startsWith('/')) {
    return { docker: new Docker({ socketPath: text, timeout: timeoutMs }), display: `unix://${text}`, local: true };
  }
  if (text.startsWith('unix://')) {
    const path = text.slice('unix://'.length);
    if (!path.startsWith('/')) throw bad();
    return { docker: new Docker({ socketPath: path, timeout: timeoutMs }), display: text, local: true };
  }
  const m = /^(tcp|http):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(text);
  if (m) {
    const port = Number(m[3]);
    if (port < 1 || port > 65535) throw bad();
    const host = m[2].replace(/^\[|\]$/g, '');
    const local = host === 'localhost' || (isIp(host) && (host.startsWith('127.') || host === '::1'));
    return {
      docker: new Docker({ host, port, protocol: 'http', timeout: timeoutMs }),
      display: `tcp://${m[2]}:${port}`,
      local,
    };
  }
  throw bad();
}

function unreachable(display: string, err: unknown) {
  const reason = err instanceof Error ? err.message : String(err);
  return userError('docker.unreachable', `cannot reach the Docker engine at ${display}: ${reason}`, {
    fix: 'start dockerd (for example `bash scripts/ensure-dockerd.sh`) or pass --docker-host unix:///PATH or tcp://HOST:PORT',
  });
}

function statusCode(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Makes a dockerode client for `dockerHost` (see parseDockerHost); used by the demo and the tests. */
export function dockerClient(dockerHost?: string): Docker {
  return parseDockerHost(dockerHost).docker;
}

/** Reads the live engine into a World. Throws UserError when the engine cannot be reached. */
export async function loadDockerWorld(opts: DockerSourceOptions = {}): Promise<World> {
  const conn = parseDockerHost(opts.dockerHost, opts.timeoutMs);
  const { docker } = conn;
  try {
    await docker.ping();
  } catch (err) {
    throw unreachable(conn.display, err);
  }
  try {
    return await readWorld(conn, opts);
  } catch (err) {
    if (statusCode(err) === undefined && (err as { code?: string })?.code) throw unreachable(conn.display, err);
    throw err;
  }
}

async function readWorld(conn: Connection, opts: DockerSourceOptions): Promise<World> {
  const { docker } = conn;
  const world = emptyWorld(`docker://${conn.display.replace(/^[a-z]+:\/\//, '')}`);
  const filters = opts.project ? { label: [`${COMPOSE_PROJECT_LABEL}=${opts.project}`] } : undefined;

  const rawNetworks = (await docker.listNetworks(filters ? { filters } : {})) as Docker.NetworkInspectInfo[];
  for (const n of rawNetworks.sort((a, b) => a.Name.localeCompare(b.Name))) {
    const net = mapNetwork(n);
    if (net) world.networks.push(net);
  }

  const summaries = await docker.listContainers({ all: true, ...(filters ? { filters } : {}) });
  const inspected: Docker.ContainerInspectInfo[] = [];
  for (const s of summaries) {
    if (!['running', 'created', 'restarting', 'paused'].includes(s.State)) continue;
    try {
      inspected.push(await docker.getContainer(s.Id).inspect());
    } catch (err) {
      if (statusCode(err) === 404) continue; // removed meanwhile
      throw err;
    }
  }

  const imageCache = new Map<string, string[]>();
  const imageExposed = async (imageId: string): Promise<string[]> => {
    const hit = imageCache.get(imageId);
    if (hit) return hit;
    let ports: string[] = [];
    try {
      const info = await docker.getImage(imageId).inspect();
      ports = Object.keys(info.Config?.ExposedPorts ?? {});
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    imageCache.set(imageId, ports);
    return ports;
  };

  // Containers joined by `container:<x>` may be named by id, id prefix or name.
  const byRef = (ref: string): Docker.ContainerInspectInfo | undefined =>
    inspected.find((c) => c.Id === ref || c.Name.replace(/^\//, '') === ref) ??
    (ref.length >= 12 ? inspected.find((c) => c.Id.startsWith(ref)) : undefined);

  for (const c of inspected) {
    const endpoint = mapContainer(c, await imageExposed(c.Image), (ref) => byRef(ref)?.Id, world.warnings);
    world.endpoints.push(endpoint);
  }
  world.endpoints.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));

  // Attachments that name a network missing from the list (filtered out by project): keep them resolvable.
  if (opts.project) {
    const known = new Set(world.networks.map((n) => n.name));
    const missing = new Set<string>();
    for (const e of world.endpoints) for (const a of e.attachments) if (!known.has(a.network)) missing.add(a.network);
    for (const name of [...missing].sort()) {
      try {
        const net = mapNetwork((await docker.getNetwork(name).inspect()) as Docker.NetworkInspectInfo);
        if (net) world.networks.push(net);
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    }
  }

  // Gateways the IPAM configuration leaves out (the default bridge): from the containers' attachments, and,
  // for a local engine, from the bridge interface itself.
  const ifaces = conn.local ? hostInterfaceAddresses() : {};
  for (const net of world.networks) {
    const gw = new Set(net.gateways ?? []);
    for (const c of inspected) {
      const info = (c.NetworkSettings?.Networks ?? {})[net.name] as { Gateway?: string; IPv6Gateway?: string } | undefined;
      if (info?.Gateway) gw.add(info.Gateway);
      if (info?.IPv6Gateway) gw.add(info.IPv6Gateway);
    }
    if (net.driver === 'bridge' && net.id) {
      const bridge = net.options['com.docker.network.bridge.name'] || `br-${net.id.slice(0, 12)}`;
      for (const address of ifaces[bridge] ?? []) {
        if (address.toLowerCase().startsWith('fe80:')) continue;
        if (net.subnets.some((s) => { const c = parseCidr(s); return !!c && cidrContains(c, address); })) gw.add(address);
      }
    }
    net.gateways = [...gw].sort();
  }

  // The host: its addresses on Docker's bridges (the gateways), and the userland-proxy setting when local.
  const addresses = new Set<string>();
  for (const n of world.networks) for (const g of n.gateways ?? []) addresses.add(g);
  world.host.addresses = [...addresses].sort();
  if (conn.local) world.host.userlandProxy = discoverUserlandProxy();

  return completeNamespaces(world);
}

export function mapNetwork(n: Docker.NetworkInspectInfo): Network | undefined {
  // `host` and `none` are network modes, not networks: endpoints in them carry networkMode instead.
  if (n.Driver === 'host' || n.Driver === 'null') return undefined;
  const subnets: string[] = [];
  const gateways: string[] = [];
  for (const cfg of n.IPAM?.Config ?? []) {
    if (cfg.Subnet) subnets.push(cfg.Subnet);
    if (cfg.Gateway) gateways.push(cfg.Gateway.replace(/\/\d+$/, ''));
  }
  const options = { ...(n.Options ?? {}) };
  const labels = { ...(n.Labels ?? {}) };
  const net: Network = {
    name: n.Name,
    id: n.Id,
    driver: n.Driver,
    subnets,
    gateways,
    internal: !!n.Internal,
    options,
    icc: options[ICC_OPTION] !== 'false',
    enableIPv6: !!n.EnableIPv6,
    labels,
  };
  if (labels[COMPOSE_PROJECT_LABEL]) net.namespace = labels[COMPOSE_PROJECT_LABEL];
  return net;
}

function toProtocol(text: string | undefined): Protocol | undefined {
  switch ((text ?? 'tcp').toLowerCase()) {
    case 'tcp':
      return 'TCP';
    case 'udp':
      return 'UDP';
    case 'sctp':
      return 'SCTP';
    default:
      return undefined;
  }
}

/** `80/tcp` -> { port, protocol }; undefined for anything else. */
export function parsePortKey(key: string): { port: number; protocol: Protocol } | undefined {
  const m = /^(\d{1,5})(?:\/([a-z]+))?$/i.exec(key.trim());
  if (!m) return undefined;
  const port = Number(m[1]);
  const protocol = toProtocol(m[2]);
  if (!protocol || port < 1 || port > 65535) return undefined;
  return { port, protocol };
}

function parseNetworkMode(mode: string | undefined, resolve: (ref: string) => string | undefined, warnings: string[], who: string): NetworkMode {
  const m = mode ?? 'default';
  if (m === 'host') return { kind: 'host' };
  if (m === 'none') return { kind: 'none' };
  if (m.startsWith('container:')) {
    const ref = m.slice('container:'.length);
    const id = resolve(ref);
    if (!id) warnings.push(`${who}: joins the network namespace of container '${ref}', which moat did not find`);
    return { kind: 'container', of: id ?? ref };
  }
  return { kind: 'bridge' };
}

type PortMap = Record<string, Array<{ HostIp?: string; HostPort?: string }> | null | undefined>;

function bindings(map: PortMap | undefined): Map<string, PublishedPort[]> {
  const out = new Map<string, PublishedPort[]>();
  for (const [key, list] of Object.entries(map ?? {})) {
    const p = parsePortKey(key);
    if (!p || !list) continue;
    const ports: PublishedPort[] = [];
    for (const b of list) {
      const hostPort = b.HostPort ? Number(b.HostPort) : undefined;
      const pp: PublishedPort = { hostIp: b.HostIp ?? '', containerPort: p.port, protocol: p.protocol };
      if (hostPort !== undefined && Number.isInteger(hostPort) && hostPort > 0 && hostPort < 65536) pp.hostPort = hostPort;
      ports.push(pp);
    }
    if (ports.length) out.set(`${p.port}/${p.protocol}`, ports);
  }
  return out;
}

export function mapContainer(
  c: Docker.ContainerInspectInfo,
  imageExposedPorts: string[],
  resolveContainer: (ref: string) => string | undefined,
  warnings: string[],
): Endpoint {
  const labels: Record<string, string> = { ...(c.Config?.Labels ?? {}) };
  const containerName = c.Name.replace(/^\//, '');
  const service = labels[COMPOSE_SERVICE_LABEL];
  const namespace = labels[COMPOSE_PROJECT_LABEL] || DEFAULT_NAMESPACE;
  const who = `container ${containerName}`;
  const networkMode = parseNetworkMode(c.HostConfig?.NetworkMode, resolveContainer, warnings, who);

  const attachments: Attachment[] = [];
  if (networkMode.kind === 'bridge') {
    const nets = (c.NetworkSettings?.Networks ?? {}) as Record<string, Docker.NetworkInfo & { Aliases?: string[] | null }>;
    for (const name of Object.keys(nets).sort()) {
      const n = nets[name];
      const a: Attachment = { network: name };
      if (n.IPAddress) a.ipv4 = n.IPAddress;
      if (n.GlobalIPv6Address) a.ipv6 = n.GlobalIPv6Address;
      const shortId = c.Id.slice(0, 12);
      const aliases = (n.Aliases ?? []).filter((x: string) => x !== shortId);
      if (aliases.length) a.aliases = aliases;
      attachments.push(a);
    }
  }

  const declared = new Map<string, DeclaredPort>();
  const addDeclared = (key: string) => {
    const p = parsePortKey(key);
    if (p) declared.set(`${p.port}/${p.protocol}`, { port: p.port, protocol: p.protocol });
  };
  for (const k of imageExposedPorts) addDeclared(k);
  for (const k of Object.keys(c.Config?.ExposedPorts ?? {})) addDeclared(k);

  // Published ports: the live bindings (concrete host ports) where the engine reports them, else the configuration.
  const configured = bindings(c.HostConfig?.PortBindings as PortMap | undefined);
  const live = bindings(c.NetworkSettings?.Ports as PortMap | undefined);
  const published: PublishedPort[] = [];
  for (const key of new Set([...configured.keys(), ...live.keys()])) {
    const list = live.get(key) ?? configured.get(key) ?? [];
    for (const p of list) {
      if (!published.some((q) => q.hostIp === p.hostIp && q.hostPort === p.hostPort && q.containerPort === p.containerPort && q.protocol === p.protocol)) {
        published.push(p);
      }
    }
    const [port, protocol] = key.split('/');
    if (!declared.has(key)) declared.set(key, { port: Number(port), protocol: protocol as Protocol });
  }
  published.sort(
    (a, b) => a.containerPort - b.containerPort || a.protocol.localeCompare(b.protocol) || a.hostIp.localeCompare(b.hostIp) || (a.hostPort ?? 0) - (b.hostPort ?? 0),
  );

  const endpoint: Endpoint = {
    id: c.Id,
    name: service || containerName,
    namespace,
    containerName,
    labels,
    networkMode,
    attachments,
    declaredPorts: [...declared.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol)),
    publishedPorts: published,
    running: !!c.State?.Running,
    image: c.Config?.Image,
  };
  if (service) endpoint.composeService = service;
  if (c.State?.Pid) endpoint.pid = c.State.Pid;
  return endpoint;
}

/**
 * Addresses per interface, down interfaces included (a bridge without containers is down, and Node's
 * os.networkInterfaces() leaves it out): `ip -j addr show`, else os.networkInterfaces().
 */
function hostInterfaceAddresses(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const r = spawnSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8', timeout: 5000 });
  if (r.status === 0) {
    try {
      const list = JSON.parse(r.stdout) as Array<{ ifname?: string; addr_info?: Array<{ local?: string }> }>;
      for (const i of list) {
        if (!i.ifname) continue;
        out[i.ifname] = (i.addr_info ?? []).map((a) => a.local ?? '').filter((a) => isIp(a));
      }
      return out;
    } catch {
      /* fall back */
    }
  }
  for (const [name, addrs] of Object.entries(networkInterfaces())) out[name] = (addrs ?? []).map((a) => a.address);
  return out;
}

/**
 * Docker's userland-proxy setting for a local engine: dockerd's command line (`--userland-proxy=false`),
 * then /etc/docker/daemon.json (`"userland-proxy": false`); true (Docker's default) when neither says.
 */
export function discoverUserlandProxy(): boolean | undefined {
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let comm = '';
      try {
        comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (comm !== 'dockerd') continue;
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      for (let i = 0; i < args.length; i++) {
        const a = args[i];
        if (a === '--userland-proxy=false') return false;
        if (a === '--userland-proxy=true' || a === '--userland-proxy') {
          if (a === '--userland-proxy' && args[i + 1] === 'false') return false;
          return true;
        }
        if (a === '--config-file' && args[i + 1]) return fromDaemonJson(args[i + 1]);
        if (a.startsWith('--config-file=')) return fromDaemonJson(a.slice('--config-file='.length));
      }
      break;
    }
  } catch {
    /* /proc unreadable: fall through */
  }
  return fromDaemonJson('/etc/docker/daemon.json');
}

function fromDaemonJson(file: string): boolean {
  try {
    if (!existsSync(file)) return true;
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return json['userland-proxy'] !== false;
  } catch {
    return true;
  }
}

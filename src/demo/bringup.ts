// Brings a World (as the Compose resolver produces it) up on a real engine: its networks and one
// stand-in container per endpoint (moat-busybox:1 with a TCP listener on each declared port), labelled
// like Compose would (com.docker.compose.project/service). Returns the live world and a teardown.
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { userError } from '../model/diagnostics.js';
import { cidrContains, isIp, parseCidr } from '../model/address.js';
import { DEFAULT_NAMESPACE, type Endpoint, type Network, type World } from '../model/world.js';
import { COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, dockerClient, loadDockerWorld } from '../sources/docker/index.js';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from './images.js';

export const COMPOSE_NETWORK_LABEL = 'com.docker.compose.network';
/** Marks what moat's bring-up created (teardown and leftovers removal look for it too). */
export const MOAT_DEMO_LABEL = 'io.moat.demo';

export interface BringUpOptions {
  /** `unix:///path` or `tcp://host:port`; default $DOCKER_HOST, else /var/run/docker.sock. */
  dockerHost?: string;
  /** Project (Compose) name; default: the endpoints' namespace (all must share one). */
  project?: string;
  /** Image for every container (default moat-busybox:1, built when missing). Must have busybox sh and httpd. */
  image?: string;
  /** How long to wait for the listeners, in ms (default 15000). A timeout becomes a warning of the world. */
  listenTimeoutMs?: number;
}

export interface BroughtUp {
  world: World;
  teardown(): Promise<void>;
}

function statusCode(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function dockerMessage(err: unknown): string {
  const json = (err as { json?: { message?: string } })?.json;
  if (json?.message) return json.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The stand-in's command: busybox httpd on each TCP port, then an idle loop that ends on SIGTERM. The
 * ports reach the shell as arguments, never inside the script text.
 */
export function listenerCommand(tcpPorts: number[]): string[] {
  for (const p of tcpPorts) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad port ${p}`);
  const script =
    'trap "exit 0" TERM INT; for p in "$@"; do httpd -p "$p" -h /www || exit 1; done; while :; do sleep 3600 & wait $!; done';
  return ['sh', '-c', script, 'moat-listener', ...tcpPorts.map(String)];
}

function projectOf(world: World, explicit?: string): string {
  if (explicit) return explicit;
  const names = [...new Set(world.endpoints.map((e) => e.namespace))];
  if (names.length === 1 && names[0] !== DEFAULT_NAMESPACE) return names[0];
  throw userError('demo.project', `cannot tell the project name: the world's endpoints are in ${names.length ? names.join(', ') : 'no namespace'}`, {
    fix: 'bring up one Compose project at a time, or pass a project name',
  });
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function checkName(kind: string, name: string): string {
  if (!NAME_RE.test(name)) {
    throw userError('demo.bad-name', `${kind} name '${name}' is not a valid Docker name`, { fix: 'use letters, digits, `_`, `.` and `-`' });
  }
  return name;
}

/** Removes the project's containers and networks (those labelled com.docker.compose.project=<project>). */
export async function removeProject(docker: Docker, project: string): Promise<void> {
  const filters = { label: [`${COMPOSE_PROJECT_LABEL}=${project}`] };
  for (const c of await docker.listContainers({ all: true, filters })) {
    try {
      await docker.getContainer(c.Id).remove({ force: true, v: true });
    } catch (err) {
      if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
    }
  }
  for (const n of await docker.listNetworks({ filters })) {
    try {
      const info = (await docker.getNetwork(n.Id).inspect()) as Docker.NetworkInspectInfo;
      for (const id of Object.keys(info.Containers ?? {})) {
        await docker.getNetwork(n.Id).disconnect({ Container: id, Force: true }).catch(() => undefined);
      }
      await docker.getNetwork(n.Id).remove();
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  }
}

/** Orders endpoints so that a `container:` mode comes after the endpoint whose netns it joins. */
function creationOrder(endpoints: Endpoint[]): Endpoint[] {
  const byId = new Map(endpoints.map((e) => [e.id, e]));
  const out: Endpoint[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (e: Endpoint) => {
    if (state.get(e.id) === 'done') return;
    if (state.get(e.id) === 'visiting') {
      throw userError('demo.cycle', `endpoint ${e.namespace}/${e.name} joins a network namespace in a cycle`, { fix: 'break the network_mode cycle' });
    }
    state.set(e.id, 'visiting');
    if (e.networkMode.kind === 'container') {
      const target = byId.get(e.networkMode.of);
      if (target) visit(target);
    }
    state.set(e.id, 'done');
    out.push(e);
  };
  endpoints.forEach(visit);
  return out;
}

/** TCP ports in LISTEN state in the netns of `pid` (/proc/PID/net/tcp{,6}). */
export function listeningTcpPorts(pid: number): Set<number> {
  const ports = new Set<number>();
  for (const f of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[3] === '0A') ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}

/**
 * Creates the world's networks and containers on the engine (replacing leftovers of the same project),
 * starts them, and returns the live world (loadDockerWorld filtered to the project) with a teardown.
 * External networks (Compose `external: true`, `bridge`) must exist already.
 */
export async function bringUpWorld(world: World, opts: BringUpOptions = {}): Promise<BroughtUp> {
  const docker = dockerClient(opts.dockerHost);
  const project = checkName('project', projectOf(world, opts.project));
  const image = opts.image ?? BUSYBOX_IMAGE;
  try {
    await docker.ping();
  } catch (err) {
    throw userError('docker.unreachable', `cannot reach the Docker engine: ${dockerMessage(err)}`, {
      fix: 'start dockerd (for example `bash scripts/ensure-dockerd.sh`) or pass --docker-host',
    });
  }
  if (image === BUSYBOX_IMAGE) await ensureBusyboxImage(docker);

  // Replace leftovers of an earlier bring-up of the same project.
  await removeProject(docker, project);

  const teardown = async () => {
    await removeProject(docker, project);
  };

  try {
    // Networks.
    for (const n of world.networks) {
      if (n.external || n.name === 'bridge' || n.driver === 'host' || n.driver === 'null') {
        try {
          await docker.getNetwork(n.name).inspect();
        } catch (err) {
          if (statusCode(err) === 404) {
            throw userError('demo.missing-network', `the external network '${n.name}' does not exist`, {
              fix: `create it first: docker network create ${n.name}`,
            });
          }
          throw err;
        }
        continue;
      }
      await createNetwork(docker, n, project);
    }

    // Containers.
    const containerIds = new Map<string, string>();
    const listeners: Array<{ id: string; ports: number[] }> = [];
    for (const e of creationOrder(world.endpoints)) {
      const name = checkName('container', e.containerName ?? `${project}-${e.name}-1`);
      const tcpPorts = e.networkMode.kind === 'host' ? [] : [...new Set(e.declaredPorts.filter((p) => p.protocol === 'TCP').map((p) => p.port))].sort((a, b) => a - b);
      const exposed: Record<string, object> = {};
      for (const p of e.declaredPorts) exposed[`${p.port}/${p.protocol.toLowerCase()}`] = {};
      const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
      for (const p of e.publishedPorts) {
        const hostIp = p.hostIp.replace(/^\[|\]$/g, '');
        if (hostIp !== '' && !isIp(hostIp)) {
          throw userError('demo.bad-host-ip', `${e.namespace}/${e.name}: cannot publish on host address '${p.hostIp}'`, { fix: 'use an IP address' });
        }
        const key = `${p.containerPort}/${p.protocol.toLowerCase()}`;
        exposed[key] = {};
        (bindings[key] ??= []).push({ HostIp: hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' });
      }
      let networkMode: string;
      switch (e.networkMode.kind) {
        case 'host':
          networkMode = 'host';
          break;
        case 'none':
          networkMode = 'none';
          break;
        case 'container': {
          const target = containerIds.get(e.networkMode.of);
          if (!target) {
            throw userError('demo.unknown-container', `${e.namespace}/${e.name} joins the network namespace of '${e.networkMode.of}', which is not part of this world`, {
              fix: 'bring up the service it joins in the same project',
            });
          }
          networkMode = `container:${target}`;
          break;
        }
        default:
          networkMode = e.attachments[0]?.network ?? 'none';
      }
      const endpointConfig = (a: Endpoint['attachments'][number]) => {
        const ipam: { IPv4Address?: string; IPv6Address?: string } = {};
        if (a.ipv4) ipam.IPv4Address = a.ipv4;
        if (a.ipv6) ipam.IPv6Address = a.ipv6;
        return { ...(Object.keys(ipam).length ? { IPAMConfig: ipam } : {}), ...(a.aliases?.length ? { Aliases: a.aliases } : {}) };
      };
      const attachments = e.networkMode.kind === 'bridge' ? e.attachments : [];
      const sharesNetns = e.networkMode.kind === 'container';
      let created: Docker.Container;
      try {
        created = await docker.createContainer({
          name,
          Image: image,
          Cmd: listenerCommand(tcpPorts),
          Labels: { ...e.labels, [COMPOSE_PROJECT_LABEL]: project, [COMPOSE_SERVICE_LABEL]: e.composeService ?? e.name, [MOAT_DEMO_LABEL]: 'true' },
          ...(sharesNetns ? {} : { ExposedPorts: exposed }),
          StopTimeout: 1,
          HostConfig: { NetworkMode: networkMode, ...(sharesNetns || networkMode === 'host' ? {} : { PortBindings: bindings }) },
          NetworkingConfig: attachments.length ? { EndpointsConfig: { [attachments[0].network]: endpointConfig(attachments[0]) } } : undefined,
        });
      } catch (err) {
        throw userError('demo.create-failed', `cannot create the container for ${e.namespace}/${e.name}: ${dockerMessage(err)}`, {
          fix: 'free the name or ports it needs (see the message), then run again',
        });
      }
      containerIds.set(e.id, created.id);
      for (const a of attachments.slice(1)) {
        await docker.getNetwork(a.network).connect({ Container: created.id, EndpointConfig: endpointConfig(a) });
      }
      try {
        await created.start();
      } catch (err) {
        throw userError('demo.start-failed', `cannot start the container for ${e.namespace}/${e.name}: ${dockerMessage(err)}`, {
          fix: /port is already allocated|address already in use/i.test(dockerMessage(err))
            ? 'a published host port is taken: stop what uses it or change the port mapping'
            : 'see the message; `docker logs` may tell more',
        });
      }
      if (tcpPorts.length && !sharesNetns) listeners.push({ id: created.id, ports: tcpPorts });
    }

    // The live world, once the listeners answer (local engine: read /proc; bounded).
    let live = await loadDockerWorld({ dockerHost: opts.dockerHost, project });
    const deadline = Date.now() + (opts.listenTimeoutMs ?? 15_000);
    for (const l of listeners) {
      const pid = live.endpoints.find((e) => e.id === l.id)?.pid;
      if (!pid) continue;
      for (;;) {
        const open = listeningTcpPorts(pid);
        if (open.size === 0 && !readableProc(pid)) break; // remote engine: nothing to check
        const missing = l.ports.filter((p) => !open.has(p));
        if (!missing.length) break;
        if (Date.now() > deadline) {
          live.warnings.push(`container ${l.id.slice(0, 12)}: ports ${missing.join(',')} not listening yet`);
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { world: live, teardown };
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}

function readableProc(pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/net/tcp`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

async function createNetwork(docker: Docker, n: Network, project: string): Promise<void> {
  checkName('network', n.name);
  const key = n.name.startsWith(`${project}_`) ? n.name.slice(project.length + 1) : n.name;
  const config = n.subnets.map((subnet) => {
    const c: { Subnet: string; Gateway?: string } = { Subnet: subnet };
    const cidr = parseCidr(subnet);
    const gw = cidr ? n.gateways?.find((g) => isIp(g) && cidrContains(cidr, g)) : undefined;
    if (gw) c.Gateway = gw;
    return c;
  });
  try {
    await docker.createNetwork({
      Name: n.name,
      CheckDuplicate: true,
      Driver: n.driver || 'bridge',
      Internal: n.internal,
      EnableIPv6: n.enableIPv6,
      IPAM: { Driver: 'default', Config: config },
      Options: { ...n.options },
      Labels: { ...(n.labels ?? {}), [COMPOSE_PROJECT_LABEL]: project, [COMPOSE_NETWORK_LABEL]: key, [MOAT_DEMO_LABEL]: 'true' },
    });
  } catch (err) {
    const msg = dockerMessage(err);
    throw userError('demo.network-failed', `cannot create network '${n.name}': ${msg}`, {
      fix: /overlap/i.test(msg)
        ? `another network uses ${n.subnets.join(', ')}: remove it or change the subnet`
        : /already exists/i.test(msg)
          ? `a network '${n.name}' not made by this project exists: remove it (docker network rm ${n.name})`
          : 'see the message',
    });
  }
}

/** Removes everything of a project brought up earlier (containers, then networks). Idempotent. */
export async function tearDownProject(project: string, opts: { dockerHost?: string } = {}): Promise<void> {
  await removeProject(dockerClient(opts.dockerHost), checkName('project', project));
}

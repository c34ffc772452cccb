// The World as the controller keeps it: loaded in full at start and on every resync, then updated
// one container or network at a time from events (one inspect per changed object), so a burst of
// events costs a handful of API calls, not a full reload.
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { cidrContains, parseCidr } from '../model/address.js';
import { completeNamespaces, emptyWorld, type Endpoint, type Network, type World } from '../model/world.js';
import { COMPOSE_PROJECT_LABEL, loadDockerWorld, mapContainer, mapNetwork } from '../sources/docker/index.js';

const LIVE_STATES = ['running', 'created', 'restarting', 'paused'];

function statusCode(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

export interface LiveWorldOptions {
  dockerHost?: string;
  /** Only this Compose project's containers and networks (plus the networks they attach to). */
  project?: string;
}

export interface ChangeSummary {
  containers: string[];
  networks: string[];
}

/**
 * The object moat already holds when the one read back from Docker has the same content: the compile
 * session recognises unchanged containers and networks by identity.
 */
function keepIfSame<T>(prev: T | undefined, next: T): T {
  return prev !== undefined && JSON.stringify(prev) === JSON.stringify(next) ? prev : next;
}

export class LiveWorld {
  private origin = 'docker://';
  private endpoints = new Map<string, Endpoint>();
  private networks = new Map<string, Network>();
  private hostAddresses: string[] = [];
  private userlandProxy: boolean | undefined;
  private imageCache = new Map<string, string[]>();
  private warnings: string[] = [];
  /** Since when each container has been enforced (first seen with an address). */
  readonly firstSeen = new Map<string, string>();

  constructor(
    private readonly docker: Docker,
    private readonly options: LiveWorldOptions = {},
  ) {}

  /** What the two list calls said at the last full load (see listKey). */
  private loadedKey: string | undefined;

  /**
   * A digest of what Docker lists (networks: id, subnets, labels; live containers: id, state, and
   * addresses per network), two API calls and no inspect. A full load re-reads everything only when
   * this changed: containers' labels, ports and network mode cannot change without a new container.
   */
  async listKey(): Promise<string> {
    const filters = this.options.project ? { label: [`${COMPOSE_PROJECT_LABEL}=${this.options.project}`] } : undefined;
    const nets = (await this.docker.listNetworks(filters ? { filters } : {})) as Docker.NetworkInspectInfo[];
    const ctrs = await this.docker.listContainers({ all: true, ...(filters ? { filters } : {}) });
    const n = nets.map((x) => [x.Id, x.Driver, (x.IPAM?.Config ?? []).map((c) => c.Subnet ?? ''), x.Labels ?? {}] as const).sort((a, b) => a[0].localeCompare(b[0]));
    const c = ctrs
      .filter((x) => LIVE_STATES.includes(x.State))
      .map((x) => [x.Id, x.State, Object.entries(x.NetworkSettings?.Networks ?? {}).map(([k, v]) => [k, v.IPAddress ?? '', v.GlobalIPv6Address ?? '']).sort()] as const)
      .sort((a, b) => a[0].localeCompare(b[0]));
    return createHash('sha256').update(JSON.stringify([n, c])).digest('hex');
  }

  /** True when Docker lists exactly what the last full load saw (nothing to re-read). */
  async unchangedSinceLoad(): Promise<boolean> {
    return this.loadedKey !== undefined && (await this.listKey()) === this.loadedKey;
  }

  /** Called when an event changed the world: the next periodic check must read everything. */
  invalidateLoadKey(): void {
    this.loadedKey = undefined;
  }

  /** Reloads everything (start, resync, after a reconnect). */
  async loadAll(): Promise<void> {
    const key = await this.listKey();
    const w = await loadDockerWorld({ dockerHost: this.options.dockerHost, project: this.options.project });
    this.origin = w.origin;
    // A periodic resync that found nothing new stays a delta compile instead of a full one (at
    // 10,000 endpoints ~0.3 s, holding up the events behind it).
    this.endpoints = new Map(w.endpoints.map((e) => [e.id, keepIfSame(this.endpoints.get(e.id), e)]));
    this.networks = new Map(w.networks.map((n) => [n.name, keepIfSame(this.networks.get(n.name), n)]));
    this.hostAddresses = w.host.addresses;
    this.userlandProxy = w.host.userlandProxy;
    this.warnings = w.warnings;
    for (const id of [...this.firstSeen.keys()]) if (!this.endpoints.has(id)) this.firstSeen.delete(id);
    this.loadedKey = key;
  }

  private inProject(labels: Record<string, string> | undefined): boolean {
    return !this.options.project || labels?.[COMPOSE_PROJECT_LABEL] === this.options.project;
  }

  private async imageExposed(imageId: string): Promise<string[]> {
    const hit = this.imageCache.get(imageId);
    if (hit) return hit;
    let ports: string[] = [];
    try {
      const info = await this.docker.getImage(imageId).inspect();
      ports = Object.keys(info.Config?.ExposedPorts ?? {});
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    if (this.imageCache.size > 1000) this.imageCache.clear();
    this.imageCache.set(imageId, ports);
    return ports;
  }

  /** Re-reads one container (after an event). Returns false when it is gone or not ours. */
  async refreshContainer(id: string): Promise<boolean> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusCode(err) === 404) {
        this.removeContainer(id);
        return false;
      }
      throw err;
    }
    if (!this.inProject(info.Config?.Labels ?? {}) || !LIVE_STATES.includes(info.State?.Status ?? '')) {
      this.removeContainer(info.Id);
      return false;
    }
    const resolve = (ref: string) => {
      for (const e of this.endpoints.values()) if (e.id === ref || e.containerName === ref || (ref.length >= 12 && e.id.startsWith(ref))) return e.id;
      return undefined;
    };
    const e = mapContainer(info, await this.imageExposed(info.Image), resolve, this.warnings);
    this.endpoints.set(e.id, e);
    // Networks it is attached to, gateways included (the default bridge has none in its IPAM config).
    for (const [name, n] of Object.entries(info.NetworkSettings?.Networks ?? {})) {
      if (!this.networks.has(name)) await this.refreshNetwork(name, true);
      const net = this.networks.get(name);
      const gw = (n as { Gateway?: string; IPv6Gateway?: string });
      if (net) {
        const set = new Set(net.gateways ?? []);
        if (gw.Gateway) set.add(gw.Gateway);
        if (gw.IPv6Gateway) set.add(gw.IPv6Gateway);
        const gateways = [...set].sort();
        // A new object when they change, never an edit in place: the compile session compares
        // networks by identity (and may hold this one in its previous world).
        if (JSON.stringify(gateways) !== JSON.stringify(net.gateways ?? [])) this.networks.set(name, { ...net, gateways });
      }
    }
    return true;
  }

  removeContainer(id: string): void {
    for (const key of [...this.endpoints.keys()]) if (key === id) this.endpoints.delete(key);
    this.firstSeen.delete(id);
  }

  /** Re-reads one network by name or id. `attached`: one of our containers uses it (keep it whatever its project). */
  async refreshNetwork(nameOrId: string, attached = false): Promise<void> {
    let info: Docker.NetworkInspectInfo;
    try {
      info = (await this.docker.getNetwork(nameOrId).inspect()) as Docker.NetworkInspectInfo;
    } catch (err) {
      if (statusCode(err) === 404) {
        this.removeNetwork(nameOrId);
        return;
      }
      throw err;
    }
    const used = attached || [...this.endpoints.values()].some((e) => e.attachments.some((a) => a.network === info.Name));
    if (!this.inProject(info.Labels ?? {}) && !used) return;
    const net = mapNetwork(info);
    if (!net) return;
    const prev = this.networks.get(net.name);
    const gw = new Set([...(net.gateways ?? []), ...(prev?.gateways ?? [])]);
    // Keep only gateways still inside the subnets (a network re-created under the same name).
    net.gateways = [...gw].filter((g) => net.subnets.some((s) => { const c = parseCidr(s); return !!c && cidrContains(c, g); })).sort();
    // A container joining an unchanged network (a `connect` event) is then no network change for the
    // compile session, which keeps compiling only that container.
    this.networks.set(net.name, keepIfSame(prev, net));
  }

  removeNetwork(nameOrId: string): void {
    for (const [k, n] of this.networks) if (k === nameOrId || n.id === nameOrId) this.networks.delete(k);
  }

  /** The current World (a fresh object; endpoints and networks are shared, treat them as read-only). */
  world(): World {
    const w = emptyWorld(this.origin);
    w.endpoints = [...this.endpoints.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    w.networks = [...this.networks.values()].sort((a, b) => a.name.localeCompare(b.name));
    const hostAddrs = new Set(this.hostAddresses);
    for (const n of w.networks) for (const g of n.gateways ?? []) hostAddrs.add(g);
    w.host = { addresses: [...hostAddrs].sort(), userlandProxy: this.userlandProxy };
    w.warnings = [...this.warnings];
    const now = new Date().toISOString();
    for (const e of w.endpoints) if (!this.firstSeen.has(e.id) && e.attachments.some((a) => a.ipv4 || a.ipv6)) this.firstSeen.set(e.id, now);
    return completeNamespaces(w);
  }

  get size(): { endpoints: number; networks: number } {
    return { endpoints: this.endpoints.size, networks: this.networks.size };
  }
}

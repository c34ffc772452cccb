// The World: moat's model of one Docker host, the same whatever source produced it
// (live Engine API, Compose files, or a JSON snapshot). Plain data, no behaviour.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** A port the container declares (EXPOSE, Compose `expose`/`ports` target, snapshot). */
export interface DeclaredPort {
  port: number;
  protocol: Protocol;
  /** Optional name, used by NetworkPolicy named ports (resolved per destination). */
  name?: string;
}

/** A port published on the host (`-p hostIp:hostPort:containerPort/proto`). */
export interface PublishedPort {
  /** Host address the port is bound to. '' or '0.0.0.0' or '::' mean all interfaces. Symbolic values stay as written. */
  hostIp: string;
  /** Host port; undefined when Docker chooses one at run time (`-p 80`, `-P`). */
  hostPort?: number;
  containerPort: number;
  protocol: Protocol;
}

/** One attachment of an endpoint to a network. */
export interface Attachment {
  /** Key of the network in World.networks. */
  network: string;
  /** Addresses; undefined when not fixed (Compose without ipv4_address): analysis treats them as symbolic. */
  ipv4?: string;
  ipv6?: string;
  aliases?: string[];
}

/**
 * How the endpoint's network namespace is shared:
 *  - bridge: its own netns, attached to `attachments` (the normal case, also user-defined networks);
 *  - host: the host's netns (it *is* the host, network-wise);
 *  - none: loopback only;
 *  - container: joins another endpoint's netns (Compose `service:x`, `container:x`), `of` is that endpoint's id.
 */
export type NetworkMode =
  | { kind: 'bridge' }
  | { kind: 'host' }
  | { kind: 'none' }
  | { kind: 'container'; of: string };

export interface Endpoint {
  /** Stable identifier: the container id (live), `project/service[-n]` (Compose), or as given (snapshot). */
  id: string;
  /** Short name shown to users inside its namespace: the Compose service, else the container name. */
  name: string;
  /** Namespace: the Compose project, `default` for containers outside any project. */
  namespace: string;
  /** Container name, when known. */
  containerName?: string;
  composeService?: string;
  labels: Record<string, string>;
  networkMode: NetworkMode;
  attachments: Attachment[];
  declaredPorts: DeclaredPort[];
  publishedPorts: PublishedPort[];
  /** Whether the container is running (live source); Compose and snapshots assume true. */
  running?: boolean;
  /** PID of the container's init process (live source), used by `verify` to enter its netns. */
  pid?: number;
  image?: string;
}

export interface Network {
  /** Key used by attachments: the network's name (Compose: the resolved name, e.g. `shop_backend`). */
  name: string;
  id?: string;
  /** Namespace (Compose project) that declared it, when any. */
  namespace?: string;
  driver: string;
  /** CIDR strings (IPv4 and IPv6). Empty when Docker chooses at run time. */
  subnets: string[];
  gateways?: string[];
  internal: boolean;
  /** Driver options, e.g. `encrypted`, `com.docker.network.bridge.enable_icc`. */
  options: Record<string, string>;
  /** Inter-container communication on this bridge (false with enable_icc=false). */
  icc: boolean;
  enableIPv6: boolean;
  /** `external: true` in Compose: not created by this project. */
  external?: boolean;
  labels?: Record<string, string>;
}

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/** An address range outside the host that the user names (a peer such as an office network). */
export interface ExternalHost {
  name: string;
  cidrs: string[];
}

export interface HostInfo {
  /** The host's own addresses, when known (live source). */
  addresses: string[];
  /** Docker's userland-proxy setting, when known. */
  userlandProxy?: boolean;
}

export interface World {
  /** Where this world came from, for messages: `docker://...`, `compose:a.yml,b.yml`, `snapshot:FILE`. */
  origin: string;
  namespaces: Namespace[];
  endpoints: Endpoint[];
  networks: Network[];
  externals: ExternalHost[];
  host: HostInfo;
  /** Warnings found while building the world (unresolved names, symbolic addresses). */
  warnings: string[];
}

export const DEFAULT_NAMESPACE = 'default';
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** `namespace/name`, the way endpoints are shown everywhere. */
export function endpointDisplayName(endpoint: Pick<Endpoint, 'namespace' | 'name'>): string {
  return `${endpoint.namespace}/${endpoint.name}`;
}

/** The labels of a namespace, always including `kubernetes.io/metadata.name`. */
export function namespaceLabels(world: World, name: string): Record<string, string> {
  const ns = world.namespaces.find((n) => n.name === name);
  return { ...(ns?.labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

/** Ensures every endpoint's namespace exists in world.namespaces (with its metadata.name label). */
export function completeNamespaces(world: World): World {
  const names = new Set(world.namespaces.map((n) => n.name));
  const namespaces = world.namespaces.map((n) => ({ ...n, labels: { ...n.labels, [NAMESPACE_NAME_LABEL]: n.name } }));
  for (const e of world.endpoints) {
    if (!names.has(e.namespace)) {
      names.add(e.namespace);
      namespaces.push({ name: e.namespace, labels: { [NAMESPACE_NAME_LABEL]: e.namespace } });
    }
  }
  return { ...world, namespaces };
}

export function emptyWorld(origin: string): World {
  return { origin, namespaces: [], endpoints: [], networks: [], externals: [], host: { addresses: [] }, warnings: [] };
}

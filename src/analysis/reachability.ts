// The reachability analyzer: for every ordered pair of nodes (endpoints, the host, the internet,
// named external hosts) the connections allowed by topology and policy together.
import { parseCidr, type Cidr } from '../model/address.js';
import { ConnSet } from '../model/connset.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { PolicySet } from '../model/ir.js';
import { endpointDisplayName, type Endpoint, type World } from '../model/world.js';
import { connectionsAlong, resolveWorld, topology, type Node, type ResolvedWorld } from './resolve.js';

export type NodeKind = 'endpoint' | 'host' | 'internet' | 'external';

export interface MatrixNode {
  /** Display id: `shop/web`, `host`, `internet`, `external:office`. */
  id: string;
  kind: NodeKind;
  endpoint?: Endpoint;
  /** Index in the resolved world's endpoints (kind endpoint). */
  endpointIndex?: number;
  /** Known addresses of the node (endpoints: their container addresses; externals: their CIDRs). */
  addresses: string[];
}

export interface AnalyzeOptions {
  /** Ignore topology: answer for policy alone, as if everything could route to everything. */
  flat?: boolean;
}

export interface Analysis {
  world: World;
  policies: PolicySet;
  resolved: ResolvedWorld;
  flat: boolean;
  nodes: MatrixNode[];
  /** Allowed connections from node index `from` to node index `to`. */
  connections(from: number, to: number): ConnSet;
  /** Node index by display id (`shop/web`, `host`, `internet`, `external:office`), endpoint id or container name. */
  nodeIndex(name: string): number | undefined;
  /** Every ordered pair with a non-empty connection set. */
  flows(): { from: number; to: number; connections: ConnSet }[];
  warnings: Diagnostic[];
  /** The resolver's node for a matrix node index. */
  resolverNode(index: number): Node;
}

export function analyze(world: World, policies: PolicySet, options: AnalyzeOptions = {}): Analysis {
  const flat = options.flat ?? false;
  const mergedWorld: World = {
    ...world,
    externals: [...world.externals, ...policies.externals.filter((x) => !world.externals.some((w) => w.name === x.name))],
  };
  const rw = resolveWorld(mergedWorld, policies);
  const warnings = [...rw.warnings];

  const nodes: MatrixNode[] = [];
  const resolverNodes: Node[] = [];
  const order = rw.endpoints.map((e, i) => ({ e, i })).sort((x, y) => endpointDisplayName(x.e).localeCompare(endpointDisplayName(y.e)));
  for (const { e, i } of order) {
    if (e.networkMode.kind === 'host' && !flat) {
      warnings.push({
        severity: 'warning',
        code: 'endpoint.host-network',
        message: `${endpointDisplayName(e)} uses network_mode host: network-wise it is the host, and moat cannot isolate it`,
        fix: 'give it its own network unless it truly needs the host network',
      });
      continue;
    }
    nodes.push({
      id: endpointDisplayName(e),
      kind: 'endpoint',
      endpoint: e,
      endpointIndex: i,
      addresses: e.attachments.flatMap((a) => [a.ipv4, a.ipv6].filter((x): x is string => !!x)),
    });
    resolverNodes.push({ kind: 'endpoint', index: i });
  }
  nodes.push({ id: 'host', kind: 'host', addresses: [...world.host.addresses] });
  resolverNodes.push({ kind: 'host' });
  nodes.push({ id: 'internet', kind: 'internet', addresses: [] });
  resolverNodes.push({ kind: 'internet' });
  for (const x of mergedWorld.externals) {
    const cidrs = x.cidrs.map((c) => parseCidr(c)).filter((c): c is Cidr => !!c);
    nodes.push({ id: `external:${x.name}`, kind: 'external', addresses: cidrs.map((c) => c.text) });
    resolverNodes.push({ kind: 'external', name: x.name, cidrs });
  }

  const byName = new Map<string, number>();
  nodes.forEach((n, idx) => {
    byName.set(n.id, idx);
    if (n.endpoint) {
      for (const alias of [n.endpoint.id, n.endpoint.containerName, n.endpoint.name]) {
        if (alias && !byName.has(alias)) byName.set(alias, idx);
      }
    }
  });
  for (const x of mergedWorld.externals) if (!byName.has(x.name)) byName.set(x.name, byName.get(`external:${x.name}`)!);

  const n = nodes.length;
  const cache: (ConnSet | undefined)[] = new Array(n * n);
  const connections = (from: number, to: number): ConnSet => {
    if (from === to) return ConnSet.none;
    const k = from * n + to;
    let c = cache[k];
    if (c === undefined) {
      c = compute(rw, resolverNodes[from], resolverNodes[to], flat);
      cache[k] = c;
    }
    return c;
  };

  return {
    world: rw.world,
    policies,
    resolved: rw,
    flat,
    nodes,
    connections,
    nodeIndex: (name) => byName.get(name),
    flows: () => {
      const out: { from: number; to: number; connections: ConnSet }[] = [];
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) {
          if (a === b) continue;
          const c = connections(a, b);
          if (!c.isEmpty) out.push({ from: a, to: b, connections: c });
        }
      }
      return out;
    },
    warnings,
    resolverNode: (i) => resolverNodes[i],
  };
}

function compute(rw: ResolvedWorld, from: Node, to: Node, flat: boolean): ConnSet {
  // Connections between two non-container nodes are not moat's to decide.
  if (from.kind !== 'endpoint' && to.kind !== 'endpoint') return ConnSet.none;
  if (flat) return connectionsAlong(rw, from, to, { kind: 'flat' });
  const topo = topology(rw, from, to);
  let total = ConnSet.none;
  for (const path of topo.paths) {
    total = total.union(connectionsAlong(rw, from, to, path));
    if (total.isAll) break;
  }
  return total;
}

// The reachability analyzer: for every ordered pair of nodes (endpoints, the host, the internet,
// named external hosts) the connections allowed by topology and policy together.
// (Skeleton: the implementation lands next; the API below is stable.)
import type { ConnSet } from '../model/connset.js';
import type { PolicySet } from '../model/ir.js';
import type { Endpoint, World } from '../model/world.js';

export type NodeKind = 'endpoint' | 'host' | 'internet' | 'external';

export interface MatrixNode {
  /** Display id: `shop/web`, `host`, `internet`, `external:office`. */
  id: string;
  kind: NodeKind;
  endpoint?: Endpoint;
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
  nodes: MatrixNode[];
  /** Allowed connections from node index `from` to node index `to`. */
  connections(from: number, to: number): ConnSet;
  /** Node index by display id (`shop/web`, `host`, `internet`, `external:office`) or endpoint id/container name. */
  nodeIndex(name: string): number | undefined;
}

export function analyze(_world: World, _policies: PolicySet, _options: AnalyzeOptions = {}): Analysis {
  throw new Error('not implemented yet');
}

// What the compiler needs, resolved from (World, PolicySet): per endpoint its addresses, whether
// each direction is isolated, and its deny and allow clauses with peers turned into addresses and
// ports turned into connection sets (named ports resolved per destination).
import type { ConnSet } from '../../model/connset.js';
import type { DefaultStance } from '../../model/ir.js';
import type { Protocol } from '../../model/world.js';

/** A peer as addresses. Several kinds may be set at once; the clause matches their union. */
export interface PeerAddresses {
  any?: boolean;
  host?: boolean;
  internet?: boolean;
  /** Container addresses and plain CIDRs (canonical text). */
  cidrs: string[];
  /** CIDRs with exceptions (Kubernetes ipBlock.except). */
  cidrsExcept: { cidr: string; except: string[] }[];
  /**
   * Stable identity of the peer (from the policy text, not from its members), used to name its sets so
   * that a container joining a group changes set elements only, never set or chain names.
   */
  key?: string;
  /** Membership depends on the world (endpoint selectors): its sets exist in both families, even empty. */
  dynamic?: boolean;
}

export interface Clause {
  policyId: string;
  peer: PeerAddresses;
  conns: ConnSet;
}

export interface DirectionPolicy {
  isolated: boolean;
  /** Ids of the policies that isolate the endpoint in this direction. */
  isolatedBy: string[];
  denies: Clause[];
  allows: Clause[];
}

export interface PublishedGuard {
  allowlistId: string;
  hostPort: number;
  protocol: Protocol;
  sources: PeerAddresses;
}

export interface ResolvedEndpoint {
  id: string;
  display: string;
  /** Canonical addresses on managed networks. */
  addresses: string[];
  ingress: DirectionPolicy;
  egress: DirectionPolicy;
  published: PublishedGuard[];
}

export interface ResolvedNetwork {
  name: string;
  subnets: string[];
  /** Gateway addresses (the host's addresses on the bridge). */
  gateways: string[];
  managed: boolean;
}

export interface EnforcementInput {
  endpoints: ResolvedEndpoint[];
  networks: ResolvedNetwork[];
  /** Ranges that are not "internet" besides containers and the host (policy internalRanges). */
  internalRanges: string[];
  defaultStance: DefaultStance;
  warnings: string[];
  /**
   * Container addresses on networks moat does not manage (they still fill the peer sets of the
   * containers' selectors): address -> id of the first endpoint with it, of every endpoint in the
   * world (also those `only` left out), so that those elements carry their container as owner.
   */
  unmanagedOwners?: Map<string, string>;
}

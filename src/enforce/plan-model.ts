// The backend-neutral ruleset plan, in the style of kubernetes-sigs/knftables: typed objects
// (chain, rule, set, verdict map, element), each carrying its owner (container id, policy id,
// network). The nft and iptables renderers turn the same plan into their own text.
import type { Family } from '../model/address.js';
import type { PortRanges } from '../model/connset.js';
import { safeComment } from './validate.js';

export type L4 = 'tcp' | 'udp' | 'sctp';

export type Match =
  /** Address in a named set of the plan. */
  | { kind: 'set'; dir: 'src' | 'dst'; family: Family; set: string; negate?: boolean }
  /**
   * Address in one fixed CIDR or address (canonical text, no `/32` or `/128`): a policy's only CIDR
   * of a family, or a CIDR peer's only exception, written into the rule instead of a set of one
   * element (nft `ip saddr 10.0.0.0/8`; iptables `-s`, or `-m iprange` when negated).
   */
  | { kind: 'cidr'; dir: 'src' | 'dst'; family: Family; cidr: string; negate?: boolean }
  /** Address is one of the host's own (nft `fib ... type local`, iptables `addrtype LOCAL`). */
  | { kind: 'local'; dir: 'src' | 'dst'; negate?: boolean }
  /** Layer-4 protocol with optional destination ports. */
  | { kind: 'l4'; proto: L4; ports?: PortRanges }
  /** Any protocol without ports (ICMP, ICMPv6, ...). */
  | { kind: 'l4other' }
  /** Connection DNATed by Docker from a published host port (conntrack original destination port). */
  | { kind: 'published'; proto: L4; hostPort: number }
  /** Connection tracking state established or related. */
  | { kind: 'established' }
  /** ICMPv6 neighbour and router discovery (must pass for IPv6 to work at all). */
  | { kind: 'nd' };

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  /**
   * Hand the packet to what the map gives for its address, for good (nft `vmap` of `goto` and
   * `accept` elements): the chain's verdict is final, and its end or a `return` accepts. An address
   * not in the map goes on to the next rule. (iptables: a dispatch tree, dispatch.ts.)
   */
  | { kind: 'vmap'; dir: 'src' | 'dst'; family: Family; map: string };

export interface PlanRule {
  matches: Match[];
  verdict: Verdict;
  /** Count packets (drops always count). */
  counter?: boolean;
  /** NFLOG prefix (already safe); only on drops. */
  log?: string;
  /** Owner, e.g. `policy:label:shop/web` or `moat:fail-closed`. Already safe. */
  comment: string;
}

/**
 * Where a base chain decides, whatever path the packet takes through the host: `egress` sees every
 * packet a container sends (to another container, to the host, or beyond), `ingress` every packet
 * sent to a container (from a container, the host, or outside). Each backend hooks them where that
 * holds: nft on prerouting and postrouting; iptables in FORWARD (via DOCKER-USER), INPUT and OUTPUT.
 */
export type Hook = 'egress' | 'ingress';

export interface PlanChain {
  name: string;
  hook?: Hook;
  rules: PlanRule[];
  /** Endpoints (container ids) whose traffic this chain decides; empty for base chains. */
  owners: string[];
}

export interface SetElement {
  /** Canonical address or CIDR. */
  value: string;
  /** Owner: `ctr:<id>`, `net:<name>`, `range:internal`, `policy:<id>`. Already safe. */
  owner: string;
}

export interface AddressSet {
  name: string;
  family: Family;
  elements: SetElement[];
  /** What the set is, for plan output. */
  purpose: string;
  /**
   * For a set of containers chosen by selectors: the peer list it stands for (JSON of the policy's
   * peers), so that the incremental compiler can decide a new container's membership alone.
   */
  peers?: string;
  /**
   * Host addresses only (the known-endpoint sets, and peer sets of containers chosen by selectors):
   * nftables declares it without `flags interval`, a hash set, so a match costs one hash lookup
   * instead of a walk down a tree of 2 nodes per address, and loading it half the kernel elements.
   */
  exact?: boolean;
  /**
   * An exact set's capacity (nft `size`): the kernel then keeps it in a fixed-size hash, cheaper to
   * fill than the resizable one (bench/README.md, "Control plane"). Set by the full compile
   * (`setCapacity`) and kept while the elements fit; a delta that would fill it gives it the capacity
   * a full compile would. The kernel cannot resize a set in place: the plan diff replaces the set and
   * reloads the rules of the chains that use it, in the same transaction (incremental.ts).
   */
  size?: number;
}

export interface MapElement {
  /** Canonical address (host). */
  key: string;
  /**
   * The per-identity chain that decides the address's traffic in the map's direction, or `''` when
   * it has no rules there: the packet passes (nft `accept`). Every known address (a container's on a
   * managed network, a managed bridge's gateway) is in both maps of its family; an address in
   * neither is unknown (fail-closed on a managed network).
   */
  chain: string;
  /** Container id owning the address. Already safe. */
  owner: string;
}

export interface VerdictMap {
  name: string;
  family: Family;
  elements: MapElement[];
  /**
   * Most elements the kernel's map can take (nft `size`), which makes it a fixed-size hash: when a
   * `jump` element is added, the kernel walks every map element to validate the table, and that walk
   * is faster over a fixed-size hash than over a resizable one (bench/README.md, "Control plane").
   * Set by the full compile (`mapCapacity`) and kept while the elements fit; a delta that would fill
   * it gives it the capacity a full compile would, and the plan diff replaces the map and reloads the
   * base chains that use it, in one transaction (incremental.ts). Absent in plans recorded by an
   * earlier moat.
   */
  size?: number;
}

/** The names of a plan's fixed sets and verdict maps, per family. */
export const SET = {
  managed: (f: Family) => `managed${f}`,
  notInternet: (f: Family) => `notinet${f}`,
} as const;
export const MAP = {
  ingress: (f: Family) => `ingress${f}`,
  egress: (f: Family) => `egress${f}`,
} as const;

/** The owner of the elements a container's addresses make (`ctr:<id>`, made safe). */
export function containerOwner(id: string): string {
  return safeComment(`ctr:${id}`);
}

/** The names of the sets a rule refers to. */
export function setsOfRule(r: PlanRule): string[] {
  const out: string[] = [];
  for (const m of r.matches) if (m.kind === 'set') out.push(m.set);
  return out;
}

/** An ingress map: with the egress map of its family, it holds every known address (MapElement). */
export function isIngressMap(name: string): boolean {
  return name === MAP.ingress(4) || name === MAP.ingress(6);
}

/** A verdict map's capacity for this many elements: twice as many, a power of two, at least 1,024. */
export function mapCapacity(elements: number): number {
  let c = 1024;
  while (c < 2 * elements) c *= 2;
  return c;
}

/**
 * An exact set's capacity for this many elements: twice as many, a power of two, at least 64 (a
 * peer set of a few containers has room to grow by a few before a full compile resizes it).
 */
export function setCapacity(elements: number): number {
  let c = 64;
  while (c < 2 * elements) c *= 2;
  return c;
}

/** The capacities (`size`) of a plan's sets and maps, by name (CompileOptions.capacities). */
export function capacitiesOf(plan: Pick<RulesetPlan, 'sets' | 'maps'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const x of plan.sets) if (x.size !== undefined) out.set(x.name, x.size);
  for (const x of plan.maps) if (x.size !== undefined) out.set(x.name, x.size);
  return out;
}

export interface RulesetPlan {
  sets: AddressSet[];
  maps: VerdictMap[];
  chains: PlanChain[];
  nflogGroup: number;
  /** NFLOG prefix -> { policy id, direction }, for the monitoring consumer. */
  logPrefixes: Record<string, { policy: string; direction: 'ingress' | 'egress' | 'fail-closed' | 'published' }>;
  /** Networks whose subnets are managed (fail-closed). */
  managedNetworks: string[];
  warnings: string[];
}

/**
 * A plan as this version builds it, from one recorded by an earlier moat (kept for rollback and as
 * the controller's last applied plan). Before two base chains, a plan had `forward` (the rules of both
 * directions), `input` (exactly the egress rules) and `output` (exactly the ingress rules): `input`
 * becomes `egress`, `output` becomes `ingress`, and `forward` goes. Any other plan is returned as is.
 */
export function currentPlanShape(plan: RulesetPlan): RulesetPlan {
  const hooks = plan.chains.map((c) => c.hook as string | undefined);
  if (!hooks.includes('input') || !hooks.includes('output')) return plan;
  const chains: PlanChain[] = [];
  for (const c of plan.chains) {
    const h = c.hook as string | undefined;
    if (h === 'forward') continue;
    if (h === 'input') chains.push({ ...c, name: 'egress', hook: 'egress' });
    else if (h === 'output') chains.push({ ...c, name: 'ingress', hook: 'ingress' });
    else chains.push(c);
  }
  return { ...plan, chains };
}

// The semantic core shared by the analyzer and the kernel compilers: who is in which group, which
// policies select which endpoint, whether a direction is isolated, which peers cover which
// endpoints and addresses, how named ports resolve, and what the topology lets through.
// Everything here is pure; both `analysis/` and `enforce/compile` call it, so they cannot drift apart.
import { cidrContains, cidrWithin, isAllInterfaces, isLoopback, isWholeFamily, parseCidr, type Cidr } from '../model/address.js';
import { ConnSet } from '../model/connset.js';
import type { Diagnostic } from '../model/diagnostics.js';
import type { EndpointSelector, Peer, Policy, PolicySet, PortSpec, PublishedPortAllowlist, Rule } from '../model/ir.js';
import { effectiveLabels, labelSelectorMatcher, matchesNamespaceScope } from '../model/selector.js';
import {
  completeNamespaces,
  endpointDisplayName,
  NAMESPACE_NAME_LABEL,
  type Endpoint,
  type Network,
  type PublishedPort,
  type World,
} from '../model/world.js';

export type Direction = 'ingress' | 'egress';

/** A thing on the other side of a connection, as a peer sees it. */
export type Party =
  | { kind: 'endpoint'; index: number; /** the address the packet carries, when known */ address?: string }
  | { kind: 'host' }
  | { kind: 'internet' }
  | { kind: 'external'; name: string; cidrs: Cidr[] };

export interface SelectedPolicy {
  policy: Policy;
  /** Whether this policy isolates the endpoint in the direction at hand. */
  isolates: boolean;
}

export interface ResolvedWorld {
  world: World;
  policies: PolicySet;
  endpoints: Endpoint[];
  /** Index of endpoints by id. */
  byId: Map<string, number>;
  /** Effective labels per endpoint (own + synthetic + groups). */
  labels: Record<string, string>[];
  /** Groups per endpoint. */
  groups: string[][];
  networks: Map<string, Network>;
  namespaceLabels(ns: string): Record<string, string>;
  /**
   * Policies that select endpoint i, per direction. Read-only: endpoints selected by the same
   * policies share one list (the compiler takes the list as their identity).
   */
  selecting(i: number, direction: Direction): SelectedPolicy[];
  isolated(i: number, direction: Direction): boolean;
  /** Endpoints a selector matches, as a membership array (memoized per selector object). */
  members(selector: EndpointSelector): Uint8Array;
  /**
   * The same members as ascending indices (memoized with `members`): callers that visit the members
   * of a selector use it instead of a scan of the whole membership array.
   */
  memberIndices(selector: EndpointSelector): readonly number[];
  /** For `network_mode: container:x` endpoints, the index whose netns they share; else themselves. */
  netnsOwner(i: number): number;
  internalRanges: Cidr[];
  warnings: Diagnostic[];
}

/**
 * An endpoint's labels without groups, memoised per endpoint object (endpoints are values: a changed
 * container is a new object). The controller resolves the same endpoints on every event. Read-only.
 */
const baseLabelMemo = new WeakMap<Endpoint, Record<string, string>>();
function baseLabelsOf(e: Endpoint): Record<string, string> {
  let l = baseLabelMemo.get(e);
  if (!l) baseLabelMemo.set(e, (l = effectiveLabels(e, [])));
  return l;
}

/**
 * An endpoint's labels with its groups, memoised per endpoint object and group list: the controller
 * resolves the same containers in the same groups on every change, and at 10,000 endpoints in 400
 * groups building these objects (each with a key of its own group) was most of a resolve. Read-only.
 */
const groupLabelMemo = new WeakMap<Endpoint, { groups: string; labels: Record<string, string> }>();
function labelsWithGroups(e: Endpoint, groups: string[]): Record<string, string> {
  const key = groups.length === 1 ? groups[0] : groups.join('\u0000');
  const m = groupLabelMemo.get(e);
  if (m && m.groups === key) return m.labels;
  const labels = effectiveLabels(e, groups);
  groupLabelMemo.set(e, { groups: key, labels });
  return labels;
}

/** A node of resolveWorld's tree of selections: the policies on the path from the root, in order. */
interface SelectionNode {
  parent?: SelectionNode;
  selected?: SelectedPolicy;
  next?: Map<SelectedPolicy, SelectionNode>;
  list?: SelectedPolicy[];
}

function selectionStep(node: SelectionNode, s: SelectedPolicy): SelectionNode {
  node.next ??= new Map();
  let child = node.next.get(s);
  if (!child) node.next.set(s, (child = { parent: node, selected: s }));
  return child;
}

/** The node's list (made once per node, by a walk to the root: no lists for inner nodes). */
function selectionList(node: SelectionNode): SelectedPolicy[] {
  if (node.list) return node.list;
  let depth = 0;
  for (let n: SelectionNode | undefined = node; n.parent; n = n.parent) depth++;
  const list = new Array<SelectedPolicy>(depth);
  for (let n: SelectionNode = node; n.parent; n = n.parent) list[--depth] = n.selected!;
  return (node.list = list);
}

export function resolveWorld(worldIn: World, policies: PolicySet): ResolvedWorld {
  const warnings: Diagnostic[] = [];
  // Namespace labels: the world's, then the policy files' `namespaces:`, then metadata.name.
  const world0 = completeNamespaces(worldIn);
  const nsLabelMap = new Map<string, Record<string, string>>();
  for (const ns of world0.namespaces) nsLabelMap.set(ns.name, { ...ns.labels });
  for (const [ns, labels] of Object.entries(policies.namespaceLabels)) {
    nsLabelMap.set(ns, { ...(nsLabelMap.get(ns) ?? {}), ...labels, [NAMESPACE_NAME_LABEL]: ns });
  }
  const world: World = {
    ...world0,
    namespaces: [...nsLabelMap.entries()].map(([name, labels]) => ({ name, labels })),
  };
  const namespaceLabels = (ns: string) => nsLabelMap.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };

  const endpoints = world.endpoints;
  const byId = new Map<string, number>();
  endpoints.forEach((e, i) => byId.set(e.id, i));

  // Endpoint indices by namespace: a selector that names its namespaces (groups of a moat policy
  // file, `select: { namespace: shop, ... }`, and most NetworkPolicy selectors) only looks at those.
  const byNamespace = new Map<string, number[]>();
  endpoints.forEach((e, i) => {
    const list = byNamespace.get(e.namespace) ?? [];
    list.push(i);
    byNamespace.set(e.namespace, list);
  });

  // Groups: evaluated on labels without group labels (a group cannot be defined by another group).
  // A group's members get its name in group order. (Each group's label part is compiled once, and a
  // group that names its namespaces visits their endpoints only: 400 groups over 10,000 endpoints
  // were 4 million generic matches, ~450 ms of every compile.)
  const baseLabels = endpoints.map(baseLabelsOf);
  const groups: string[][] = endpoints.map(() => []);
  const join = (g: (typeof policies.groups)[number], i: number) => {
    if (!groups[i].includes(g.name)) groups[i].push(g.name);
  };
  for (const g of policies.groups) {
    const matchesLabels = labelSelectorMatcher(g.selector.labels);
    if (g.selector.namespaces.kind === 'names') {
      for (const n of g.selector.namespaces.names) {
        const list = byNamespace.get(n);
        if (list) for (const i of list) if (matchesLabels(baseLabels[i])) join(g, i);
      }
    } else {
      for (let i = 0; i < endpoints.length; i++) {
        if (matchesNamespaceScope(g.selector.namespaces, endpoints[i].namespace, namespaceLabels) && matchesLabels(baseLabels[i])) join(g, i);
      }
    }
  }
  const labels = endpoints.map((e, i) => (groups[i].length ? labelsWithGroups(e, groups[i]) : baseLabels[i]));

  // Selectors are matched once each: memoized by object and by content (many rules repeat a selector),
  // and a selector that names its namespaces only looks at those namespaces' endpoints (byNamespace).
  // The indices are what compile needs; the membership array (a buffer the size of the world) is
  // made only when asked for (the analyzer's per-pair questions).
  interface Membership {
    indices: number[];
    array?: Uint8Array;
  }
  // Endpoint indices by label key and value, built on first use (one pass over every endpoint's
  // labels): a selector of any namespace that requires `k=v` only needs the endpoints with it. The
  // selectors a moat policy file's groups become (`moat.group/<g>=true`, any namespace) were each a
  // pass over all endpoints: 800 of them over 10,000 endpoints, ~450 ms of every compile.
  let byLabel: Map<string, Map<string, number[]>> | undefined;
  const NONE: number[] = [];
  const candidatesFor = (selector: EndpointSelector['labels']): number[] | undefined => {
    const required = selector.matchLabels;
    if (!required) return undefined;
    let best: number[] | undefined;
    for (const k of Object.keys(required)) {
      if (!byLabel) {
        byLabel = new Map();
        for (let i = 0; i < labels.length; i++) {
          const l = labels[i];
          for (const key in l) {
            let values = byLabel.get(key);
            if (!values) byLabel.set(key, (values = new Map()));
            const list = values.get(l[key]);
            if (list) list.push(i);
            else values.set(l[key], [i]);
          }
        }
      }
      const list = byLabel.get(k)?.get(required[k]) ?? NONE;
      if (!best || list.length < best.length) best = list;
    }
    return best;
  };
  const memberMemo = new WeakMap<EndpointSelector, Membership>();
  const memberByKey = new Map<string, Membership>();
  const membership = (selector: EndpointSelector): Membership => {
    let m = memberMemo.get(selector);
    if (m) return m;
    const key = JSON.stringify([selector.namespaces, selector.labels]);
    m = memberByKey.get(key);
    if (!m) {
      const indices: number[] = [];
      // The label part is compiled once per selector, not re-read for each candidate.
      const matchesLabels = labelSelectorMatcher(selector.labels);
      if (selector.namespaces.kind === 'names') {
        // Only the named namespaces' endpoints (plain loops: flatMap is slow in V8).
        const names = selector.namespaces.names;
        for (const n of names) {
          const list = byNamespace.get(n);
          if (list) for (const i of list) if (matchesLabels(labels[i])) indices.push(i);
        }
        // Several namespaces' endpoints come namespace by namespace (and a name may come twice).
        if (names.length > 1) m = { indices: [...new Set(indices)].sort((a, b) => a - b) };
      } else {
        // Any namespace: only the endpoints that carry one of the required labels (the rarest),
        // in index order, or all of them when nothing is required by value.
        const candidates = candidatesFor(selector.labels);
        if (candidates) {
          for (const i of candidates) if (matchesNamespaceScope(selector.namespaces, endpoints[i].namespace, namespaceLabels) && matchesLabels(labels[i])) indices.push(i);
        } else {
          for (let i = 0; i < endpoints.length; i++) {
            if (matchesNamespaceScope(selector.namespaces, endpoints[i].namespace, namespaceLabels) && matchesLabels(labels[i])) indices.push(i);
          }
        }
      }
      m ??= { indices };
      memberByKey.set(key, m);
    }
    memberMemo.set(selector, m);
    return m;
  };
  const members = (selector: EndpointSelector): Uint8Array => {
    const m = membership(selector);
    if (!m.array) {
      m.array = new Uint8Array(endpoints.length);
      for (const i of m.indices) m.array[i] = 1;
    }
    return m.array;
  };

  // Each endpoint's selection is a node of a tree of the SelectedPolicy sequences seen so far (one
  // step per policy that selects it): endpoints selected by the same policies end on the same node
  // and share one (read-only) list, made once per node at the end. Per-endpoint lists grown by push
  // were a good part of a compile's garbage, and the shared list is an identity the compiler uses.
  const rootIn: SelectionNode = {};
  const rootOut: SelectionNode = {};
  const nodeIn: SelectionNode[] = new Array<SelectionNode>(endpoints.length).fill(rootIn);
  const nodeOut: SelectionNode[] = new Array<SelectionNode>(endpoints.length).fill(rootOut);
  for (const policy of policies.policies) {
    // Only the members are visited (a policy usually selects a few of many endpoints).
    const m = membership(policy.subject).indices;
    const any = m.length > 0;
    // One (read-only) SelectedPolicy per policy and direction, shared by the endpoints it selects.
    const sin: SelectedPolicy | undefined = policy.isolates.ingress || policy.ingress.length ? { policy, isolates: policy.isolates.ingress } : undefined;
    const sout: SelectedPolicy | undefined = policy.isolates.egress || policy.egress.length ? { policy, isolates: policy.isolates.egress } : undefined;
    for (const i of m) {
      if (sin) nodeIn[i] = selectionStep(nodeIn[i], sin);
      if (sout) nodeOut[i] = selectionStep(nodeOut[i], sout);
    }
    if (!any && policy.kind !== 'label') {
      warnings.push({
        severity: 'warning',
        code: 'policy.selects-nothing',
        message: `policy ${policy.name} selects no container`,
        fix: 'check its selector against `moat matrix` output or the container labels',
        pos: policy.pos,
      });
    }
  }
  // Report peers that name something missing: they match nothing (never more).
  const reported = new Set<string>();
  for (const policy of policies.policies) {
    for (const rule of [...policy.ingress, ...policy.egress]) {
      if (rule.peers === 'all') continue;
      for (const peer of rule.peers) {
        if (peer.kind !== 'endpoints' || !peer.selector.describes) continue;
        if (membership(peer.selector).indices.length) continue;
        const key = `${policy.id}|${peer.selector.describes}`;
        if (reported.has(key)) continue;
        reported.add(key);
        warnings.push({
          severity: 'warning',
          code: 'peer.matches-nothing',
          message: `${peer.selector.describes} (in ${policy.name}) matches no container, so the rule allows nothing`,
          fix: 'check the name for typos, or define the group',
          pos: rule.pos ?? policy.pos,
        });
      }
    }
  }

  const selIn = nodeIn.map(selectionList);
  const selOut = nodeOut.map(selectionList);

  const networks = new Map(world.networks.map((n) => [n.name, n]));
  const netnsOwner = (i: number): number => {
    let cur = i;
    for (let hops = 0; hops < 8; hops++) {
      const mode = endpoints[cur].networkMode;
      if (mode.kind !== 'container') return cur;
      const next = byId.get(mode.of) ?? endpoints.findIndex((e) => e.containerName === mode.of || e.name === mode.of);
      if (next === undefined || next < 0) return cur;
      cur = next;
    }
    return cur;
  };

  const internalRanges = policies.internalRanges.map((t) => parseCidr(t)).filter((c): c is Cidr => !!c);

  return {
    world,
    policies,
    endpoints,
    byId,
    labels,
    groups,
    networks,
    namespaceLabels,
    selecting: (i, d) => (d === 'ingress' ? selIn[i] : selOut[i]),
    isolated: (i, d) => (d === 'ingress' ? selIn[i] : selOut[i]).some((s) => s.isolates),
    members,
    memberIndices: (selector) => membership(selector).indices,
    netnsOwner,
    internalRanges,
    warnings: [...world.warnings.map((w) => ({ severity: 'warning' as const, code: 'world', message: w })), ...warnings],
  };
}

/** All addresses of an endpoint (IPv4 and IPv6 of every attachment), following shared netns. */
export function endpointAddresses(rw: ResolvedWorld, i: number): string[] {
  const e = rw.endpoints[rw.netnsOwner(i)];
  const out: string[] = [];
  for (const a of e.attachments) {
    if (a.ipv4) out.push(a.ipv4);
    if (a.ipv6) out.push(a.ipv6);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Peers

export type PeerMatch =
  | { matched: true }
  | { matched: false; /** why a close call missed, for explain */ nearMiss?: string };

const cidrMemo = new Map<string, Cidr | undefined>();
function cidrOf(text: string): Cidr | undefined {
  if (!cidrMemo.has(text)) cidrMemo.set(text, parseCidr(text));
  return cidrMemo.get(text);
}

/** Whether an address lies in the cidr and in none of its excepts. */
function addressInBlock(address: string, peer: { cidr: string; except: string[] }): PeerMatch {
  const c = cidrOf(peer.cidr);
  if (!c || !cidrContains(c, address)) return { matched: false };
  for (const ex of peer.except) {
    const e = cidrOf(ex);
    if (e && cidrContains(e, address)) return { matched: false, nearMiss: `address ${address} is in except ${ex} of ${peer.cidr}` };
  }
  return { matched: true };
}

export function isInternetAddress(rw: ResolvedWorld, address: string): boolean {
  return !rw.internalRanges.some((r) => cidrContains(r, address));
}

/** Does a peer cover a party? Exact rules in docs/semantics.md. */
export function peerMatches(rw: ResolvedWorld, peer: Peer, party: Party): PeerMatch {
  switch (peer.kind) {
    case 'any':
      return { matched: true };
    case 'host':
      return { matched: party.kind === 'host' };
    case 'internet':
      if (party.kind === 'internet') return { matched: true };
      if (party.kind === 'external') {
        return { matched: party.cidrs.every((c) => !rw.internalRanges.some((r) => cidrWithin(c, r) || cidrWithin(r, c))) };
      }
      return { matched: false };
    case 'endpoints': {
      if (party.kind !== 'endpoint') return { matched: false };
      return { matched: rw.members(peer.selector)[party.index] === 1 };
    }
    case 'cidr': {
      const c = cidrOf(peer.cidr);
      if (!c) return { matched: false };
      if (party.kind === 'internet') {
        // "The internet" is an address outside every range anyone declared: only a /0 covers it.
        return { matched: isWholeFamily(c) && !peer.except.some((e) => { const x = cidrOf(e); return !!x && isWholeFamily(x); }) };
      }
      if (party.kind === 'host') {
        if (isWholeFamily(c)) return { matched: true };
        for (const a of rw.world.host.addresses) if (addressInBlock(a, peer).matched) return { matched: true };
        return { matched: false };
      }
      if (party.kind === 'external') {
        const inside = party.cidrs.every((x) => cidrWithin(x, c));
        if (!inside) return { matched: false };
        for (const ex of peer.except) {
          const e = cidrOf(ex);
          if (e && party.cidrs.some((x) => cidrWithin(x, e) || cidrWithin(e, x))) {
            return { matched: false, nearMiss: `${party.name} overlaps except ${ex} of ${peer.cidr}` };
          }
        }
        return { matched: true };
      }
      const addrs = party.address ? [party.address] : endpointAddresses(rw, party.index);
      let near: string | undefined;
      for (const a of addrs) {
        const m = addressInBlock(a, peer);
        if (m.matched) return m;
        if (m.nearMiss) near = m.nearMiss;
      }
      return near ? { matched: false, nearMiss: near } : { matched: false };
    }
  }
}

export function ruleMatchesPeer(rw: ResolvedWorld, rule: Rule, party: Party): PeerMatch {
  if (rule.peers === 'all') return { matched: true };
  let near: string | undefined;
  for (const p of rule.peers) {
    const m = peerMatches(rw, p, party);
    if (m.matched) return m;
    if (m.nearMiss) near = m.nearMiss;
  }
  return near ? { matched: false, nearMiss: near } : { matched: false };
}

// ---------------------------------------------------------------------------------------------
// Ports

const staticPortsMemo = new WeakMap<Rule, ConnSet | null>();

/** Named ports resolve against the destination's declared ports (same name and protocol). */
export function resolvePortSpec(spec: PortSpec, destination: Endpoint | undefined): ConnSet {
  if ('name' in spec) {
    const hits = (destination?.declaredPorts ?? []).filter((p) => p.name === spec.name && p.protocol === spec.protocol);
    return hits.reduce((acc, p) => acc.union(ConnSet.ports(p.protocol, p.port)), ConnSet.none);
  }
  if (spec.port === undefined) return ConnSet.allPortsOf(spec.protocol);
  return ConnSet.ports(spec.protocol, spec.port, spec.endPort ?? spec.port);
}

/** The connections a rule's ports allow toward a destination (undefined destination: not an endpoint). */
export function rulePorts(rule: Rule, destination: Endpoint | undefined): ConnSet {
  if (!rule.ports || rule.ports.length === 0) return ConnSet.all;
  let memo = staticPortsMemo.get(rule);
  if (memo === undefined) {
    memo = rule.ports.some((p) => 'name' in p) ? null : rule.ports.reduce((acc, p) => acc.union(resolvePortSpec(p, undefined)), ConnSet.none);
    staticPortsMemo.set(rule, memo);
  }
  if (memo) return memo;
  return rule.ports.reduce((acc, p) => acc.union(resolvePortSpec(p, destination)), ConnSet.none);
}

// ---------------------------------------------------------------------------------------------
// One side of a connection

/**
 * What endpoint i's policies allow in a direction with a party on the other side.
 * `destination` is the endpoint receiving the connection (for named ports): for ingress it is i itself.
 */
export function sideAllows(
  rw: ResolvedWorld,
  i: number,
  direction: Direction,
  party: Party,
  destination: Endpoint | undefined,
): ConnSet {
  const selected = rw.selecting(i, direction);
  let allowed: ConnSet;
  if (selected.some((s) => s.isolates)) {
    allowed = ConnSet.none;
    for (const s of selected) {
      if (!s.isolates) continue;
      for (const rule of s.policy[direction]) {
        if (rule.action !== 'allow' || allowed.isAll) continue;
        if (ruleMatchesPeer(rw, rule, party).matched) allowed = allowed.union(rulePorts(rule, destination));
      }
    }
  } else {
    allowed = rw.policies.defaultStance === 'allow' ? ConnSet.all : ConnSet.none;
  }
  if (allowed.isEmpty) return allowed;
  for (const s of selected) {
    for (const rule of s.policy[direction]) {
      if (rule.action !== 'deny') continue;
      if (ruleMatchesPeer(rw, rule, party).matched) allowed = allowed.subtract(rulePorts(rule, destination));
    }
  }
  return allowed;
}

// ---------------------------------------------------------------------------------------------
// Topology

export type Path =
  /** Directly on a shared network (the source's address on it). */
  | { kind: 'network'; network: string; sourceAddress?: string; destinationAddress?: string }
  /** Host to container or container to host, over the bridge. */
  | { kind: 'host'; network: string }
  /** Through published ports (outside sources; containers through the host's address). */
  | { kind: 'published'; ports: PublishedPort[] }
  /** Container to outside through a network with a way out. */
  | { kind: 'outbound'; network: string }
  /** --flat: policy alone. */
  | { kind: 'flat' };

export interface TopologyVerdict {
  paths: Path[];
  /** Why nothing gets through, when paths is empty. */
  reasons: string[];
}

interface BridgeAttachment {
  network: Network | undefined;
  name: string;
  ipv4?: string;
  ipv6?: string;
}

interface EndpointTopology {
  attachments: BridgeAttachment[];
  /** Has a network with a way out (not internal). */
  wayOut: boolean;
  /** Published ports reachable from outside the host. */
  outsidePublished: PublishedPort[];
}

// Per-endpoint topology facts, computed once per resolved world (the matrix asks for them per pair).
const topologyMemo = new WeakMap<ResolvedWorld, (EndpointTopology | undefined)[]>();

function endpointTopology(rw: ResolvedWorld, i: number): EndpointTopology {
  let memo = topologyMemo.get(rw);
  if (!memo) {
    memo = new Array(rw.endpoints.length);
    topologyMemo.set(rw, memo);
  }
  let t = memo[i];
  if (!t) {
    const e = rw.endpoints[rw.netnsOwner(i)];
    const attachments =
      e.networkMode.kind === 'host' || e.networkMode.kind === 'none'
        ? []
        : e.attachments.map((a) => ({ network: rw.networks.get(a.network), name: a.network, ipv4: a.ipv4, ipv6: a.ipv6 }));
    const wayOut = attachments.some((a) => !isInternal(a.network));
    const outsidePublished = wayOut ? e.publishedPorts.filter((p) => isAllInterfaces(p.hostIp) || !isLoopback(p.hostIp)) : [];
    t = { attachments, wayOut, outsidePublished };
    memo[i] = t;
  }
  return t;
}

function bridgeAttachments(rw: ResolvedWorld, i: number): BridgeAttachment[] {
  return endpointTopology(rw, i).attachments;
}

function isInternal(n: Network | undefined): boolean {
  return n?.internal ?? false;
}

/** Published ports reachable from outside the host (bound to a non-loopback address, on a network with a way out). */
export function outsidePublished(rw: ResolvedWorld, i: number): PublishedPort[] {
  return endpointTopology(rw, i).outsidePublished;
}

export type Node =
  | { kind: 'endpoint'; index: number }
  | { kind: 'host' }
  | { kind: 'internet' }
  | { kind: 'external'; name: string; cidrs: Cidr[] };

export function topology(rw: ResolvedWorld, from: Node, to: Node): TopologyVerdict {
  const reasons: string[] = [];
  if (from.kind === 'endpoint' && to.kind === 'endpoint') {
    const a = rw.netnsOwner(from.index);
    const b = rw.netnsOwner(to.index);
    if (a === b) return { paths: [], reasons: ['same network namespace'] };
    const ea = rw.endpoints[a];
    const eb = rw.endpoints[b];
    if (ea.networkMode.kind === 'none' || eb.networkMode.kind === 'none') return { paths: [], reasons: ['network_mode none'] };
    if (ea.networkMode.kind === 'host') return topology(rw, { kind: 'host' }, to);
    if (eb.networkMode.kind === 'host') return topology(rw, from, { kind: 'host' });
    const aa = bridgeAttachments(rw, a);
    const bb = bridgeAttachments(rw, b);
    const paths: Path[] = [];
    for (const x of aa) {
      const y = bb.find((z) => z.name === x.name);
      if (!y) continue;
      if (x.network && !x.network.icc) {
        reasons.push(`network ${x.name} has inter-container communication disabled (enable_icc=false)`);
        continue;
      }
      paths.push({ kind: 'network', network: x.name, sourceAddress: x.ipv4 ?? x.ipv6, destinationAddress: y.ipv4 ?? y.ipv6 });
    }
    if (paths.length === 0 && !reasons.length) reasons.push('no shared network');
    // Through the host's address and a published port (Docker DNATs it; the source needs a way out of its bridge).
    // Through the host's address and a published port. With a direct path too: through docker-proxy the
    // destination sees the host, which its policy may treat differently from the source itself.
    const published = outsidePublished(rw, b);
    if (published.length) {
      if (aa.some((x) => !isInternal(x.network))) paths.push({ kind: 'published', ports: published });
      else if (paths.length === 0) reasons.push(`${endpointDisplayName(ea)} is only on internal networks and cannot reach the host's published ports`);
    } else if (paths.length === 0 && eb.publishedPorts.length) {
      reasons.push(`${endpointDisplayName(eb)}'s published ports are bound to loopback or sit on internal networks`);
    }
    return { paths, reasons };
  }
  if (from.kind === 'host' && to.kind === 'endpoint') {
    const atts = bridgeAttachments(rw, to.index);
    const e = rw.endpoints[rw.netnsOwner(to.index)];
    if (e.networkMode.kind === 'host') return { paths: [], reasons: ['the endpoint is the host (network_mode host)'] };
    if (atts.length === 0) return { paths: [], reasons: ['the endpoint has no network (network_mode none)'] };
    return { paths: [{ kind: 'host', network: atts[0].name }], reasons };
  }
  if (from.kind === 'endpoint' && to.kind === 'host') {
    const atts = bridgeAttachments(rw, from.index);
    const e = rw.endpoints[rw.netnsOwner(from.index)];
    if (e.networkMode.kind === 'host') return { paths: [], reasons: ['the endpoint is the host (network_mode host)'] };
    if (atts.length === 0) return { paths: [], reasons: ['the endpoint has no network (network_mode none)'] };
    return { paths: [{ kind: 'host', network: atts[0].name }], reasons };
  }
  if ((from.kind === 'internet' || from.kind === 'external') && to.kind === 'endpoint') {
    const e = rw.endpoints[rw.netnsOwner(to.index)];
    if (e.networkMode.kind === 'host') return { paths: [], reasons: ['the endpoint is the host (network_mode host); moat does not filter the host'] };
    const published = outsidePublished(rw, to.index);
    if (published.length) return { paths: [{ kind: 'published', ports: published }], reasons };
    if (e.publishedPorts.length) reasons.push('its published ports are bound to loopback or sit on internal networks only');
    else reasons.push('no published port');
    return { paths: [], reasons };
  }
  if (from.kind === 'endpoint' && (to.kind === 'internet' || to.kind === 'external')) {
    const e = rw.endpoints[rw.netnsOwner(from.index)];
    if (e.networkMode.kind === 'host') return { paths: [], reasons: ['the endpoint is the host (network_mode host)'] };
    const out = bridgeAttachments(rw, from.index).find((a) => !isInternal(a.network));
    if (out) return { paths: [{ kind: 'outbound', network: out.name }], reasons };
    return { paths: [], reasons: ['only on internal networks: no way out'] };
  }
  return { paths: [], reasons: ['not analysed (neither side is a container)'] };
}

// ---------------------------------------------------------------------------------------------
// A whole connection

export function partyOf(node: Node, address?: string): Party {
  if (node.kind === 'endpoint') return { kind: 'endpoint', index: node.index, address };
  return node;
}

/** Allowlists that govern a published port of endpoint i. */
export function allowlistsFor(rw: ResolvedWorld, i: number, port: PublishedPort): PublishedPortAllowlist[] {
  if (port.hostPort === undefined) return [];
  return rw.policies.publishedPortAllowlists.filter(
    (l) => l.hostPort === port.hostPort && l.protocol === port.protocol && (!l.target || rw.members(l.target)[i] === 1),
  );
}

/** The connections allowed from one node to another along one path (policy of both sides and the path). */
export function connectionsAlong(rw: ResolvedWorld, from: Node, to: Node, path: Path): ConnSet {
  const src = from.kind === 'endpoint' ? rw.netnsOwner(from.index) : -1;
  const dst = to.kind === 'endpoint' ? rw.netnsOwner(to.index) : -1;
  const fromN: Node = src >= 0 ? { kind: 'endpoint', index: src } : from;
  const toN: Node = dst >= 0 ? { kind: 'endpoint', index: dst } : to;
  if (path.kind === 'published' && src >= 0 && dst >= 0 && viaUserlandProxy(rw)) return throughProxy(rw, src, dst, path.ports);
  const srcAddr = path.kind === 'network' ? path.sourceAddress : undefined;
  const destinationEndpoint = dst >= 0 ? rw.endpoints[dst] : undefined;
  const egress = src >= 0 ? sideAllows(rw, src, 'egress', partyOf(toN, path.kind === 'network' ? path.destinationAddress : undefined), destinationEndpoint) : ConnSet.all;
  if (egress.isEmpty) return egress;
  if (dst < 0) return egress;
  const ingressParty = partyOf(fromN, srcAddr);
  if (path.kind !== 'published') return egress.intersect(sideAllows(rw, dst, 'ingress', ingressParty, destinationEndpoint));
  // Through published ports: each mapping is governed by its allowlist when it has one, else by ingress policy.
  let total = ConnSet.none;
  const ingress = sideAllows(rw, dst, 'ingress', ingressParty, destinationEndpoint);
  for (const port of path.ports) {
    const mapped = ConnSet.ports(port.protocol, port.containerPort);
    const lists = allowlistsFor(rw, dst, port);
    let allowed: ConnSet;
    if (lists.length) {
      const listed = lists.some((l) => l.sources.some((p) => peerMatches(rw, p, ingressParty).matched));
      allowed = listed ? denyOnly(rw, dst, ingressParty, destinationEndpoint, mapped) : ConnSet.none;
    } else {
      allowed = mapped.intersect(ingress);
    }
    total = total.union(allowed);
  }
  return egress.intersect(total);
}

/**
 * Whether a container's connection to a published port goes through docker-proxy. With userland-proxy on
 * (Docker's default, assumed when unknown), Docker returns traffic from its bridges before the DNAT, so the
 * source connects to the host (its gateway) and docker-proxy connects from the host to the destination:
 * the destination sees the host, never the real source (measured on Docker 20.10, docs/enforcement.md).
 */
export function viaUserlandProxy(rw: ResolvedWorld): boolean {
  return rw.world.host.userlandProxy !== false;
}

/** Container -> published port through docker-proxy: egress to the host on the host port, ingress from the host. */
function throughProxy(rw: ResolvedWorld, src: number, dst: number, ports: PublishedPort[]): ConnSet {
  const egress = sideAllows(rw, src, 'egress', { kind: 'host' }, undefined);
  if (egress.isEmpty) return egress;
  const ingress = sideAllows(rw, dst, 'ingress', { kind: 'host' }, rw.endpoints[dst]);
  let total = ConnSet.none;
  for (const port of ports) {
    const reachesHost = port.hostPort === undefined ? egress.rangesOf(port.protocol).length > 0 : egress.contains(port.protocol, port.hostPort);
    if (reachesHost) total = total.union(ConnSet.ports(port.protocol, port.containerPort).intersect(ingress));
  }
  return total;
}

/** `set` minus what the endpoint's ingress deny rules take away (allowlists still lose to denies). */
function denyOnly(rw: ResolvedWorld, i: number, party: Party, destination: Endpoint | undefined, set: ConnSet): ConnSet {
  let out = set;
  for (const s of rw.selecting(i, 'ingress')) {
    for (const rule of s.policy.ingress) {
      if (rule.action === 'deny' && ruleMatchesPeer(rw, rule, party).matched) out = out.subtract(rulePorts(rule, destination));
    }
  }
  return out;
}

// (World, PolicySet) -> EnforcementInput, using the analyzer's semantic core (analysis/resolve.ts)
// so that the kernel and the matrix cannot drift apart: groups, selection, isolation, peer
// membership, named ports and published-port allowlists all come from there.
import { allowlistsFor, resolveWorld, rulePorts, type Direction, type ResolvedWorld, type SelectedPolicy } from '../../analysis/resolve.js';
import { ConnSet } from '../../model/connset.js';
import { isAllInterfaces, isLoopback } from '../../model/address.js';
import type { Peer, PolicySet, Rule } from '../../model/ir.js';
import { UserError, type SourcePos } from '../../model/diagnostics.js';
import { endpointDisplayName, type Endpoint, type World } from '../../model/world.js';
import { canonicalAddress, canonicalCidr } from '../validate.js';
import { canonicalIPv4Value } from './ipv4.js';
import type { Clause, DirectionPolicy, EnforcementInput, PeerAddresses, PublishedGuard, ResolvedEndpoint, ResolvedNetwork } from './resolved.js';

export interface InputOptions {
  /** Network names never managed (besides networks labelled `moat.managed=false`). */
  unmanagedNetworks?: string[];
}

/** The warnings about an endpoint that depend on the policies (a policy delta replaces them). */
export const POLICY_WARNINGS = {
  hostNetwork: (display: string) => `${display} uses the host's network: moat does not filter the host, its policies are not enforced`,
  noAddress: (display: string) => `${display} has no known address on a managed network: its policies are not enforced`,
};

/** Network label that opts a bridge network out of enforcement. */
export const MANAGED_LABEL = 'moat.managed';

// JSON texts used as identity keys, memoised per object: endpoints and policies are values (a changed
// container or policy is a new object), and the controller compiles the same objects again and again.
const declaredPortsKey = new WeakMap<object, string>();
const peersKey = new WeakMap<object, string>();
function jsonKey(memo: WeakMap<object, string>, value: object): string {
  let k = memo.get(value);
  if (k === undefined) memo.set(value, (k = JSON.stringify(value)));
  return k;
}

export function buildEnforcementInput(world: World, policies: PolicySet, options: InputOptions = {}): EnforcementInput {
  const rw = resolveWorld(world, policies);
  return enforcementInputFrom(rw, options);
}

/** `where` names the address's owner in a warning (an endpoint: its display name, made only then). */
function canon(address: string, warnings: string[], where: string | Endpoint): string | undefined {
  // A canonical dotted quad is what canonicalAddress would return for it (ipv4.ts); read without
  // ipaddr.js, which was most of the first compile's time for these addresses.
  if (canonicalIPv4Value(address) >= 0) return address;
  try {
    return canonicalAddress(address).text;
  } catch {
    warnings.push(`${typeof where === 'string' ? where : endpointDisplayName(where)}: ignoring invalid address ${JSON.stringify(address)}`);
    return undefined;
  }
}

/**
 * `only`: the endpoints (indices of `rw.endpoints`) to resolve; the others are left out of the
 * result, though their addresses still fill the peers that select them (the compile session's policy
 * delta resolves just the containers a changed policy selects).
 */
export function enforcementInputFrom(rw: ResolvedWorld, options: InputOptions = {}, only?: ReadonlySet<number>): EnforcementInput {
  const warnings: string[] = [];
  const networks: ResolvedNetwork[] = [...rw.networks.values()].map((n) => {
    const managed = n.driver === 'bridge' && n.labels?.[MANAGED_LABEL] !== 'false' && !(options.unmanagedNetworks ?? []).includes(n.name);
    const subnets: string[] = [];
    for (const s of n.subnets) {
      try {
        subnets.push(canonicalCidr(s).text);
      } catch {
        warnings.push(`network ${n.name}: ignoring invalid subnet ${JSON.stringify(s)}`);
      }
    }
    if (managed && subnets.length === 0) warnings.push(`network ${n.name}: no known subnet, so it cannot be fail-closed`);
    const gateways = (n.gateways ?? []).map((g) => canon(g.split('/')[0], warnings, `network ${n.name}`)).filter((x): x is string => !!x);
    return { name: n.name, subnets, gateways, managed };
  });
  const managedNames = new Set(networks.filter((n) => n.managed).map((n) => n.name));

  // Addresses a packet from endpoint i can carry. The analyzer names a connection by the netns owner,
  // so only owners (bridge mode) contribute their addresses to peer sets.
  const addrCache: (string[] | undefined)[] = new Array(rw.endpoints.length);
  const noAddresses: string[] = [];
  const addressesOf = (i: number): string[] => {
    let a = addrCache[i];
    if (!a) {
      const e = rw.endpoints[i];
      a = noAddresses;
      // endpointAddresses(rw, i) read in place (i is its own netns owner): a list grown from empty
      // by push takes room for 17, and these were tens of thousands of lists per compile.
      if (rw.netnsOwner(i) === i && e.networkMode.kind === 'bridge') {
        const add = (x: string | undefined) => {
          const c = x ? canon(x, warnings, e) : undefined;
          if (c) a = a === noAddresses ? [c] : [...a!, c];
        };
        for (const att of e.attachments) {
          add(att.ipv4);
          add(att.ipv6);
        }
      }
      addrCache[i] = a;
    }
    return a;
  };

  const peerMemo = new Map<Peer[] | 'all', PeerAddresses>();
  // Peers are also memoised by content (their key): each policy has its own peer lists, and many
  // repeat the same peers (their addresses are a function of the key).
  const peerByKey = new Map<string, PeerAddresses>();
  const peerAddresses = (peers: Peer[] | 'all'): PeerAddresses => {
    const hit = peerMemo.get(peers);
    if (hit) return hit;
    const key = peers === 'all' ? 'all' : jsonKey(peersKey, peers);
    const same = peerByKey.get(key);
    if (same) {
      peerMemo.set(peers, same);
      return same;
    }
    const out: PeerAddresses = { cidrs: [], cidrsExcept: [], key };
    if (peers === 'all') out.any = true;
    else {
      for (const p of peers) {
        if (p.kind === 'any') out.any = true;
        else if (p.kind === 'host') out.host = true;
        else if (p.kind === 'internet') out.internet = true;
        else if (p.kind === 'cidr') {
          const c = canonicalCidr(p.cidr).text;
          if (p.except.length) out.cidrsExcept.push({ cidr: c, except: p.except.map((x) => canonicalCidr(x).text) });
          else out.cidrs.push(c);
        } else {
          out.dynamic = true;
          for (const i of rw.memberIndices(p.selector)) {
            const a = addressesOf(i);
            for (let k = 0; k < a.length; k++) out.cidrs.push(a[k]);
          }
        }
      }
    }
    peerMemo.set(peers, out);
    peerByKey.set(key, out);
    return out;
  };

  /** Peers of a policy rule or allowlist: a value the kernel cannot take is the user's mistake. */
  const checkedPeers = (peers: Peer[] | 'all', whereOf: () => { pos?: SourcePos; context: string }): PeerAddresses => {
    try {
      return peerAddresses(peers);
    } catch (e) {
      // Named only on failure (the text was made for every clause otherwise).
      const where = whereOf();
      throw new UserError({
        severity: 'error',
        code: 'enforce.invalid-peer',
        message: `${where.context}: ${(e as Error).message}; nothing was applied`,
        fix: 'write an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/64)',
        pos: where.pos,
        context: where.context,
      });
    }
  };

  const hasNamedPort = (r: Rule): boolean => (r.ports ?? []).some((p) => 'name' in p);

  // Named ports resolve against the destination's declared ports only: the result is kept per rule
  // and declared-ports content, so every identity (and chain) with the same ports shares one ConnSet.
  const namedPortsMemo = new Map<Rule, Map<string, ConnSet>>();
  const portsToward = (r: Rule, destination: Endpoint): ConnSet => {
    if (!hasNamedPort(r)) return rulePorts(r, destination);
    let byPorts = namedPortsMemo.get(r);
    if (!byPorts) namedPortsMemo.set(r, (byPorts = new Map()));
    const key = jsonKey(declaredPortsKey, destination.declaredPorts);
    let conns = byPorts.get(key);
    if (!conns) byPorts.set(key, (conns = rulePorts(r, destination)));
    return conns;
  };

  const clausesFor = (policyId: string, r: Rule, d: Direction, self: number): Clause[] => {
    checkedPeers(r.peers, () => ({ pos: r.pos, context: `policy ${policyId}, ${d} rule${r.text ? ` ${r.text}` : ''}` }));
    if (d === 'ingress') return [{ policyId, peer: peerAddresses(r.peers), conns: portsToward(r, rw.endpoints[self]) }];
    if (!hasNamedPort(r)) return [{ policyId, peer: peerAddresses(r.peers), conns: rulePorts(r, undefined) }];
    // Egress with named ports: they resolve per destination endpoint; other peers see numeric ports only.
    const out: Clause[] = [];
    const others = r.peers === 'all' ? 'all' : r.peers.filter((p) => p.kind !== 'endpoints');
    if (others === 'all' || others.length) {
      const conns = rulePorts(r, undefined);
      if (!conns.isEmpty) out.push({ policyId, peer: peerAddresses(others === 'all' ? [{ kind: 'any' }] : others), conns });
    }
    for (let j = 0; j < rw.endpoints.length; j++) {
      const covered = r.peers === 'all' || r.peers.some((p) => p.kind === 'endpoints' && rw.members(p.selector)[j] === 1);
      if (!covered || addressesOf(j).length === 0) continue;
      const conns = portsToward(r, rw.endpoints[j]);
      if (!conns.isEmpty) out.push({ policyId, peer: { cidrs: addressesOf(j), cidrsExcept: [], key: `endpoint:${rw.endpoints[j].id}`, dynamic: true }, conns });
    }
    return out;
  };

  // Endpoints selected by the same policies get the same clauses (an identity): they are built once
  // per identity. The identity is found by walking a trie keyed by the endpoint's SelectedPolicy
  // objects (resolveWorld shares one per policy and direction), which costs no string per endpoint.
  // Ingress clauses resolve named ports on the endpoint itself, so its declared ports join the key then.
  interface IdentityNode {
    next?: Map<SelectedPolicy, IdentityNode>;
    /** Whether a selected policy has ingress rules with named ports (set on the node of a whole list). */
    named?: boolean;
    built?: DirectionPolicy;
    byPorts?: Map<string, DirectionPolicy>;
  }
  const identities: Record<Direction, IdentityNode> = { ingress: {}, egress: {} };
  // resolveWorld gives endpoints selected by the same policies one shared list: its node is found
  // once per list, not by a walk per endpoint.
  const byList: Record<Direction, Map<SelectedPolicy[], IdentityNode>> = { ingress: new Map(), egress: new Map() };
  const buildDir = (i: number, d: Direction, sel: SelectedPolicy[]): DirectionPolicy => {
    const out: DirectionPolicy = { isolated: rw.isolated(i, d), isolatedBy: sel.filter((s) => s.isolates).map((s) => s.policy.id), denies: [], allows: [] };
    for (const s of sel) {
      for (const r of s.policy[d]) {
        if (r.action === 'deny') out.denies.push(...clausesFor(s.policy.id, r, d, i));
        else if (s.isolates) out.allows.push(...clausesFor(s.policy.id, r, d, i));
      }
    }
    out.denies = out.denies.filter((c) => !c.conns.isEmpty);
    out.allows = out.allows.filter((c) => !c.conns.isEmpty);
    return out;
  };
  const dir = (i: number, d: Direction): DirectionPolicy => {
    const sel = rw.selecting(i, d);
    let node = byList[d].get(sel);
    if (!node) {
      node = identities[d];
      for (const s of sel) {
        node.next ??= new Map();
        let child = node.next.get(s);
        if (!child) node.next.set(s, (child = {}));
        node = child;
      }
      byList[d].set(sel, node);
    }
    node.named ??= d === 'ingress' && sel.some((s) => s.policy.ingress.some(hasNamedPort));
    if (!node.named) return (node.built ??= buildDir(i, d, sel));
    const key = jsonKey(declaredPortsKey, rw.endpoints[i].declaredPorts);
    node.byPorts ??= new Map();
    let built = node.byPorts.get(key);
    if (!built) node.byPorts.set(key, (built = buildDir(i, d, sel)));
    return built;
  };

  const endpoints: ResolvedEndpoint[] = [];
  for (let i = 0; i < rw.endpoints.length; i++) {
    if (only && !only.has(i)) continue;
    const e = rw.endpoints[i];
    const display = endpointDisplayName(e);
    if (rw.netnsOwner(i) !== i) continue; // its traffic is its netns owner's, as in the analyzer
    if (e.networkMode.kind === 'host') {
      if (rw.selecting(i, 'ingress').length || rw.selecting(i, 'egress').length) {
        warnings.push(POLICY_WARNINGS.hostNetwork(display));
      }
      continue;
    }
    if (e.networkMode.kind !== 'bridge') continue;
    const addresses: string[] = [];
    for (const a of e.attachments) {
      if (!managedNames.has(a.network)) continue;
      const c4 = a.ipv4 ? canon(a.ipv4, warnings, display) : undefined;
      if (c4) addresses.push(c4);
      const c6 = a.ipv6 ? canon(a.ipv6, warnings, display) : undefined;
      if (c6) addresses.push(c6);
    }
    const published: PublishedGuard[] = [];
    for (const port of e.publishedPorts) {
      if (port.hostPort === undefined || !(isAllInterfaces(port.hostIp) || !isLoopback(port.hostIp))) continue;
      for (const list of allowlistsFor(rw, i, port)) {
        if (published.some((g) => g.allowlistId === list.id && g.hostPort === port.hostPort && g.protocol === port.protocol)) continue;
        published.push({ allowlistId: list.id, hostPort: port.hostPort, protocol: port.protocol, sources: checkedPeers(list.sources, () => ({ pos: list.pos, context: `published-port allowlist ${list.id}` })) });
      }
    }
    const ingress = dir(i, 'ingress');
    const egress = dir(i, 'egress');
    if (addresses.length === 0 && (ingress.isolated || egress.isolated || ingress.denies.length || egress.denies.length)) {
      warnings.push(POLICY_WARNINGS.noAddress(display));
    }
    endpoints.push({ id: e.id, display, addresses, ingress, egress, published });
  }
  // Addresses on unmanaged networks, of every endpoint (in order: the first one owns an address).
  const unmanagedOwners = new Map<string, string>();
  for (let i = 0; i < rw.endpoints.length; i++) {
    const e = rw.endpoints[i];
    if (rw.netnsOwner(i) !== i || e.networkMode.kind !== 'bridge') continue;
    for (const a of e.attachments) {
      if (managedNames.has(a.network)) continue;
      for (const x of [a.ipv4, a.ipv6]) {
        const c = x ? canon(x, [], e) : undefined;
        if (c && !unmanagedOwners.has(c)) unmanagedOwners.set(c, e.id);
      }
    }
  }
  const internalRanges = rw.internalRanges.map((c) => c.text);
  void ConnSet;
  return { endpoints, networks, internalRanges, defaultStance: rw.policies.defaultStance, warnings, unmanagedOwners };
}

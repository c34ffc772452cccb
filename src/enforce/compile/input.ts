// (World, PolicySet) -> EnforcementInput, using the analyzer's semantic core (analysis/resolve.ts)
// so that the kernel and the matrix cannot drift apart: groups, selection, isolation, peer
// membership, named ports and published-port allowlists all come from there.
import { allowlistsFor, endpointAddresses, resolveWorld, rulePorts, type Direction, type ResolvedWorld } from '../../analysis/resolve.js';
import { ConnSet } from '../../model/connset.js';
import { isAllInterfaces, isLoopback } from '../../model/address.js';
import type { Peer, PolicySet, Rule } from '../../model/ir.js';
import { UserError, type SourcePos } from '../../model/diagnostics.js';
import { endpointDisplayName, type World } from '../../model/world.js';
import { canonicalAddress, canonicalCidr } from '../validate.js';
import type { Clause, DirectionPolicy, EnforcementInput, PeerAddresses, PublishedGuard, ResolvedNetwork } from './resolved.js';

export interface InputOptions {
  /** Network names never managed (besides networks labelled `moat.managed=false`). */
  unmanagedNetworks?: string[];
}

/** Network label that opts a bridge network out of enforcement. */
export const MANAGED_LABEL = 'moat.managed';

export function buildEnforcementInput(world: World, policies: PolicySet, options: InputOptions = {}): EnforcementInput {
  const rw = resolveWorld(world, policies);
  return enforcementInputFrom(rw, options);
}

function canon(address: string, warnings: string[], where: string): string | undefined {
  try {
    return canonicalAddress(address).text;
  } catch {
    warnings.push(`${where}: ignoring invalid address ${JSON.stringify(address)}`);
    return undefined;
  }
}

export function enforcementInputFrom(rw: ResolvedWorld, options: InputOptions = {}): EnforcementInput {
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
  const addrCache = new Map<number, string[]>();
  const addressesOf = (i: number): string[] => {
    let a = addrCache.get(i);
    if (!a) {
      const e = rw.endpoints[i];
      a = rw.netnsOwner(i) !== i || e.networkMode.kind !== 'bridge' ? [] : endpointAddresses(rw, i).map((x) => canon(x, warnings, endpointDisplayName(e))).filter((x): x is string => !!x);
      addrCache.set(i, a);
    }
    return a;
  };

  const peerMemo = new Map<Peer[] | 'all', PeerAddresses>();
  const peerAddresses = (peers: Peer[] | 'all'): PeerAddresses => {
    const hit = peerMemo.get(peers);
    if (hit) return hit;
    const out: PeerAddresses = { cidrs: [], cidrsExcept: [], key: peers === 'all' ? 'all' : JSON.stringify(peers) };
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
          const m = rw.members(p.selector);
          for (let i = 0; i < m.length; i++) if (m[i]) out.cidrs.push(...addressesOf(i));
        }
      }
    }
    peerMemo.set(peers, out);
    return out;
  };

  /** Peers of a policy rule or allowlist: a value the kernel cannot take is the user's mistake. */
  const checkedPeers = (peers: Peer[] | 'all', where: { pos?: SourcePos; context: string }): PeerAddresses => {
    try {
      return peerAddresses(peers);
    } catch (e) {
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

  const clausesFor = (policyId: string, r: Rule, d: Direction, self: number): Clause[] => {
    checkedPeers(r.peers, { pos: r.pos, context: `policy ${policyId}, ${d} rule${r.text ? ` ${r.text}` : ''}` });
    if (d === 'ingress') return [{ policyId, peer: peerAddresses(r.peers), conns: rulePorts(r, rw.endpoints[self]) }];
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
      const conns = rulePorts(r, rw.endpoints[j]);
      if (!conns.isEmpty) out.push({ policyId, peer: { cidrs: addressesOf(j), cidrsExcept: [], key: `endpoint:${rw.endpoints[j].id}`, dynamic: true }, conns });
    }
    return out;
  };

  const endpoints = [];
  const dirMemo = new Map<string, DirectionPolicy>();
  const policyNos = new Map<object, number>();
  const policyNo = (p: object): number => {
    let n = policyNos.get(p);
    if (n === undefined) policyNos.set(p, (n = policyNos.size));
    return n;
  };
  for (let i = 0; i < rw.endpoints.length; i++) {
    const e = rw.endpoints[i];
    const display = endpointDisplayName(e);
    if (rw.netnsOwner(i) !== i) continue; // its traffic is its netns owner's, as in the analyzer
    if (e.networkMode.kind === 'host') {
      if (rw.selecting(i, 'ingress').length || rw.selecting(i, 'egress').length) {
        warnings.push(`${display} uses the host's network: moat does not filter the host, its policies are not enforced`);
      }
      continue;
    }
    if (e.networkMode.kind !== 'bridge') continue;
    const addresses: string[] = [];
    for (const a of e.attachments) {
      if (!managedNames.has(a.network)) continue;
      for (const ip of [a.ipv4, a.ipv6]) {
        const c = ip ? canon(ip, warnings, display) : undefined;
        if (c) addresses.push(c);
      }
    }
    const dir = (d: Direction): DirectionPolicy => {
      const sel = rw.selecting(i, d);
      // Endpoints selected by the same policies get the same clauses (an identity): build them once.
      // Ingress clauses resolve named ports on the endpoint itself, so its ports join the key then.
      let key = `${d}|${sel.map((s) => `${policyNo(s.policy)}${s.isolates ? '!' : ''}`).join('|')}`;
      if (d === 'ingress' && sel.some((s) => s.policy.ingress.some(hasNamedPort))) key += `|${JSON.stringify(e.declaredPorts)}`;
      const hit = dirMemo.get(key);
      if (hit) return hit;
      const built = buildDir(d, sel);
      dirMemo.set(key, built);
      return built;
    };
    const buildDir = (d: Direction, sel: ReturnType<typeof rw.selecting>): DirectionPolicy => {
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
    const published: PublishedGuard[] = [];
    for (const port of e.publishedPorts) {
      if (port.hostPort === undefined || !(isAllInterfaces(port.hostIp) || !isLoopback(port.hostIp))) continue;
      for (const list of allowlistsFor(rw, i, port)) {
        if (published.some((g) => g.allowlistId === list.id && g.hostPort === port.hostPort && g.protocol === port.protocol)) continue;
        published.push({ allowlistId: list.id, hostPort: port.hostPort, protocol: port.protocol, sources: checkedPeers(list.sources, { pos: list.pos, context: `published-port allowlist ${list.id}` }) });
      }
    }
    const ingress = dir('ingress');
    const egress = dir('egress');
    if (addresses.length === 0 && (ingress.isolated || egress.isolated || ingress.denies.length || egress.denies.length)) {
      warnings.push(`${display} has no known address on a managed network: its policies are not enforced`);
    }
    endpoints.push({ id: e.id, display, addresses, ingress, egress, published });
  }
  const internalRanges = rw.internalRanges.map((c) => c.text);
  void ConnSet;
  return { endpoints, networks, internalRanges, defaultStance: rw.policies.defaultStance, warnings };
}

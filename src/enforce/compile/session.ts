// Incremental compilation for the controller: when a few containers come or go and nothing else
// changed (the same policies, networks, namespaces and host), the next plan is the previous one plus
// or minus those containers' contributions, instead of a recompile of the whole world.
//
//   removed container: its elements leave every set and map (they carry its owner), it leaves its
//     chains' owners; chains left without owners, sets no chain refers to and their NFLOG prefixes go.
//   added container:   compiled together with one representative of every identity of the previous
//     plan (so every peer set of the plan exists in that small compile, with the real set names), with
//     the whole world's address families. Its chains must be chains of the plan already (a known
//     identity); its addresses join `known`, the verdict maps and each plan set that holds them in the
//     small compile (its membership of each peer).
//
// Anything the fast path cannot prove equal to a full compile falls back to one: a policy or network
// change, a new identity, egress rules with named ports (their clauses depend on every destination),
// shared network namespaces, an address claimed twice, a new address family, or more than a handful of
// changes at once. `test/unit/enforce/session.test.ts` checks the results against full compiles.
import { cidrContains, parseCidr, type Family } from '../../model/address.js';
import type { Peer, PolicySet } from '../../model/ir.js';
import { resolveWorld } from '../../analysis/resolve.js';
import { endpointDisplayName, type Endpoint, type World } from '../../model/world.js';
import type { AddressSet, PlanChain, PlanRule, RulesetPlan, VerdictMap } from '../plan-model.js';
import { canonicalAddress, safeComment } from '../validate.js';

function canon(ip: string): string {
  try {
    return canonicalAddress(ip).text;
  } catch {
    return ip;
  }
}
import { compile, endpointFamilies, type CompileOptions } from './compile.js';
import { buildEnforcementInput, type InputOptions } from './input.js';

export interface SessionOptions extends CompileOptions, InputOptions {
  /** Most containers added or removed in one delta (default 8); more is a full compile. */
  maxDelta?: number;
}

export interface SessionResult {
  plan: RulesetPlan;
  mode: 'full' | 'delta';
  /** Why a full compile was needed. */
  reason?: string;
}

interface Prev {
  world: World;
  policies: PolicySet;
  policyKey: string;
  plan: RulesetPlan;
  families: Family[];
  endpoints: Map<string, Endpoint>;
}

const FIXED_SETS = new Set(['managed4', 'managed6', 'known4', 'known6', 'notinet4', 'notinet6']);
const ownerOf = (e: Endpoint) => safeComment(`ctr:${e.id}`);

function hasEgressNamedPorts(p: PolicySet): boolean {
  return p.policies.some((x) => x.egress.some((r) => (r.ports ?? []).some((pt) => 'name' in pt)));
}

/** Set names a rule refers to. */
function setsOf(r: PlanRule): string[] {
  return r.matches.flatMap((m) => (m.kind === 'set' ? [m.set] : []));
}

function sameList<T>(a: T[], b: T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Does the interval set hold a CIDR (not a host address) containing `addr`? */
function coveredByCidr(set: AddressSet, addr: string): boolean {
  for (const e of set.elements) {
    if (!e.value.includes('/')) continue;
    const c = parseCidr(e.value);
    if (c && cidrContains(c, addr)) return true;
  }
  return false;
}

export class CompileSession {
  private prev: Prev | undefined;
  private peerCache = new Map<string, Peer[] | null>();

  private parsedPeers(json: string): Peer[] | null {
    let p = this.peerCache.get(json);
    if (p === undefined) {
      try {
        const v = JSON.parse(json) as unknown;
        p = Array.isArray(v) ? (v as Peer[]) : null;
      } catch {
        p = null;
      }
      if (this.peerCache.size > 10_000) this.peerCache.clear();
      this.peerCache.set(json, p);
    }
    return p;
  }
  /** Counters for tests and metrics. */
  readonly stats = { full: 0, delta: 0 };

  constructor(private readonly options: SessionOptions = {}) {}

  /** Forget the previous plan (the next compile is a full one). */
  reset(): void {
    this.prev = undefined;
  }

  /**
   * The plan for (world, policies). `policyKey` identifies the policy set's content (a change of key
   * means a full compile); the caller computes it from the policy files and labels.
   */
  compile(world: World, policies: PolicySet, policyKey: string): SessionResult {
    const why = this.prev ? this.deltaBlocker(this.prev, world, policies, policyKey) : 'no previous plan';
    if (why === undefined) {
      const r = this.delta(this.prev!, world, policies);
      if (r.plan) {
        this.remember(world, policies, policyKey, r.plan, this.prev!.families);
        this.stats.delta++;
        return { plan: r.plan, mode: 'delta' };
      }
      return this.full(world, policies, policyKey, r.reason);
    }
    return this.full(world, policies, policyKey, why);
  }

  private full(world: World, policies: PolicySet, policyKey: string, reason: string): SessionResult {
    const input = buildEnforcementInput(world, policies, this.options);
    const families = endpointFamilies(input.endpoints);
    const plan = compile(input, { ...this.options, families });
    this.remember(world, policies, policyKey, plan, families);
    this.stats.full++;
    return { plan, mode: 'full', reason };
  }

  private remember(world: World, policies: PolicySet, policyKey: string, plan: RulesetPlan, families: Family[]): void {
    this.prev = { world, policies, policyKey, plan, families, endpoints: new Map(world.endpoints.map((e) => [e.id, e])) };
  }

  /** Why the change from the previous world cannot be a delta (undefined: it may be). */
  private deltaBlocker(prev: Prev, world: World, policies: PolicySet, policyKey: string): string | undefined {
    if (policyKey !== prev.policyKey) return 'policy changed';
    if (!sameList(world.networks, prev.world.networks)) return 'networks changed';
    if (JSON.stringify(world.namespaces) !== JSON.stringify(prev.world.namespaces)) return 'namespaces changed';
    if (JSON.stringify(world.host) !== JSON.stringify(prev.world.host)) return 'host changed';
    if (hasEgressNamedPorts(policies)) return 'egress rules with named ports';
    if (world.endpoints.some((e) => e.networkMode.kind === 'container')) return 'shared network namespaces';
    return undefined;
  }

  private delta(prev: Prev, world: World, policies: PolicySet): { plan?: RulesetPlan; reason: string } {
    const now = new Map(world.endpoints.map((e) => [e.id, e]));
    const removed = [...prev.endpoints.values()].filter((e) => now.get(e.id) !== e);
    const added = world.endpoints.filter((e) => prev.endpoints.get(e.id) !== e);
    if (removed.length + added.length > (this.options.maxDelta ?? 8)) return { reason: `${removed.length + added.length} changes at once` };
    for (const e of [...removed, ...added]) if (e.networkMode.kind !== 'bridge') return { reason: `${endpointDisplayName(e)} is not in bridge mode` };

    let plan = prev.plan;
    if (removed.length) {
      const r = this.remove(plan, removed, world);
      if (!r.plan) return r;
      plan = r.plan;
    }
    if (added.length) {
      const r = this.add(plan, added, world, policies, prev.families);
      if (!r.plan) return r;
      plan = r.plan;
    }
    return { plan, reason: '' };
  }

  private remove(plan: RulesetPlan, gone: Endpoint[], world: World): { plan?: RulesetPlan; reason: string } {
    if (plan.warnings.some((w) => /claimed by/.test(w))) return { reason: 'an address is claimed twice' };
    const owners = new Set(gone.map(ownerOf));
    const ids = new Set(gone.map((e) => e.id));
    // Its addresses, from the plan (elements carry their owner).
    const addrs = new Set<string>();
    for (const s of plan.sets) if (s.name.startsWith('known')) for (const el of s.elements) if (owners.has(el.owner)) addrs.add(el.value);
    // Another container now on one of those addresses: a full compile decides who owns it. (A new
    // version of the same container, e.g. after `start`, is removed here and added back below.)
    for (const e of world.endpoints) {
      if (ids.has(e.id)) continue;
      for (const a of e.attachments) for (const ip of [a.ipv4, a.ipv6]) if (ip && addrs.has(canon(ip))) return { reason: `address ${ip} reused` };
    }
    const chains: PlanChain[] = [];
    for (const c of plan.chains) {
      if (!c.owners.some((o) => ids.has(o))) {
        chains.push(c);
        continue;
      }
      const left = c.owners.filter((o) => !ids.has(o));
      if (left.length || c.hook) chains.push({ ...c, owners: left });
    }
    const used = new Set<string>();
    for (const c of chains) for (const r of c.rules) for (const s of setsOf(r)) used.add(s);
    const sets: AddressSet[] = [];
    for (const s of plan.sets) {
      if (!FIXED_SETS.has(s.name) && !used.has(s.name)) continue;
      sets.push(s.elements.some((el) => owners.has(el.owner)) ? { ...s, elements: s.elements.filter((el) => !owners.has(el.owner)) } : s);
    }
    const maps: VerdictMap[] = plan.maps.map((m) => (m.elements.some((el) => owners.has(el.owner)) ? { ...m, elements: m.elements.filter((el) => !owners.has(el.owner)) } : m));
    const prefixes = new Set<string>();
    for (const c of chains) for (const r of c.rules) if (r.log) prefixes.add(r.log);
    const logPrefixes = Object.fromEntries(Object.entries(plan.logPrefixes).filter(([p]) => prefixes.has(p)));
    const names = gone.map(endpointDisplayName);
    const warnings = plan.warnings.filter((w) => !names.some((n) => w.includes(n)));
    return { plan: { ...plan, sets, maps, chains, logPrefixes, warnings }, reason: '' };
  }

  private add(plan: RulesetPlan, fresh: Endpoint[], world: World, policies: PolicySet, families: Family[]): { plan?: RulesetPlan; reason: string } {
    // The new containers compiled alone (with the whole world's families): their chains, addresses
    // and map elements. Their membership of the plan's peer sets is decided below, set by set.
    const mini: World = { ...world, endpoints: fresh };
    const input = buildEnforcementInput(mini, policies, this.options);
    const freshIds = new Set(fresh.map((e) => e.id));
    const freshInput = input.endpoints.filter((e) => freshIds.has(e.id));
    if (freshInput.length !== fresh.length) return { reason: 'a new container is not enforced the plain way' };
    if (endpointFamilies(freshInput).some((f) => !families.includes(f))) return { reason: 'a new address family' };
    const small = compile(input, { ...this.options, families });
    const rw = resolveWorld(mini, policies);

    const known = new Set<string>();
    for (const s of plan.sets) if (s.name.startsWith('known')) for (const el of s.elements) known.add(el.value);
    const freshAddrs = new Map<string, string>(); // address -> owner
    for (const e of freshInput) {
      for (const a of e.addresses) {
        if (known.has(a) || freshAddrs.has(a)) return { reason: `address ${a} already claimed` };
        freshAddrs.set(a, safeComment(`ctr:${e.id}`));
      }
    }
    if (small.warnings.some((w) => /claimed by/.test(w))) return { reason: 'address claimed twice' };

    // Its chains must be chains of the plan (a known identity).
    const chainNames = new Set(plan.chains.map((c) => c.name));
    const chainOwners = new Map<string, string[]>();
    for (const m of small.maps) {
      for (const el of m.elements) {
        if (!freshAddrs.has(el.key)) continue;
        if (!chainNames.has(el.chain)) return { reason: `new identity (chain ${el.chain})` };
      }
    }
    for (const c of small.chains) {
      if (c.hook) continue;
      const mine = c.owners.filter((o) => freshIds.has(o));
      if (mine.length) chainOwners.set(c.name, mine);
      if (mine.length && !chainNames.has(c.name)) return { reason: `new identity (chain ${c.name})` };
    }

    // Membership: a set of containers chosen by selectors takes a new container's addresses (of its
    // family) when one of its peers' selectors matches the container, as the analyzer decides it.
    const additions = new Map<string, { value: string; owner: string }[]>();
    for (const s of plan.sets) {
      if (s.peers === undefined) continue;
      const peers = this.parsedPeers(s.peers);
      if (!peers) return { reason: `set ${s.name}: unreadable peer list` };
      const add: { value: string; owner: string }[] = [];
      fresh.forEach((e, i) => {
        if (!peers.some((p) => p.kind === 'endpoints' && rw.members(p.selector)[i] === 1)) return;
        const r = freshInput.find((x) => x.id === e.id)!;
        for (const a of r.addresses) if ((a.includes(':') ? 6 : 4) === s.family && !coveredByCidr(s, a)) add.push({ value: a, owner: freshAddrs.get(a)! });
      });
      if (add.length) additions.set(s.name, add);
    }
    // known4/known6: the new addresses.
    for (const s of small.sets) {
      if (!s.name.startsWith('known')) continue;
      const mine = s.elements.filter((el) => freshAddrs.has(el.value));
      if (mine.length) additions.set(s.name, [...(additions.get(s.name) ?? []), ...mine]);
    }
    const sets = plan.sets.map((s) => (additions.has(s.name) ? { ...s, elements: [...s.elements, ...additions.get(s.name)!] } : s));
    const smallMaps = new Map(small.maps.map((m) => [m.name, m]));
    const maps = plan.maps.map((m) => {
      const extra = (smallMaps.get(m.name)?.elements ?? []).filter((el) => freshAddrs.has(el.key));
      return extra.length ? { ...m, elements: [...m.elements, ...extra] } : m;
    });
    const chains = plan.chains.map((c) => (chainOwners.has(c.name) ? { ...c, owners: [...c.owners, ...chainOwners.get(c.name)!] } : c));
    const names = fresh.map(endpointDisplayName);
    const warnings = [...plan.warnings, ...small.warnings.filter((w) => names.some((n) => w.includes(n)) && !plan.warnings.includes(w))];
    return { plan: { ...plan, sets, maps, chains, warnings }, reason: '' };
  }
}


// Incremental compilation for the controller: when a few containers come or go and nothing else
// changed (the same policies, networks, namespaces and host), the next plan is the previous one plus
// or minus those containers' contributions, instead of a recompile of the whole world.
//
//   removed container: its elements leave the sets and maps that hold them (they carry its owner), it
//     leaves its chains' owners; chains left without owners, sets no rule refers to any more and
//     their NFLOG prefixes go.
//   added container:   compiled alone (with the whole world's address families, the networks it is on
//     and the policies whose scope can include its namespace). Its chains are chains of the plan (a
//     known identity) or new ones whose rules name only sets the plan has (a new identity); its
//     addresses join `known` and the verdict maps, and each peer set of the plan whose peer selectors
//     match it (decided from the set's peer list).
//
// The work per change does not grow with the number of containers: the changed containers are found
// by identity (the common head and tail of the two lists are skipped), and an index of the plan says
// which sets, maps and chains hold each container's contributions.
//
// A policy change is a policy delta: only the containers a changed policy selects (before or after)
// can get other rules, so they alone are resolved and compiled (against the whole world, for the peers
// of the changed policies), and their map elements and chain ownership are replaced in the previous
// plan; chains and sets nothing uses any more go. Containers that came or went in the same change are
// then a container delta from there.
//
// Anything the fast paths cannot prove equal to a full compile falls back to one: a network change, a
// change of groups, allowlists, stance, namespace labels or internal ranges, reordered policies, a new
// identity whose rules need a set the plan lacks, egress rules with named ports (for container deltas:
// their clauses depend on every destination), shared network namespaces, an address claimed twice, a
// new address family, or more than a handful of changes at once.
// `test/unit/enforce/session.test.ts` checks the results against full compiles.
import { cidrContains, parseCidr, type Family } from '../../model/address.js';
import { SYNTHETIC, type EndpointSelector, type Peer, type Policy, type PolicySet } from '../../model/ir.js';
import { resolveWorld } from '../../analysis/resolve.js';
import { endpointDisplayName, type Endpoint, type World } from '../../model/world.js';
import { capacitiesOf, containerOwner, isIngressMap, mapCapacity, SET, setCapacity, setsOfRule, type AddressSet, type MapElement, type PlanChain, type PlanRule, type RulesetPlan, type VerdictMap } from '../plan-model.js';
import { canonicalAddress } from '../validate.js';
import { compile, endpointFamilies, keptCapacity, type CompileOptions } from './compile.js';
import { buildEnforcementInput, enforcementInputFrom, POLICY_WARNINGS, type InputOptions } from './input.js';

function canon(ip: string): string {
  try {
    return canonicalAddress(ip).text;
  } catch {
    return ip;
  }
}

export interface SessionOptions extends CompileOptions, InputOptions {
  /** Most containers added or removed in one delta (default 8); more is a full compile. */
  maxDelta?: number;
}

export interface SessionResult {
  plan: RulesetPlan;
  /** `delta`: containers came or went; `policy-delta`: policies changed (and maybe a few containers). */
  mode: 'full' | 'delta' | 'policy-delta';
  /** Why a full compile was needed. */
  reason?: string;
}

interface Prev {
  world: World;
  policies: PolicySet;
  policyKey: string;
  plan: RulesetPlan;
  families: Family[];
  /**
   * Built on the first delta after a full compile, or earlier by `prepare()` when the caller is idle:
   * at 10,000 endpoints it is ~30 ms and much of a full compile's garbage, which a policy change
   * should not wait for.
   */
  index?: PlanIndex;
  /** Some container of `world` shares another's network namespace (then every compile is full). */
  sharedNetns: boolean;
}

/**
 * Where each container's contributions sit in the plan, so that a delta touches only them (the
 * work per change does not grow with the number of containers). Built after every full compile and
 * kept up to date by each delta; any delta that gives up is followed by a full compile, which builds
 * it again.
 */
interface PlanIndex {
  /** Canonical address -> owner (`ctr:<id>`), from the ingress maps (every known address is there). */
  addrOwner: Map<string, string>;
  /** Owner -> its addresses. */
  ownerAddrs: Map<string, string[]>;
  /** Owner -> names of the sets holding its elements (may name sets since removed). */
  ownerSets: Map<string, Set<string>>;
  /** Owner -> names of the verdict maps holding its elements. */
  ownerMaps: Map<string, Set<string>>;
  /** Container id -> names of the chains it owns. */
  idChains: Map<string, Set<string>>;
  /** Set name -> number of rules referring to it. */
  setRefs: Map<string, number>;
  chainNames: Set<string>;
  /** Chain name -> its position in the plan's chain list (rebuilt when chains go). */
  chainPos: Map<string, number>;
}

/** The full compile's chain order: base chains first (as they are), then by name. */
function chainOrder(a: PlanChain, b: PlanChain): number {
  return (a.hook ? 0 : 1) - (b.hook ? 0 : 1) || (a.hook || b.hook ? 0 : a.name.localeCompare(b.name));
}

function chainPositions(chains: PlanChain[]): Map<string, number> {
  return new Map(chains.map((c, i) => [c.name, i]));
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s) s.add(v);
  else m.set(k, new Set([v]));
}

/** Records a known address of its owner. */
function noteAddress(ix: PlanIndex, value: string, owner: string): void {
  ix.addrOwner.set(value, owner);
  const list = ix.ownerAddrs.get(owner);
  if (list) list.push(value);
  else ix.ownerAddrs.set(owner, [value]);
}

function indexPlan(plan: RulesetPlan): PlanIndex {
  const ix: PlanIndex = { addrOwner: new Map(), ownerAddrs: new Map(), ownerSets: new Map(), ownerMaps: new Map(), idChains: new Map(), setRefs: new Map(), chainNames: new Set(), chainPos: chainPositions(plan.chains) };
  for (const s of plan.sets) for (const el of s.elements) if (el.owner.startsWith('ctr:')) addTo(ix.ownerSets, el.owner, s.name);
  for (const m of plan.maps) {
    const known = isIngressMap(m.name);
    for (const el of m.elements) {
      addTo(ix.ownerMaps, el.owner, m.name);
      if (known && el.owner.startsWith('ctr:')) noteAddress(ix, el.key, el.owner);
    }
  }
  for (const c of plan.chains) {
    ix.chainNames.add(c.name);
    for (const o of c.owners) addTo(ix.idChains, o, c.name);
    for (const r of c.rules) for (const n of setsOfRule(r)) ix.setRefs.set(n, (ix.setRefs.get(n) ?? 0) + 1);
  }
  return ix;
}

/**
 * The containers added and removed between two lists that keep their order (the controller's world
 * does): the common prefix and suffix are skipped by identity, and a small middle is compared. Returns
 * undefined when the middle is large (the caller then compares by id).
 */
function listChanges(prev: Endpoint[], next: Endpoint[], max: number): { added: Endpoint[]; removed: Endpoint[] } | undefined {
  let head = 0;
  while (head < prev.length && head < next.length && prev[head] === next[head]) head++;
  let tail = 0;
  while (tail < prev.length - head && tail < next.length - head && prev[prev.length - 1 - tail] === next[next.length - 1 - tail]) tail++;
  const was = prev.slice(head, prev.length - tail);
  const is = next.slice(head, next.length - tail);
  if (was.length + is.length > 4 * max) return undefined;
  const wasSet = new Set(was);
  const isSet = new Set(is);
  return { added: is.filter((e) => !wasSet.has(e)), removed: was.filter((e) => !isSet.has(e)) };
}

/** Can the selector's namespace scope include any of these namespaces? (A cheap, conservative test.) */
function scopeMayInclude(sel: EndpointSelector, namespaces: Set<string>): boolean {
  return sel.namespaces.kind !== 'names' || sel.namespaces.names.some((n) => namespaces.has(n));
}

const FIXED_SETS = new Set(([4, 6] as const).flatMap((f) => [SET.managed(f), SET.notInternet(f)]));
const ownerOf = (e: { id: string }) => containerOwner(e.id);

// Per policy set (the controller hands the same object over until the policy changes): answers that
// would otherwise walk every policy on every container event.
const namedPortsMemo = new WeakMap<PolicySet, boolean>();
function hasEgressNamedPorts(p: PolicySet): boolean {
  let v = namedPortsMemo.get(p);
  if (v === undefined) namedPortsMemo.set(p, (v = p.policies.some((x) => x.egress.some((r) => (r.ports ?? []).some((pt) => 'name' in pt)))));
  return v;
}

const relevantMemo = new WeakMap<PolicySet, Map<string, PolicySet>>();
/** The policies whose subject's namespace scope may include one of these namespaces. */
/**
 * The policies and groups that can concern new containers in these namespaces: a policy whose
 * subject's scope names other namespaces cannot select them, nor a group whose scope does, nor a
 * policy whose subject requires membership of such a group (`moat.group/<g>=true`, what a moat
 * policy file's groups become; unless a new container carries a group label of its own). At 10,000
 * endpoints and 400 groups, resolving them all for one new container was most of a delta.
 */
function relevantPolicies(p: PolicySet, namespaces: Set<string>, ownGroupLabels: boolean): PolicySet {
  let byKey = relevantMemo.get(p);
  if (!byKey) relevantMemo.set(p, (byKey = new Map()));
  const key = `${ownGroupLabels ? 1 : 0}\u0001${[...namespaces].sort().join('\u0000')}`;
  let v = byKey.get(key);
  if (!v) {
    if (byKey.size > 1000) byKey.clear();
    const groups = p.groups.filter((g) => scopeMayInclude(g.selector, namespaces));
    const possible = new Set(groups.map((g) => g.name));
    const needsAbsentGroup = (sel: EndpointSelector) =>
      !ownGroupLabels && Object.entries(sel.labels.matchLabels ?? {}).some(([k, val]) => val === 'true' && k.startsWith(SYNTHETIC.groupPrefix) && !possible.has(k.slice(SYNTHETIC.groupPrefix.length)));
    const relevant = p.policies.filter((x) => scopeMayInclude(x.subject, namespaces) && !needsAbsentGroup(x.subject));
    byKey.set(key, (v = relevant.length === p.policies.length && groups.length === p.groups.length ? p : { ...p, policies: relevant, groups }));
  }
  return v;
}

const isSharedNetns = (e: Endpoint) => e.networkMode.kind === 'container';

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

// Policies compared by content without source positions (a line added above a policy moves it, not
// its meaning); memoised per object (the controller hands the same objects over until a file changes).
const noPos = (k: string, v: unknown) => (k === 'pos' ? undefined : v);
const policyTextMemo = new WeakMap<Policy, string>();
function policyText(p: Policy): string {
  let t = policyTextMemo.get(p);
  if (t === undefined) policyTextMemo.set(p, (t = JSON.stringify(p, noPos)));
  return t;
}
const restTextMemo = new WeakMap<PolicySet, string>();
/** Everything of a policy set but its policies that the plan depends on. */
function restText(p: PolicySet): string {
  let t = restTextMemo.get(p);
  if (t === undefined) restTextMemo.set(p, (t = JSON.stringify([p.groups, p.publishedPortAllowlists, p.defaultStance, p.namespaceLabels, p.internalRanges], noPos)));
  return t;
}

/**
 * The ids of the policies added, removed or changed from `before` to `after`, or why the change is
 * more than that (groups, allowlists, the default stance, namespace labels or internal ranges changed;
 * policies that stay changed order, which orders their rules; an id used twice).
 */
export function changedPolicies(before: PolicySet, after: PolicySet): { changed: Set<string> } | { reason: string } {
  if (restText(before) !== restText(after)) return { reason: 'groups, allowlists, stance, namespace labels or internal ranges changed' };
  const was = new Map<string, Policy>();
  for (const p of before.policies) {
    if (was.has(p.id)) return { reason: `policy id ${p.id} used twice` };
    was.set(p.id, p);
  }
  const is = new Map<string, Policy>();
  for (const p of after.policies) {
    if (is.has(p.id)) return { reason: `policy id ${p.id} used twice` };
    is.set(p.id, p);
  }
  const changed = new Set<string>();
  for (const [id, p] of was) {
    const q = is.get(id);
    if (!q || (q !== p && policyText(q) !== policyText(p))) changed.add(id);
  }
  for (const id of is.keys()) if (!was.has(id)) changed.add(id);
  const kept = (list: Policy[], other: Map<string, Policy>) => list.filter((p) => other.has(p.id)).map((p) => p.id);
  if (!sameList(kept(before.policies, is), kept(after.policies, was))) return { reason: 'policies reordered' };
  return { changed };
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
  readonly stats = { full: 0, delta: 0, policyDelta: 0 };

  constructor(private readonly options: SessionOptions = {}) {}

  /**
   * Builds what the next delta needs from the last full compile (the plan's index) if it is not
   * there yet. For idle time: the controller calls it once a change is in the kernel and no event
   * waits. Returns whether there was work to do.
   */
  prepare(): boolean {
    if (!this.prev || this.prev.index) return false;
    this.prev.index = indexPlan(this.prev.plan);
    return true;
  }

  /** Forget the previous plan (the next compile is a full one). */
  reset(): void {
    this.prev = undefined;
  }

  /**
   * The plan for (world, policies). `policyKey` identifies the policy set's content (a change of key
   * means a full compile); the caller computes it from the policy files and labels.
   */
  compile(world: World, policies: PolicySet, policyKey: string): SessionResult {
    const prev = this.prev;
    if (!prev) return this.full(world, policies, policyKey, 'no previous plan');
    const why = this.worldBlocker(prev, world);
    if (why !== undefined) return this.full(world, policies, policyKey, why);
    if (policyKey !== prev.policyKey) {
      // Policies and containers changed at once (a labelled container of a new service brings its
      // label policy): the policy delta on the previous world, then the container delta from there.
      const sameWorld = sameList(world.endpoints, prev.world.endpoints);
      const r = this.policyDelta(prev, sameWorld ? world : prev.world, policies, policyKey);
      if (!r.plan) return this.full(world, policies, policyKey, `policy changed: ${r.reason}`);
      if (!sameWorld) {
        if (hasEgressNamedPorts(policies)) return this.full(world, policies, policyKey, 'policy changed, and containers under egress rules with named ports');
        const c = this.delta(this.prev!, world, policies);
        if (!c.plan) return this.full(world, policies, policyKey, `policy changed, and containers: ${c.reason}`);
        this.stats.policyDelta++;
        return { plan: c.plan, mode: 'policy-delta' };
      }
      this.stats.policyDelta++;
      return { plan: r.plan, mode: 'policy-delta' };
    }
    if (hasEgressNamedPorts(policies)) return this.full(world, policies, policyKey, 'egress rules with named ports');
    const r = this.delta(prev, world, policies);
    if (r.plan) {
      this.stats.delta++;
      return { plan: r.plan, mode: 'delta' };
    }
    return this.full(world, policies, policyKey, r.reason);
  }

  private full(world: World, policies: PolicySet, policyKey: string, reason: string): SessionResult {
    const input = buildEnforcementInput(world, policies, this.options);
    const families = endpointFamilies(input.endpoints);
    // Sets and maps keep the capacities the kernel has while they fit (CompileOptions.capacities).
    const plan = compile(input, { ...this.options, families, capacities: this.prev ? capacitiesOf(this.prev.plan) : undefined });
    this.prev = { world, policies, policyKey, plan, families, sharedNetns: world.endpoints.some(isSharedNetns) };
    this.stats.full++;
    return { plan, mode: 'full', reason };
  }

  /** Why the change from the previous world cannot be a delta of either kind (undefined: it may be). */
  private worldBlocker(prev: Prev, world: World): string | undefined {
    if (!sameList(world.networks, prev.world.networks)) return 'networks changed';
    if (JSON.stringify(world.namespaces) !== JSON.stringify(prev.world.namespaces)) return 'namespaces changed';
    if (JSON.stringify(world.host) !== JSON.stringify(prev.world.host)) return 'host changed';
    // The previous world's answer; the containers added since are checked in delta().
    if (prev.sharedNetns) return 'shared network namespaces';
    return undefined;
  }

  /**
   * The next plan from the previous one, or why not. On success `prev` (its plan and index) moves to
   * the new world; on failure it is left half-updated, and the caller's full compile replaces it.
   */
  private delta(prev: Prev, world: World, policies: PolicySet): { plan?: RulesetPlan; reason: string } {
    const max = this.options.maxDelta ?? 8;
    const { added, removed } = listChanges(prev.world.endpoints, world.endpoints, max) ?? this.changesById(prev, world);
    if (removed.length + added.length > max) return { reason: `${removed.length + added.length} changes at once` };
    for (const e of [...removed, ...added]) if (e.networkMode.kind !== 'bridge') return { reason: isSharedNetns(e) ? 'shared network namespaces' : `${endpointDisplayName(e)} is not in bridge mode` };

    let plan = prev.plan;
    const index = (prev.index ??= indexPlan(prev.plan));
    if (removed.length) {
      const r = this.remove(plan, index, removed, added);
      if (!r.plan) return r;
      plan = r.plan;
    }
    if (added.length) {
      const r = this.add(plan, index, added, world, policies, prev.families);
      if (!r.plan) return r;
      plan = r.plan;
    }
    this.prev = { ...prev, world, policies, plan };
    return { plan, reason: '' };
  }

  /**
   * The next plan after a policy change, for the previous world (`world` holds the same containers),
   * or why not. Only the containers
   * that a changed policy selects (its old or new subject) can get other rules: the rules of a
   * container come from the policies that select it, the allowlists and the default stance, and peer
   * sets depend on the world and the groups, not on which policies name them. So those containers are
   * resolved and compiled alone (against the whole world, for the peers of the changed policies), and
   * the plan keeps everything else: their map elements and chain ownership are replaced, chains left
   * without owners and sets no rule names any more go, new chains and sets come in.
   */
  private policyDelta(prev: Prev, world: World, policies: PolicySet, policyKey: string): { plan?: RulesetPlan; reason: string } {
    if (prev.plan.warnings.some((w) => /claimed by/.test(w))) return { reason: 'an address is claimed twice' };
    const diff = changedPolicies(prev.policies, policies);
    if ('reason' in diff) return diff;
    const plan = prev.plan;
    if (diff.changed.size === 0) {
      this.prev = { ...prev, world, policies, policyKey };
      return { plan, reason: '' };
    }
    const rw = resolveWorld(world, policies);
    const affected = new Set<number>();
    const before = new Map(prev.policies.policies.map((p) => [p.id, p]));
    const subjects = [...policies.policies.filter((p) => diff.changed.has(p.id)), ...[...diff.changed].flatMap((id) => before.get(id) ?? [])];
    for (const p of subjects) for (const i of rw.memberIndices(p.subject)) affected.add(i);
    if (affected.size > Math.max(8, world.endpoints.length / 2)) return { reason: `${affected.size} of ${world.endpoints.length} containers affected` };
    // The index only once the delta goes ahead (at 10,000 endpoints it is ~30 ms when idle time has
    // not built it).
    const ix = (prev.index ??= indexPlan(plan));
    const input = enforcementInputFrom(rw, this.options, affected);
    // Peer set elements of the other containers carry their owners as in a full compile.
    const small = compile(input, { ...this.options, families: prev.families, knownAddressOwner: (a) => ix.addrOwner.get(a) });
    if (small.warnings.some((w) => /claimed by/.test(w))) return { reason: 'an address is claimed twice' };
    const ids = new Set([...affected].map((i) => rw.endpoints[i].id));
    const owners = new Set([...ids].map((id) => ownerOf({ id })));

    // Chains: the affected containers leave the chains they owned and join those of the small plan.
    const touched = new Set<string>();
    for (const id of ids) for (const n of ix.idChains.get(id) ?? []) touched.add(n);
    const fresh = new Map<string, PlanChain>();
    for (const c of small.chains) if (!c.hook) fresh.set(c.name, c);
    const chains: PlanChain[] = [];
    for (const c of plan.chains) {
      const join = fresh.get(c.name);
      if (!join && !touched.has(c.name)) {
        chains.push(c);
        continue;
      }
      let left = touched.has(c.name) ? c.owners.filter((o) => !ids.has(o)) : c.owners;
      if (join) {
        left = left.concat(join.owners);
        fresh.delete(c.name);
      }
      if (left.length || c.hook) chains.push({ ...c, owners: left });
    }
    if (fresh.size) {
      // The full compile's order: base chains first, then by name.
      for (const c of fresh.values()) chains.push(c);
      chains.sort(chainOrder);
    }

    // Sets: those some rule still names, and the new ones (peers of the changed policies).
    const setRefs = new Map<string, number>();
    const prefixes = new Set<string>();
    for (const c of chains) {
      for (const r of c.rules) {
        for (const n of setsOfRule(r)) setRefs.set(n, (setRefs.get(n) ?? 0) + 1);
        if (r.log) prefixes.add(r.log);
      }
    }
    const had = new Set(plan.sets.map((x) => x.name));
    let sets = plan.sets.filter((x) => FIXED_SETS.has(x.name) || setRefs.has(x.name));
    const newSets = small.sets.filter((x) => !FIXED_SETS.has(x.name) && !had.has(x.name) && setRefs.has(x.name));
    if (newSets.length) {
      const peerSets = sets.filter((x) => !FIXED_SETS.has(x.name)).concat(newSets);
      peerSets.sort((x, y) => x.name.localeCompare(y.name));
      sets = sets.filter((x) => FIXED_SETS.has(x.name)).concat(peerSets);
    }

    // Verdict maps: the affected containers' elements are the small plan's, in the place of their
    // old ones (the order of a full compile, which keeps the next plan diff's common head and tail
    // long); a container new to a map comes last.
    const capacities = capacitiesOf(plan);
    const smallMaps = new Map(small.maps.map((m) => [m.name, m.elements]));
    const maps = plan.maps.map((m) => {
      const mine = new Map<string, MapElement[]>();
      for (const el of smallMaps.get(m.name) ?? []) {
        // The small plan's gateway elements (`net:` owners) are the plan's already.
        if (!owners.has(el.owner)) continue;
        const list = mine.get(el.owner);
        if (list) list.push(el);
        else mine.set(el.owner, [el]);
      }
      let touched = mine.size > 0;
      const elements: MapElement[] = [];
      for (const el of m.elements) {
        if (!owners.has(el.owner)) {
          elements.push(el);
          continue;
        }
        touched = true;
        const repl = mine.get(el.owner);
        if (repl) {
          for (const x of repl) elements.push(x);
          mine.delete(el.owner);
        }
      }
      if (!touched) return m;
      for (const rest of mine.values()) for (const x of rest) elements.push(x);
      return { ...m, elements, size: keptCapacity(capacities, m.name, elements.length, mapCapacity(elements.length)) };
    });

    const logPrefixes: RulesetPlan['logPrefixes'] = {};
    for (const from of [plan.logPrefixes, small.logPrefixes]) for (const [p, v] of Object.entries(from)) if (prefixes.has(p) && !(p in logPrefixes)) logPrefixes[p] = v;
    // The warnings that depend on policies: those of the affected containers are the small plan's.
    const displays = [...affected].map((i) => endpointDisplayName(rw.endpoints[i]));
    const policyWarnings = new Set(displays.flatMap((d) => Object.values(POLICY_WARNINGS).map((w) => w(d))));
    const warnings = plan.warnings.filter((w) => !policyWarnings.has(w)).concat(small.warnings.filter((w) => policyWarnings.has(w)));
    const next: RulesetPlan = { ...plan, sets, maps, chains, logPrefixes, warnings };

    // The index follows (addresses and their owners are the world's, unchanged).
    for (const id of ids) ix.idChains.delete(id);
    for (const c of small.chains) if (!c.hook) for (const o of c.owners) addTo(ix.idChains, o, c.name);
    for (const o of owners) ix.ownerMaps.delete(o);
    for (const m of small.maps) for (const el of m.elements) if (owners.has(el.owner)) addTo(ix.ownerMaps, el.owner, m.name);
    for (const x of newSets) for (const el of x.elements) if (el.owner.startsWith('ctr:')) addTo(ix.ownerSets, el.owner, x.name);
    ix.chainNames = new Set(chains.map((c) => c.name));
    ix.chainPos = chainPositions(chains);
    ix.setRefs = setRefs;
    this.prev = { ...prev, world, policies, policyKey, plan: next, index: ix };
    return { plan: next, reason: '' };
  }

  /** Containers added and removed, by id (the lists' orders differ). */
  private changesById(prev: Prev, world: World): { added: Endpoint[]; removed: Endpoint[] } {
    const before = new Map(prev.world.endpoints.map((e) => [e.id, e]));
    const now = new Map(world.endpoints.map((e) => [e.id, e]));
    return { added: world.endpoints.filter((e) => before.get(e.id) !== e), removed: prev.world.endpoints.filter((e) => now.get(e.id) !== e) };
  }

  private remove(plan: RulesetPlan, ix: PlanIndex, gone: Endpoint[], added: Endpoint[]): { plan?: RulesetPlan; reason: string } {
    if (plan.warnings.some((w) => /claimed by/.test(w))) return { reason: 'an address is claimed twice' };
    const owners = new Set(gone.map(ownerOf));
    const ids = new Set(gone.map((e) => e.id));
    // Its addresses, from the plan (elements carry their owner).
    const addrs = new Set<string>();
    for (const o of owners) for (const a of ix.ownerAddrs.get(o) ?? []) addrs.add(a);
    // The last address of a family going: the full compile leaves that family's rules out of the
    // per-identity chains (CompileOptions.families), which renames them.
    for (const f of new Set([...addrs].map((a) => (a.includes(':') ? 6 : 4)))) {
      let left = false;
      for (const a of ix.addrOwner.keys()) {
        if ((a.includes(':') ? 6 : 4) === f && !addrs.has(a)) {
          left = true;
          break;
        }
      }
      if (!left) return { reason: `the last IPv${f} address goes` };
    }
    // Another container now on one of those addresses: a full compile decides who owns it. (A new
    // version of the same container, e.g. after `start`, is removed here and added back below.) Only
    // a container new to this world can hold one: every address had a single owner.
    for (const e of added) {
      if (ids.has(e.id)) continue;
      for (const a of e.attachments) for (const ip of [a.ipv4, a.ipv6]) if (ip && addrs.has(canon(ip))) return { reason: `address ${ip} reused` };
    }
    const touched = new Set<string>();
    for (const id of ids) for (const n of ix.idChains.get(id) ?? []) touched.add(n);
    const dropped: PlanChain[] = [];
    const chains: PlanChain[] = [];
    for (const c of plan.chains) {
      if (!touched.has(c.name)) {
        chains.push(c);
        continue;
      }
      const left = c.owners.filter((o) => !ids.has(o));
      if (left.length || c.hook) chains.push({ ...c, owners: left });
      else dropped.push(c);
    }
    if (dropped.length) ix.chainPos = chainPositions(chains);
    for (const c of dropped) {
      ix.chainNames.delete(c.name);
      for (const r of c.rules) for (const n of setsOfRule(r)) ix.setRefs.set(n, (ix.setRefs.get(n) ?? 1) - 1);
    }
    const setNames = new Set<string>();
    const mapNames = new Set<string>();
    for (const o of owners) {
      for (const n of ix.ownerSets.get(o) ?? []) setNames.add(n);
      for (const n of ix.ownerMaps.get(o) ?? []) mapNames.add(n);
    }
    const sets: AddressSet[] = [];
    for (const s of plan.sets) {
      if (!FIXED_SETS.has(s.name) && !(ix.setRefs.get(s.name) ?? 0)) continue;
      sets.push(setNames.has(s.name) ? { ...s, elements: s.elements.filter((el) => !owners.has(el.owner)) } : s);
    }
    const maps: VerdictMap[] = plan.maps.map((m) => (mapNames.has(m.name) ? { ...m, elements: m.elements.filter((el) => !owners.has(el.owner)) } : m));
    let logPrefixes = plan.logPrefixes;
    if (dropped.length) {
      const prefixes = new Set<string>();
      for (const c of chains) for (const r of c.rules) if (r.log) prefixes.add(r.log);
      logPrefixes = Object.fromEntries(Object.entries(plan.logPrefixes).filter(([p]) => prefixes.has(p)));
    }
    const names = gone.map(endpointDisplayName);
    const warnings = plan.warnings.filter((w) => !names.some((n) => w.includes(n)));
    for (const o of owners) {
      for (const a of ix.ownerAddrs.get(o) ?? []) if (ix.addrOwner.get(a) === o) ix.addrOwner.delete(a);
      ix.ownerAddrs.delete(o);
      ix.ownerSets.delete(o);
      ix.ownerMaps.delete(o);
    }
    for (const id of ids) ix.idChains.delete(id);
    return { plan: { ...plan, sets, maps, chains, logPrefixes, warnings }, reason: '' };
  }

  private add(plan: RulesetPlan, ix: PlanIndex, fresh: Endpoint[], world: World, policies: PolicySet, families: Family[]): { plan?: RulesetPlan; reason: string } {
    // The new containers compiled alone (with the whole world's families, the networks they are on,
    // and the policies whose scope can include their namespaces): their chains, addresses and map
    // elements. Their membership of the plan's peer sets is decided below, set by set.
    const namespaces = new Set(fresh.map((e) => e.namespace));
    const attached = new Set(fresh.flatMap((e) => e.attachments.map((a) => a.network)));
    const mini: World = { ...world, endpoints: fresh, networks: world.networks.filter((n) => attached.has(n.name)) };
    const ownGroupLabels = fresh.some((e) => Object.keys(e.labels).some((k) => k.startsWith(SYNTHETIC.groupPrefix)));
    const rw = resolveWorld(mini, relevantPolicies(policies, namespaces, ownGroupLabels));
    const input = enforcementInputFrom(rw, this.options);
    const freshIds = new Set(fresh.map((e) => e.id));
    const freshInput = input.endpoints.filter((e) => freshIds.has(e.id));
    if (freshInput.length !== fresh.length) return { reason: 'a new container is not enforced the plain way' };
    // Its addresses on unmanaged networks fill peer sets too, owned by whichever container comes first
    // in the world: a full compile decides.
    for (const id of input.unmanagedOwners?.values() ?? []) if (freshIds.has(id)) return { reason: 'a new container on an unmanaged network' };
    if (endpointFamilies(freshInput).some((f) => !families.includes(f))) return { reason: 'a new address family' };
    const small = compile(input, { ...this.options, families });

    const freshAddrs = new Map<string, string>(); // address -> owner
    for (const e of freshInput) {
      for (const a of e.addresses) {
        if (ix.addrOwner.has(a) || freshAddrs.has(a)) return { reason: `address ${a} already claimed` };
        freshAddrs.set(a, ownerOf(e));
      }
    }
    if (small.warnings.some((w) => /claimed by/.test(w))) return { reason: 'address claimed twice' };

    // Its chains: chains of the plan (a known identity), or new ones (a new identity) whose rules name
    // only sets the plan has: their members are the whole world's, and the new containers join them
    // below. A rule naming a set the plan lacks needs its members from the whole world: a full compile.
    const chainOwners = new Map<string, string[]>();
    const newChains: PlanChain[] = [];
    for (const c of small.chains) {
      if (c.hook) continue;
      const mine = c.owners.filter((o) => freshIds.has(o));
      if (!mine.length) continue;
      if (ix.chainNames.has(c.name)) {
        chainOwners.set(c.name, mine);
        continue;
      }
      for (const r of c.rules) for (const n of setsOfRule(r)) if (!FIXED_SETS.has(n) && !((ix.setRefs.get(n) ?? 0) > 0)) return { reason: `new identity (chain ${c.name}) with a new set` };
      newChains.push({ ...c, owners: mine });
    }
    for (const m of small.maps) {
      for (const el of m.elements) {
        if (freshAddrs.has(el.key) && el.chain !== '' && !ix.chainNames.has(el.chain) && !newChains.some((c) => c.name === el.chain)) return { reason: `new identity (chain ${el.chain})` };
      }
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
        if (!peers.some((p) => p.kind === 'endpoints' && scopeMayInclude(p.selector, namespaces) && rw.members(p.selector)[i] === 1)) return;
        const r = freshInput.find((x) => x.id === e.id)!;
        for (const a of r.addresses) if ((a.includes(':') ? 6 : 4) === s.family && !coveredByCidr(s, a)) add.push({ value: a, owner: freshAddrs.get(a)! });
      });
      if (add.length) additions.set(s.name, add);
    }
    // concat, not spread: a 10,000-element copy is one block copy. A set that would overflow its
    // kernel capacity gets the capacity a full compile gives it (the plan diff replaces the kernel's
    // set and reloads the chains that use it: incremental.ts).
    const sets = plan.sets.map((s) => {
      const add = additions.get(s.name);
      if (!add) return s;
      const elements = s.elements.concat(add);
      return s.size !== undefined && elements.length > s.size ? { ...s, elements, size: setCapacity(elements.length) } : { ...s, elements };
    });
    const smallMaps = new Map(small.maps.map((m) => [m.name, m]));
    const mapAdds = new Map<string, MapElement[]>();
    const maps = plan.maps.map((m) => {
      const extra = (smallMaps.get(m.name)?.elements ?? []).filter((el) => freshAddrs.has(el.key));
      if (!extra.length) return m;
      mapAdds.set(m.name, extra);
      // A map that would overflow its kernel capacity gets the one a full compile gives it (the plan
      // diff replaces the kernel's map and reloads the base chains that use it: incremental.ts).
      const elements = m.elements.concat(extra);
      return m.size !== undefined && elements.length > m.size ? { ...m, elements, size: mapCapacity(elements.length) } : { ...m, elements };
    });
    // The new containers' chains, found by position (the index keeps them) instead of a pass over all.
    const chains = plan.chains.slice();
    for (const [name, ids] of chainOwners) {
      let i = ix.chainPos.get(name);
      if (i === undefined || chains[i]?.name !== name) i = (ix.chainPos = chainPositions(chains)).get(name)!;
      chains[i] = { ...chains[i], owners: chains[i].owners.concat(ids) };
    }
    let logPrefixes = plan.logPrefixes;
    if (newChains.length) {
      for (const c of newChains) chains.push(c);
      chains.sort(chainOrder);
      ix.chainPos = chainPositions(chains);
      for (const c of newChains) {
        ix.chainNames.add(c.name);
        for (const id of c.owners) addTo(ix.idChains, id, c.name);
        for (const r of c.rules) {
          for (const n of setsOfRule(r)) ix.setRefs.set(n, (ix.setRefs.get(n) ?? 0) + 1);
          if (r.log && !(r.log in logPrefixes)) {
            if (logPrefixes === plan.logPrefixes) logPrefixes = { ...plan.logPrefixes };
            logPrefixes[r.log] = small.logPrefixes[r.log];
          }
        }
      }
    }
    const names = fresh.map(endpointDisplayName);
    const warnings = [...plan.warnings, ...small.warnings.filter((w) => names.some((n) => w.includes(n)) && !plan.warnings.includes(w))];

    for (const [name, els] of mapAdds) if (isIngressMap(name)) for (const el of els) noteAddress(ix, el.key, el.owner);
    for (const [name, els] of additions) for (const el of els) addTo(ix.ownerSets, el.owner, name);
    for (const [name, els] of mapAdds) for (const el of els) addTo(ix.ownerMaps, el.owner, name);
    for (const [name, ids] of chainOwners) for (const id of ids) addTo(ix.idChains, id, name);
    return { plan: { ...plan, sets, maps, chains, logPrefixes, warnings }, reason: '' };
  }
}

// EnforcementInput -> RulesetPlan (backend neutral). Endpoints with the same rules share one chain
// (an identity), so the rule count grows with distinct identities, not with containers; addresses
// reach their chain through verdict maps, so the per-packet cost stays flat as endpoints grow.
import { hash as digest } from 'node:crypto';
import { ConnSet, MAX_PORT, MIN_PORT } from '../../model/connset.js';
import { parseCidr, type Family } from '../../model/address.js';
import { canonicalIPv4Prefix, canonicalIPv4Value, ipv4Text } from './ipv4.js';
import { containerOwner, MAP, mapCapacity, SET, setCapacity, type AddressSet, type L4, type MapElement, type Match, type PlanChain, type PlanRule, type RulesetPlan, type SetElement, type VerdictMap } from '../plan-model.js';
import { assertNflogGroup, elementText, safeComment, safeLogPrefix } from '../validate.js';
import type { Clause, DirectionPolicy, EnforcementInput, PeerAddresses, PublishedGuard, ResolvedEndpoint } from './resolved.js';

export interface CompileOptions {
  /** NFLOG group for drops (default 100). */
  nflogGroup?: number;
  /**
   * Address families of the rules in per-identity chains (default: those in which some endpoint has
   * an address). The incremental compiler (session.ts) passes the whole world's families when it
   * compiles a part of it.
   */
  families?: Family[];
  /**
   * The capacities (`size`) of the sets and maps the kernel holds, by name: the compile session
   * passes those of its previous plan. A set or map keeps its capacity while its elements fit and it
   * is not more than four times what a fresh compile would give, so that a full compile (a policy
   * change) does not resize sets that container churn filled, which the kernel cannot do in place:
   * the plan diff would then replace the whole table.
   */
  capacities?: ReadonlyMap<string, number>;
  /**
   * The owner comment of each known address of the whole world (`ctr:<id>` of the first endpoint with
   * it on a managed network), when the input holds only some endpoints: the compile session's policy
   * delta passes the previous plan's, so that peer set elements of the other endpoints carry their
   * owners. (Addresses on unmanaged networks come from the input's `unmanagedOwners` either way.)
   */
  knownAddressOwner?: (address: string) => string | undefined;
}

/** A set's or map's capacity: the one the kernel has while it fits and is not far too large, else `fresh`. */
export function keptCapacity(capacities: ReadonlyMap<string, number> | undefined, name: string, elements: number, fresh: number): number {
  const had = capacities?.get(name);
  return had !== undefined && elements <= had && had <= 4 * fresh ? had : fresh;
}

export const DEFAULT_NFLOG_GROUP = 100;
const FAMILIES: Family[] = [4, 6];

function hash(text: string, n = 10): string {
  // One-shot hash (Node >= 20.12): the same digest without a Hash object per chain and set name.
  return digest('sha256', text, 'hex').slice(0, n);
}

interface Range {
  family: Family;
  start: bigint;
  end: bigint;
  text: string;
}
const rangeMemo = new Map<string, Range | null>();

/** A CIDR (or address) as an inclusive numeric range; memoised, since the same values come back often. */
function rangeOf(v: string): Range | null {
  let r = rangeMemo.get(v);
  if (r !== undefined) return r;
  r = canonicalIPv4Range(v) ?? parsedRange(v);
  if (rangeMemo.size > 500_000) rangeMemo.clear();
  rangeMemo.set(v, r);
  return r;
}

function parsedRange(v: string): Range | null {
  const c = parseCidr(v);
  if (!c) return null;
  let n = 0n;
  for (const byte of c.addr.toByteArray()) n = (n << 8n) | BigInt(byte);
  const bits = c.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - c.prefix);
  const start = (n / size) * size;
  return { family: c.family, start, end: start + size - 1n, text: elementText(c.text).text };
}

/**
 * rangeOf for canonical IPv4 text (`a.b.c.d`, `a.b.c.d/p`) without ipaddr.js: the same range and
 * element text as parseCidr and elementText give (host bits cleared, `/32` dropped). Undefined
 * for anything else.
 */
function canonicalIPv4Range(v: string): Range | undefined {
  const slash = v.indexOf('/');
  const n = canonicalIPv4Value(v, 0, slash < 0 ? v.length : slash);
  if (n < 0) return undefined;
  const prefix = slash < 0 ? 32 : canonicalIPv4Prefix(v, slash + 1);
  if (prefix < 0) return undefined;
  const size = 2 ** (32 - prefix);
  const start = Math.floor(n / size) * size;
  // The element text: a host without /32, else the network address and prefix (the text as
  // written when it has no host bits: no new string).
  const text = slash < 0 ? v : prefix === 32 ? v.slice(0, slash) : start === n ? v : `${ipv4Text(start)}/${prefix}`;
  return { family: 4, start: BigInt(start), end: BigInt(start + size - 1), text };
}

/**
 * Drops CIDRs contained in another one and duplicates, so interval sets never overlap. CIDRs are
 * nested or disjoint, so one sweep over the ranges sorted by start (widest first) is enough. The
 * output is in address order (deterministic).
 */
export function disjointElements(values: string[]): string[] {
  const ranges: Range[] = [];
  for (const v of values) {
    const r = rangeOf(v);
    if (r) ranges.push(r);
  }
  ranges.sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : a.end > b.end ? -1 : a.end < b.end ? 1 : 0));
  const kept: Range[] = [];
  for (const r of ranges) {
    const last = kept[kept.length - 1];
    if (last && last.family === r.family && r.start >= last.start && r.end <= last.end) continue;
    kept.push(r);
  }
  return kept.map((r) => r.text);
}

/** How addresses are matched in a rule: a named set, or one CIDR written into the rule. */
type AddressMatch = { set: string } | { cidr: string };

interface PeerEntry {
  cidrs: Partial<Record<Family, string[]>>;
  /** How the peer's addresses of a family are matched (null: not at all). */
  matches: Partial<Record<Family, AddressMatch | null>>;
}

class Builder {
  readonly sets = new Map<string, AddressSet>();
  readonly chains = new Map<string, PlanChain>();
  readonly logPrefixes: RulesetPlan['logPrefixes'] = {};
  private readonly byKey = new Map<string, string>();
  private readonly byValues = new WeakMap<string[], Map<string, string>>();
  constructor(
    /** The owner comment of an endpoint address (the first endpoint with it). */
    readonly ownerOfAddress: (address: string) => string | undefined,
    readonly group: number,
    /**
     * Families in which some endpoint has an address. Per-identity chains are reached only through
     * the verdict maps, keyed by endpoint addresses, so a rule of another family could never match:
     * it is left out (on an IPv4-only host that halves the rules and sets).
     */
    readonly families: Family[] = FAMILIES,
  ) {}

  /**
   * A named set for these addresses. With a `key` (the peer's identity in the policy) the name comes
   * from the key, so membership changes touch elements only and chain names stay stable; without one,
   * from the content.
   */
  addressSet(values: string[], family: Family, purpose: string, fallbackOwner: string, key?: string, peers?: string): string {
    // The same peer comes back for every endpoint a policy selects: answer from the memo first.
    const memoKey = key !== undefined ? `${family}|${purpose}|${key}` : undefined;
    const hit = memoKey !== undefined ? this.byKey.get(memoKey) : this.byValues.get(values)?.get(`${family}|${purpose}`);
    if (hit) return hit;
    const elems = disjointElements(values.filter((v) => (v.includes(':') ? 6 : 4) === family));
    const name = `p${hash(key !== undefined ? `key|${family}|${purpose}|${key}` : `${family}|${elems.join(',')}`)}_${family}`;
    if (memoKey !== undefined) this.byKey.set(memoKey, name);
    else {
      const m = this.byValues.get(values) ?? new Map<string, string>();
      m.set(`${family}|${purpose}`, name);
      this.byValues.set(values, m);
    }
    if (!this.sets.has(name)) {
      const elements: SetElement[] = elems.map((value) => ({ value, owner: this.ownerOfAddress(value) ?? fallbackOwner }));
      this.sets.set(name, peers !== undefined ? { name, family, elements, purpose, peers } : { name, family, elements, purpose });
    }
    return name;
  }

  // PeerAddresses objects are shared by every clause with the same peers (compile/input.ts), and the
  // same peer comes back for many identities: its per-family addresses and set names are worked out
  // once per peer object instead of per clause (a filtered copy of a large peer's addresses per clause
  // was much of the garbage of a compile). The names are those addressSet gives on the first call.
  private readonly peerMemo = new Map<PeerAddresses, PeerEntry>();
  private readonly exceptMemo = new Map<PeerAddresses['cidrsExcept'][number], { cidr?: string; except?: AddressMatch | null }>();

  private peerEntry(peer: PeerAddresses): PeerEntry {
    let m = this.peerMemo.get(peer);
    if (!m) this.peerMemo.set(peer, (m = { cidrs: {}, matches: {} }));
    return m;
  }

  /** The peer's CIDRs of one family (memoised per peer object). */
  peerCidrs(peer: PeerAddresses, family: Family): string[] {
    const m = this.peerEntry(peer);
    return (m.cidrs[family] ??= peer.cidrs.filter((c) => (c.includes(':') ? 6 : 4) === family));
  }

  /**
   * How a peer's fixed CIDRs of one family are matched (memoised per peer object): a peer chosen by
   * selectors always has its set (possibly empty: the first member of a family then adds an element,
   * not a rule, and chain names stay stable); fixed CIDRs that come down to one CIDR are written into
   * the rule (one comparison instead of a set lookup, one set fewer for the kernel to create and
   * find by name), more than one have a set; none, nothing (undefined).
   */
  peerMatch(peer: PeerAddresses, family: Family, owner: string): AddressMatch | undefined {
    const m = this.peerEntry(peer);
    let v = m.matches[family];
    if (v === undefined) {
      const cidrs = this.peerCidrs(peer, family);
      const one = !peer.dynamic ? disjointElements(cidrs) : [];
      v = m.matches[family] =
        one.length === 1 ? { cidr: one[0] } : peer.dynamic || cidrs.length ? { set: this.addressSet(cidrs, family, 'peer', owner, peer.key, peer.dynamic ? peer.key : undefined) } : null;
    }
    return v ?? undefined;
  }

  /** A CIDR with exceptions: the CIDR, and its exceptions of the family as one CIDR or a set (or none). */
  exceptMatch(peer: PeerAddresses, ce: PeerAddresses['cidrsExcept'][number], family: Family, owner: string): { cidr: string; except?: AddressMatch } {
    let m = this.exceptMemo.get(ce);
    if (!m) this.exceptMemo.set(ce, (m = {}));
    const k = peer.key !== undefined ? `${peer.key}|${ce.cidr}` : undefined;
    m.cidr ??= disjointElements([ce.cidr])[0];
    if (m.except === undefined) {
      const ex = ce.except.filter((c) => (c.includes(':') ? 6 : 4) === family);
      const one = disjointElements(ex);
      m.except = one.length === 1 ? { cidr: one[0] } : ex.length ? { set: this.addressSet(ex, family, 'peer except', owner, k && `${k}|except`) } : null;
    }
    return m.except === null ? { cidr: m.cidr } : { cidr: m.cidr, except: m.except };
  }

  // The rules of a clause depend on its peer, its connections, its policy, the direction and the
  // action only, and the same clause comes back in every identity its policy selects: they are made
  // once per compile and shared by those chains (nothing changes a plan's rules in place).
  private readonly clauseMemo = new Map<PeerAddresses, Map<ConnSet, Map<string, ClauseRules>>>();

  clause(c: Clause, direction: 'ingress' | 'egress', action: 'allow' | 'deny', make: () => ClauseRules): ClauseRules {
    let byConns = this.clauseMemo.get(c.peer);
    if (!byConns) this.clauseMemo.set(c.peer, (byConns = new Map()));
    let byRest = byConns.get(c.conns);
    if (!byRest) byConns.set(c.conns, (byRest = new Map()));
    const k = `${direction}|${action}|${c.policyId}`;
    let cr = byRest.get(k);
    if (!cr) byRest.set(k, (cr = make()));
    return cr;
  }

  private readonly prefixMemo = new Map<string, string>();

  prefix(kind: string, dir: string, policy: string, direction: RulesetPlan['logPrefixes'][string]['direction']): string {
    // Memoised: the same prefix comes back for every identity a policy applies to.
    const text = `moat:${kind}:${dir}:${policy}`;
    let p = this.prefixMemo.get(text);
    if (p === undefined) this.prefixMemo.set(text, (p = safeLogPrefix(text)));
    this.logPrefixes[p] ??= { policy, direction };
    return p;
  }
}

/** Address alternatives of a peer on side `dir` (each alternative is a conjunction of matches). */
function peerAlternatives(b: Builder, peer: PeerAddresses, dir: 'src' | 'dst', owner: string): Match[][] {
  if (peer.any) return [[]];
  const out: Match[][] = [];
  if (peer.host) out.push([{ kind: 'local', dir }]);
  if (peer.internet) {
    for (const f of b.families) out.push([{ kind: 'set', dir, family: f, set: SET.notInternet(f), negate: true }, { kind: 'local', dir, negate: true }]);
  }
  const addr = (m: AddressMatch, family: Family, negate?: true): Match =>
    'set' in m ? { kind: 'set', dir, family, set: m.set, ...(negate && { negate }) } : { kind: 'cidr', dir, family, cidr: m.cidr, ...(negate && { negate }) };
  for (const f of b.families) {
    const m = b.peerMatch(peer, f, owner);
    if (m) out.push([addr(m, f)]);
  }
  for (const ce of peer.cidrsExcept) {
    const f: Family = ce.cidr.includes(':') ? 6 : 4;
    if (!b.families.includes(f)) continue;
    const m = b.exceptMatch(peer, ce, f, owner);
    const alt: Match[] = [addr({ cidr: m.cidr }, f)];
    if (m.except) alt.push(addr(m.except, f, true));
    out.push(alt);
  }
  return out;
}

function portAlternatives(conns: ConnSet): Match[][] {
  if (conns.isAll) return [[]];
  const out: Match[][] = [];
  for (const [proto, ranges] of [['tcp', conns.tcp], ['udp', conns.udp], ['sctp', conns.sctp]] as const) {
    if (ranges.length === 0) continue;
    const full = ranges.length === 1 && ranges[0][0] === MIN_PORT && ranges[0][1] === MAX_PORT;
    out.push([full ? { kind: 'l4', proto } : { kind: 'l4', proto, ports: ranges }]);
  }
  if (conns.other) out.push([{ kind: 'l4other' }]);
  return out;
}

/**
 * Rules of one clause, their JSON texts (the array's items, without brackets; '' when none) and the
 * JSON text of each rule's matches (what makes a later rule with the same matches unreachable).
 */
interface ClauseRules {
  rules: PlanRule[];
  json: string;
  jsons: string[];
  keys: string[];
}

/** The JSON text of a rule's matches: its JSON text up to the verdict (`matches` is written first). */
function matchesKey(json: string): string {
  return json.slice(0, json.indexOf(',"verdict":'));
}

function clauseRules(b: Builder, c: Clause, dir: 'src' | 'dst', verdict: PlanRule['verdict'], log: string | undefined): ClauseRules {
  const comment = safeComment(`policy:${c.policyId}`);
  const rules: PlanRule[] = [];
  for (const a of peerAlternatives(b, c.peer, dir, comment)) {
    for (const p of portAlternatives(c.conns)) {
      rules.push({ matches: [...a, ...p], verdict, counter: verdict.kind === 'drop', log, comment });
    }
  }
  const jsons = rules.map((r) => JSON.stringify(r));
  return { rules, json: jsons.join(','), jsons, keys: jsons.map(matchesKey) };
}

/** A chain's rules and the JSON text of the list (its name is a hash of that text). */
interface ChainRules {
  rules: PlanRule[];
  json: string;
}

const TERMINAL = new Set<PlanRule['verdict']['kind']>(['accept', 'drop', 'return']);

function directionRules(b: Builder, d: DirectionPolicy, direction: 'ingress' | 'egress', stance: 'allow' | 'deny', guards: PublishedGuard[]): ChainRules {
  const dir = direction === 'ingress' ? 'src' : 'dst';
  const short = direction === 'ingress' ? 'in' : 'eg';
  const rules: PlanRule[] = [];
  // JSON.stringify of a list is its items' texts joined by commas in brackets: the text of a clause
  // seen in another chain is reused, not written again.
  const parts: string[] = [];
  // The matches of the chain's rules so far with a final verdict. A rule with the same matches as one
  // of them can never be reached (two policies with the same peers and ports, or the same deny): it is
  // left out, so the kernel neither loads it nor walks it. Its verdict and log prefix never applied.
  const decided = new Set<string>();
  const dead = (r: PlanRule, key: string): boolean => {
    if (decided.has(key)) return true;
    if (TERMINAL.has(r.verdict.kind)) decided.add(key);
    return false;
  };
  const addClause = (cr: ClauseRules) => {
    let all = true;
    const live = cr.rules.map((r, i) => {
      const ok = !dead(r, cr.keys[i]);
      all &&= ok;
      return ok;
    });
    if (all) {
      for (const r of cr.rules) rules.push(r);
      if (cr.json) parts.push(cr.json);
      return;
    }
    cr.rules.forEach((r, i) => {
      if (!live[i]) return;
      rules.push(r);
      parts.push(cr.jsons[i]);
    });
  };
  const addRule = (r: PlanRule) => {
    const json = JSON.stringify(r);
    if (dead(r, matchesKey(json))) return;
    rules.push(r);
    parts.push(json);
  };
  for (const c of d.denies) addClause(b.clause(c, direction, 'deny', () => clauseRules(b, c, dir, { kind: 'drop' }, b.prefix('deny', short, c.policyId, direction))));
  for (const g of guards) {
    const proto = g.protocol.toLowerCase() as L4;
    const pub: Match = { kind: 'published', proto, hostPort: g.hostPort };
    const comment = safeComment(`allowlist:${g.allowlistId}`);
    for (const a of peerAlternatives(b, g.sources, 'src', comment)) addRule({ matches: [pub, ...a], verdict: { kind: 'return' }, comment });
    addRule({ matches: [pub], verdict: { kind: 'drop' }, counter: true, log: b.prefix('pub', short, g.allowlistId, 'published'), comment });
  }
  if (d.isolated) {
    for (const c of d.allows) addClause(b.clause(c, direction, 'allow', () => clauseRules(b, c, dir, { kind: 'return' }, undefined)));
    const by = d.isolatedBy.join(',');
    addRule({ matches: [], verdict: { kind: 'drop' }, counter: true, log: b.prefix('iso', short, d.isolatedBy[0] ?? '', direction), comment: safeComment(`isolated-by:${by}`) });
  } else if (stance === 'deny') {
    addRule({ matches: [], verdict: { kind: 'drop' }, counter: true, log: b.prefix('default', short, 'default-deny', direction), comment: 'default-stance:deny' });
  }
  return { rules, json: `[${parts.join(',')}]` };
}

/** The families in which some endpoint has an address. */
export function endpointFamilies(endpoints: { addresses: string[] }[]): Family[] {
  return FAMILIES.filter((f) => endpoints.some((e) => e.addresses.some((a) => (a.includes(':') ? 6 : 4) === f)));
}

export function compile(input: EnforcementInput, options: CompileOptions = {}): RulesetPlan {
  const group = assertNflogGroup(options.nflogGroup ?? DEFAULT_NFLOG_GROUP);
  const warnings = [...input.warnings];
  // Each endpoint's owner comment, made once (it is on every element the endpoint contributes).
  const owners = input.endpoints.map((e) => containerOwner(e.id));
  // The first endpoint (index) with each address: it owns the address's elements and its rules apply.
  const firstClaim = new Map<string, number>();
  for (let i = 0; i < input.endpoints.length; i++) {
    for (const a of input.endpoints[i].addresses) if (!firstClaim.has(a)) firstClaim.set(a, i);
  }
  // Addresses on unmanaged networks are their container's too (they fill peer sets, not the verdict maps).
  const unmanagedOwner = (a: string): string | undefined => {
    const id = input.unmanagedOwners?.get(a);
    return id === undefined ? undefined : containerOwner(id);
  };
  const knownOwner =
    options.knownAddressOwner ??
    ((a: string): string | undefined => {
      const i = firstClaim.get(a);
      return i === undefined ? undefined : owners[i];
    });
  const ownerOfAddress = (a: string): string | undefined => knownOwner(a) ?? unmanagedOwner(a);
  const families = options.families ?? endpointFamilies(input.endpoints);
  const b = new Builder(ownerOfAddress, group, families);

  const maps: Record<string, VerdictMap> = {};
  for (const f of FAMILIES) {
    maps[MAP.ingress(f)] = { name: MAP.ingress(f), family: f, elements: [] };
    maps[MAP.egress(f)] = { name: MAP.egress(f), family: f, elements: [] };
  }
  const ingressMap: Record<Family, MapElement[]> = { 4: maps[MAP.ingress(4)].elements, 6: maps[MAP.ingress(6)].elements };
  const egressMap: Record<Family, MapElement[]> = { 4: maps[MAP.egress(4)].elements, 6: maps[MAP.egress(6)].elements };
  const chainMemo = new WeakMap<DirectionPolicy, { rules: PlanRule[]; name: string }>();

  /** The chain of an endpoint in one direction ('' when it has no rules there). */
  const chainOf = (e: ResolvedEndpoint, direction: 'ingress' | 'egress'): string => {
    // Endpoints of one identity share their DirectionPolicy object (compile/input.ts): its rules
    // and chain name are worked out once, unless published-port guards make the endpoint unique.
    const guards = direction === 'ingress' ? e.published : [];
    let memo = guards.length === 0 ? chainMemo.get(e[direction]) : undefined;
    if (!memo) {
      const { rules, json } = directionRules(b, e[direction], direction, input.defaultStance, guards);
      memo = { rules, name: rules.length ? `${direction === 'ingress' ? 'in' : 'eg'}_${hash(json)}` : '' };
      if (guards.length === 0) chainMemo.set(e[direction], memo);
    }
    const { rules, name } = memo;
    if (rules.length === 0) return '';
    const existing = b.chains.get(name);
    if (existing) existing.owners.push(e.id);
    else b.chains.set(name, { name, rules, owners: [e.id] });
    return name;
  };

  for (let i = 0; i < input.endpoints.length; i++) {
    const e = input.endpoints[i];
    const owner = owners[i];
    const ingress = chainOf(e, 'ingress');
    const egress = chainOf(e, 'egress');
    for (let k = 0; k < e.addresses.length; k++) {
      const addr = e.addresses[k];
      // Claimed before: by an earlier endpoint, or earlier in this endpoint's own list.
      const first = firstClaim.get(addr)!;
      if (first !== i || e.addresses.indexOf(addr) !== k) {
        warnings.push(`address ${addr} is claimed by ${input.endpoints[first].display} and ${e.display}; the first one's rules apply`);
        continue;
      }
      // Every known address is in both maps of its family: `''` (no rules in that direction) lets
      // the packet pass, and an address in neither is one the fail-closed rule after the maps sees.
      const f: Family = addr.includes(':') ? 6 : 4;
      ingressMap[f].push({ key: addr, chain: ingress, owner });
      egressMap[f].push({ key: addr, chain: egress, owner });
    }
  }

  // The bridges' gateway addresses are the host's: known (in both maps, without rules), never
  // fail-closed.
  const gateways = new Set<string>();
  for (const n of input.networks) {
    if (!n.managed) continue;
    for (const g of n.gateways) {
      if (firstClaim.has(g) || gateways.has(g)) continue;
      gateways.add(g);
      const f: Family = g.includes(':') ? 6 : 4;
      const owner = safeComment(`net:${n.name}`);
      ingressMap[f].push({ key: g, chain: '', owner });
      egressMap[f].push({ key: g, chain: '', owner });
    }
  }
  const sets: AddressSet[] = [];
  for (const f of FAMILIES) {
    const fam = (c: string) => (c.includes(':') ? 6 : 4) === f;
    const managed = input.networks.filter((n) => n.managed).flatMap((n) => n.subnets.filter(fam).map((s) => ({ value: s, owner: safeComment(`net:${n.name}`) })));
    const notInet = [
      ...input.networks.flatMap((n) => n.subnets.filter(fam).map((s) => ({ value: s, owner: safeComment(`net:${n.name}`) }))),
      ...input.internalRanges.filter(fam).map((s) => ({ value: s, owner: 'range:internal' })),
    ];
    const keep = (els: SetElement[]): SetElement[] => {
      const vals = disjointElements(els.map((x) => x.value));
      // The first element with each element text (a map: a search per value was quadratic).
      const first = new Map<string, SetElement>();
      for (const x of els) {
        const t = elementText(x.value).text;
        if (!first.has(t)) first.set(t, x);
      }
      return vals.map((v) => ({ value: v, owner: (first.get(v) ?? { owner: 'moat' }).owner }));
    };
    sets.push({ name: SET.managed(f), family: f, elements: keep(managed), purpose: 'managed network subnets (fail-closed)' });
    sets.push({ name: SET.notInternet(f), family: f, elements: keep(notInet), purpose: 'container subnets and internal ranges (not internet)' });
  }
  // A peer set of host addresses only (the containers a selector chooses, the usual case) is a hash
  // set with a capacity, like the verdict maps: loading it is half the kernel elements of an
  // interval set (no end elements) into a fixed-size hash, and a match is one hash lookup. A set
  // with a range or prefix keeps its intervals. (A delta adds host addresses only; one that would
  // fill the set is a full compile, which sizes it anew.)
  for (const x of b.sets.values())
    if (x.elements.every((e) => !e.value.includes('/'))) {
      x.exact = true;
      x.size = keptCapacity(options.capacities, x.name, x.elements.length, setCapacity(x.elements.length));
    }
  sets.push(...[...b.sets.values()].sort((x, y) => x.name.localeCompare(y.name)));

  const est: PlanRule = { matches: [{ kind: 'established' }], verdict: { kind: 'accept' }, comment: 'moat:established' };
  const nd: PlanRule = { matches: [{ kind: 'nd' }], verdict: { kind: 'accept' }, comment: 'moat:ipv6-nd' };
  // The maps first: every known address is in them (compile above), and their verdict is final (a
  // goto: the chain's end or `return` accepts), so only an address in neither map reaches the
  // fail-closed rule after them, which drops it if it is on a managed network. One lookup for the
  // usual packet instead of a known-address set's and then the map's.
  const vmaps = (which: 'ingress' | 'egress'): PlanRule[] =>
    FAMILIES.map((f) => ({
      matches: [],
      verdict: { kind: 'vmap', dir: which === 'ingress' ? 'dst' : 'src', family: f, map: which === 'ingress' ? MAP.ingress(f) : MAP.egress(f) },
      comment: `moat:${which}`,
    }));
  const failClosed = (dir: 'src' | 'dst'): PlanRule[] =>
    FAMILIES.map((f) => ({
      matches: [{ kind: 'set', dir, family: f, set: SET.managed(f) }],
      verdict: { kind: 'drop' },
      counter: true,
      log: b.prefix('failclosed', dir, 'unknown-address', 'fail-closed'),
      comment: `moat:fail-closed-${dir}`,
    }));

  const base: PlanChain[] = [
    // Each verdict map is used by one base chain only: adding a jump element makes the kernel walk
    // every map element from every base chain that uses the map (bench/README.md, "Control plane").
    { name: 'egress', hook: 'egress', owners: [], rules: [est, nd, ...vmaps('egress'), ...failClosed('src')] },
    { name: 'ingress', hook: 'ingress', owners: [], rules: [est, nd, ...vmaps('ingress'), ...failClosed('dst')] },
  ];
  const chains = [...base, ...[...b.chains.values()].sort((x, y) => x.name.localeCompare(y.name))];
  for (const m of Object.values(maps)) m.size = keptCapacity(options.capacities, m.name, m.elements.length, mapCapacity(m.elements.length));
  // The prefixes of the rules in the plan (a rule left out as unreachable made its prefix too).
  const logPrefixes: RulesetPlan['logPrefixes'] = {};
  for (const c of chains) for (const r of c.rules) if (r.log && !(r.log in logPrefixes)) logPrefixes[r.log] = b.logPrefixes[r.log];
  return {
    sets,
    maps: Object.values(maps),
    chains,
    nflogGroup: group,
    logPrefixes,
    managedNetworks: input.networks.filter((n) => n.managed).map((n) => n.name),
    warnings,
  };
}

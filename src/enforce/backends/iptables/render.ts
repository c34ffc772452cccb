// RulesetPlan -> `ipset restore` text and `iptables-restore --noflush` / `ip6tables-restore` text.
// Same semantics as the nft backend with two differences forced by the tools: a verdict map becomes
// a prefix tree of dispatch chains over its addresses (dispatch.ts: a few rules per level, O(log n)
// per new connection), and "accept" is RETURN, so that moat's chains never bypass Docker's own
// rules after DOCKER-USER. The plan's address sets become ipsets. A logged drop with matches evaluates
// them once: the rule goes (`-g`) to a shared log chain per NFLOG prefix (`<prefix>-L<12 hex>`: NFLOG,
// then DROP) instead of repeating its matches in an NFLOG rule and a DROP rule.
import type { Family } from '../../../model/address.js';
import type { PortRanges } from '../../../model/connset.js';
import { createHash } from 'node:crypto';
import { MAP, SET, type AddressSet, type Match, type PlanChain, type PlanRule, type RulesetPlan } from '../../plan-model.js';
import { assertName, cidrText, elementText, safeComment, safeLogPrefix, xtablesString } from '../../validate.js';
import { canonicalIPv4Value } from '../../compile/ipv4.js';
import { dispatchChainPattern, dispatchTree, type DispatchOptions, type DispatchTree } from './dispatch.js';
import ipaddr from 'ipaddr.js';

export interface IptablesRenderOptions {
  /** Chain prefix (default MOAT): base chains MOAT, MOAT-INPUT, MOAT-OUTPUT. */
  chainPrefix?: string;
  /** ipset name prefix (default moat). */
  setPrefix?: string;
  /** Shape of the verdict maps' dispatch trees (defaults in dispatch.ts). */
  dispatch?: DispatchOptions;
}

export interface Jumps {
  /** Builtin or Docker chains that exist in this family's filter table. */
  existingChains: string[];
  /** `-A X -j Y` jumps already present (as `X>Y`). */
  existingJumps: string[];
}

/**
 * The plan's two base chains (plan-model.ts `Hook`) in iptables' places, as chains named `forward`,
 * `input` and `output` (MOAT, MOAT-INPUT, MOAT-OUTPUT): FORWARD (through DOCKER-USER) carries
 * container to container and outside traffic and gets both directions' rules, the egress ones first;
 * INPUT (container to host) the egress rules; OUTPUT (host to container) the ingress rules. A rule
 * both chains open with (established, IPv6 neighbour discovery) is in FORWARD once. A plan already in
 * this shape is returned as it is.
 */
export function iptablesPlan(plan: RulesetPlan): RulesetPlan {
  if (!plan.chains.some((c) => c.hook === 'egress') || !plan.chains.some((c) => c.hook === 'ingress')) return plan;
  // One apply renders a plan several times (ipsets, each family, the summary): shaped once.
  const done = shaped.get(plan);
  if (done) return done;
  const original = plan;
  plan = withKnownSets(plan);
  const egress = plan.chains.find((c) => c.hook === 'egress')!;
  const ingress = plan.chains.find((c) => c.hook === 'ingress')!;
  const seen = new Set(egress.rules.map((r) => JSON.stringify(r)));
  const forward = [...egress.rules, ...ingress.rules.filter((r) => !seen.has(JSON.stringify(r)))];
  const base: PlanChain[] = [
    { name: 'forward', owners: [], rules: forward },
    { name: 'input', owners: [], rules: egress.rules },
    { name: 'output', owners: [], rules: ingress.rules },
  ];
  const out = { ...plan, chains: [...base, ...plan.chains.filter((c) => !c.hook)] };
  shaped.set(original, out);
  return out;
}
const shaped = new WeakMap<RulesetPlan, RulesetPlan>();

const FAIL_CLOSED = /^moat:fail-closed-/;
const KNOWN = (f: Family) => `known${f}`;

/**
 * The plan with its known addresses as sets of their own (`known4`, `known6`, after `managed4` and
 * `managed6`), and each base chain's fail-closed rules ahead of its verdict maps, matching an address
 * on a managed network that is not known. The plan's maps hold every known address and their verdict
 * is final (nft `goto`, plan-model.ts); iptables' FORWARD carries both directions, so its egress
 * dispatch must return to the ingress rules after it, and an unknown address must be caught before.
 * A plan recorded by an earlier moat, which has the sets already, is returned as it is.
 */
function withKnownSets(plan: RulesetPlan): RulesetPlan {
  if (plan.sets.some((s) => s.name === KNOWN(4) || s.name === KNOWN(6))) return plan;
  const sets: AddressSet[] = [];
  for (const s of plan.sets) {
    sets.push(s);
    const f = s.name === SET.managed(4) ? 4 : s.name === SET.managed(6) ? 6 : undefined;
    if (f === undefined) continue;
    const map = plan.maps.find((m) => m.name === MAP.ingress(f));
    sets.push({ name: KNOWN(f), family: f, elements: (map?.elements ?? []).map((e) => ({ value: e.key, owner: e.owner })), purpose: 'addresses of known endpoints', exact: true });
  }
  const chains = plan.chains.map((c) => {
    if (!c.hook) return c;
    const failClosed = c.rules.filter((r) => FAIL_CLOSED.test(r.comment)).map((r) => ({
      ...r,
      matches: r.matches.flatMap((m): Match[] => (m.kind === 'set' && m.set === SET.managed(m.family) ? [{ ...m, set: KNOWN(m.family), negate: true }, m] : [m])),
    }));
    const rest = c.rules.filter((r) => !FAIL_CLOSED.test(r.comment));
    const at = rest.findIndex((r) => r.verdict.kind === 'vmap');
    return { ...c, rules: at < 0 ? [...rest, ...failClosed] : [...rest.slice(0, at), ...failClosed, ...rest.slice(at)] };
  });
  return { ...plan, sets, chains };
}

/** Plan set name -> ipset name. */
export type SetNames = Map<string, string>;

export function names(options: IptablesRenderOptions = {}, setNames: SetNames = new Map()) {
  const chainPrefix = options.chainPrefix ?? 'MOAT';
  const setPrefix = options.setPrefix ?? 'moat';
  if (!/^[A-Z][A-Z0-9]{0,7}$/.test(chainPrefix)) throw new Error(`invalid chain prefix: ${JSON.stringify(chainPrefix)}`);
  if (!/^[a-z][a-z0-9]{0,7}$/.test(setPrefix)) throw new Error(`invalid ipset prefix: ${JSON.stringify(setPrefix)}`);
  const dispatch = dispatchChainPattern(chainPrefix);
  const log = logChainPattern(chainPrefix);
  return {
    chainPrefix,
    setPrefix,
    chain(c: PlanChain | string): string {
      const n = typeof c === 'string' ? c : c.name;
      if (n === 'forward') return chainPrefix;
      if (n === 'input') return `${chainPrefix}-INPUT`;
      if (n === 'output') return `${chainPrefix}-OUTPUT`;
      return assertName(`${chainPrefix}-${n}`, 'chain name');
    },
    set(n: string): string {
      const v = setNames.get(n);
      if (!v) throw new Error(`no ipset for plan set ${n}`);
      return v;
    },
    /** Whether a chain of moat's is a helper (dispatch or log chain), not a plan chain. */
    isHelper(c: string): boolean {
      return dispatch.test(c) || log.test(c);
    },
  };
}

function multiport(r: PortRanges): string[] {
  // multiport takes at most 15 ports, a range counting as two.
  const chunks: string[] = [];
  let cur: string[] = [];
  let weight = 0;
  for (const [a, b] of r) {
    const w = a === b ? 1 : 2;
    if (weight + w > 15) {
      chunks.push(cur.join(','));
      cur = [];
      weight = 0;
    }
    cur.push(a === b ? `${a}` : `${a}:${b}`);
    weight += w;
  }
  if (cur.length) chunks.push(cur.join(','));
  return chunks;
}

/** The first and last address of a CIDR (or an address: itself twice). */
function cidrBounds(cidr: string): [string, string] {
  if (!cidr.includes('/')) return [cidr, cidr];
  const v6 = cidr.includes(':');
  const net = v6 ? ipaddr.IPv6.networkAddressFromCIDR(cidr) : ipaddr.IPv4.networkAddressFromCIDR(cidr);
  const last = v6 ? ipaddr.IPv6.broadcastAddressFromCIDR(cidr) : ipaddr.IPv4.broadcastAddressFromCIDR(cidr);
  return [net.toString(), last.toString()];
}

/** Whether a plan match can match in this family (a rule with one that cannot is left out there). */
function inFamily(m: Match, family: Family): boolean {
  if (m.kind === 'set' || m.kind === 'cidr') return m.family === family;
  if (m.kind === 'nd') return family === 6;
  return true;
}

/** One plan match as alternatives of iptables argument strings (null = match nothing in this family). */
function matchArgs(m: Match, family: Family, n: ReturnType<typeof names>): string[] | null {
  if (!inFamily(m, family)) return null;
  switch (m.kind) {
    case 'set':
      return [`-m set ${m.negate ? '! ' : ''}--match-set ${n.set(m.set)} ${m.dir}`];
    case 'cidr': {
      // One `-s`/`-d` per rule: a negated CIDR (the exception of a CIDR peer, next to its CIDR) is a range.
      const t = cidrText(m.cidr, m.family);
      if (!m.negate) return [`${m.dir === 'src' ? '-s' : '-d'} ${t}`];
      const [first, last] = cidrBounds(t);
      return [`-m iprange ! --${m.dir}-range ${first}-${last}`];
    }
    case 'local':
      return [`-m addrtype ${m.negate ? '! ' : ''}--${m.dir}-type LOCAL`];
    case 'l4':
      return m.ports ? multiport(m.ports).map((p) => `-p ${m.proto} -m multiport --dports ${p}`) : [`-p ${m.proto}`];
    case 'l4other':
      // iptables cannot say "not tcp/udp/sctp" in one rule: ICMP stands for "other" (documented).
      return [family === 4 ? '-p icmp' : '-p ipv6-icmp'];
    case 'published':
      return [`-p ${m.proto} -m conntrack --ctstate DNAT --ctorigdstport ${m.hostPort}`];
    case 'established':
      return ['-m conntrack --ctstate RELATED,ESTABLISHED'];
    case 'nd':
      return [133, 134, 135, 136].map((t) => `-p ipv6-icmp -m icmp6 --icmpv6-type ${t}`);
  }
}

/** Dispatch trees of one family, by `map|dir`. */
type Trees = Map<string, DispatchTree>;

/** The dispatch trees the plan's verdict-map rules of one family use. */
export function dispatchTrees(plan: RulesetPlan, family: Family, options: IptablesRenderOptions = {}): Trees {
  plan = iptablesPlan(plan);
  const n = names(options);
  const trees: Trees = new Map();
  for (const c of plan.chains) {
    for (const r of c.rules) {
      const v = r.verdict;
      if (v.kind !== 'vmap' || v.family !== family) continue;
      const key = `${v.map}|${v.dir}`;
      if (trees.has(key)) continue;
      const map = plan.maps.find((x) => x.name === v.map);
      // An address without rules in this direction ('') passes: no dispatch rule (it falls through
      // to the rules after the tree, which are not fail-closed: those come before it, withKnownSets).
      const entries = (map?.elements ?? []).filter((e) => e.chain !== '').map((e) => ({ address: e.key, target: n.chain(e.chain), owner: e.owner }));
      trees.set(key, dispatchTree(entries, family, v.dir, n.chainPrefix, options.dispatch));
    }
  }
  return trees;
}

/** The name of a log chain for a chain prefix and a 12-hex-digit hash. */
export function logChainPattern(chainPrefix: string): RegExp {
  return new RegExp(`^${chainPrefix}-L[0-9a-f]{12}$`);
}

export interface LogChain {
  name: string;
  /** Rule arguments after `-A <name> `: NFLOG, then DROP. */
  rules: string[];
}

/** Log chains of one family, by log prefix (as the plan has it; a chain may stand for several). */
type LogChains = Map<string, LogChain>;

/**
 * One chain per distinct log prefix of the drop rules with matches that render in this family: `-j
 * NFLOG` with the plan's group and the prefix, then `-j DROP`. A logged drop rule goes there (`-g`)
 * once its matches matched, so they are evaluated once, not once for NFLOG and again for DROP (for
 * every packet that passes them, too). A drop without matches (isolated, default deny) has nothing to
 * evaluate twice and only dropped packets reach it: it stays an NFLOG and a DROP rule. The rule that
 * goes there is the drop's own counter, as the DROP rule was. Named by content (group and prefix), so
 * a chain keeps its name across applies; chains no longer used are deleted with the stale chains.
 */
export function logChains(plan: RulesetPlan, family: Family, options: IptablesRenderOptions = {}): LogChains {
  plan = iptablesPlan(plan);
  const n = names(options);
  const out: LogChains = new Map();
  const byName = new Map<string, LogChain>();
  for (const c of plan.chains) {
    for (const r of c.rules) {
      // A drop without matches has nothing to evaluate twice: it stays an NFLOG rule and a DROP rule.
      if (r.verdict.kind !== 'drop' || !r.log || r.matches.length === 0 || out.has(r.log)) continue;
      if (!r.matches.every((m) => inFamily(m, family))) continue;
      const nflog = nflogTarget(plan.nflogGroup, r.log);
      const h = createHash('sha256').update(`log|${nflog}`).digest('hex').slice(0, 12);
      const name = assertName(`${n.chainPrefix}-L${h}`, 'chain name');
      // Two prefixes that are the same once made safe share one chain (and its object).
      const chain = byName.get(name) ?? { name, rules: [nflog, '-j DROP'] };
      byName.set(name, chain);
      out.set(r.log, chain);
    }
  }
  return out;
}

/** Every chain moat keeps in one family for this plan: the plan's chains, then the dispatch chains, then the log chains. */
export function familyChains(plan: RulesetPlan, family: Family, options: IptablesRenderOptions = {}, trees = dispatchTrees(plan, family, options), logs = logChains(plan, family, options)): string[] {
  plan = iptablesPlan(plan);
  const n = names(options);
  const out = plan.chains.map((c) => n.chain(c));
  const seen = new Set(out);
  for (const t of trees.values()) for (const c of t.chains) if (!seen.has(c.name)) (seen.add(c.name), out.push(c.name));
  for (const l of logs.values()) if (!seen.has(l.name)) (seen.add(l.name), out.push(l.name));
  return out;
}

/** `-j NFLOG` with its options in the order iptables-save prints them. */
function nflogTarget(group: number, prefix: string): string {
  return `-j NFLOG --nflog-prefix ${xtablesString(safeLogPrefix(prefix))} --nflog-group ${group}`;
}

/**
 * A rule's match arguments in the order iptables-save prints them: the address and protocol options
 * of the IP header (`-s`, `-d`, `-p`) first, then the `-m` matches in their order. The kernel's rules
 * then read back exactly as rendered, and a chain whose rules are unchanged is left alone
 * (renderRestore). Our values never hold a space (comments come after these arguments).
 */
function ipHeaderFirst(args: string): string {
  const t = args.split(' ');
  const head: Record<string, string> = {};
  const rest: string[] = [];
  for (let i = 0; i < t.length; i++) {
    if ((t[i] === '-s' || t[i] === '-d' || t[i] === '-p') && head[t[i]] === undefined && i + 1 < t.length) head[t[i]] = t[++i];
    else rest.push(t[i]);
  }
  return [...['-s', '-d', '-p'].flatMap((k) => (head[k] === undefined ? [] : [k, head[k]])), ...rest].join(' ');
}

function ruleLines(chain: string, r: PlanRule, family: Family, plan: RulesetPlan, n: ReturnType<typeof names>, trees: Trees, logs: LogChains): string[] {
  let alts: string[] = [''];
  for (const m of r.matches) {
    const a = matchArgs(m, family, n);
    if (a === null) return [];
    alts = alts.flatMap((x) => a.map((y) => (x ? `${x} ${y}` : y)));
  }
  alts = alts.map(ipHeaderFirst);
  const comment = `-m comment --comment ${xtablesString(safeComment(r.comment))}`;
  const out: string[] = [];
  const v = r.verdict;
  for (const m of alts) {
    const head = `-A ${chain}${m ? ` ${m}` : ''} ${comment}`;
    switch (v.kind) {
      case 'accept':
      case 'return':
        out.push(`${head} -j RETURN`);
        break;
      case 'drop': {
        // A goto: the log chain ends in DROP, so nothing returns from it, and no return frame is kept.
        const log = r.log && r.matches.length ? logs.get(r.log) : undefined;
        if (r.log && r.matches.length && !log) throw new Error(`no log chain for ${r.log}`);
        if (log) out.push(`${head} -g ${log.name}`);
        else {
          if (r.log) out.push(`${head} ${nflogTarget(plan.nflogGroup, r.log)}`);
          out.push(`${head} -j DROP`);
        }
        break;
      }
      case 'jump':
        out.push(`${head} -j ${n.chain(v.chain)}`);
        break;
      case 'vmap': {
        if (v.family !== family) break;
        const root = trees.get(`${v.map}|${v.dir}`)?.root;
        if (root) out.push(`${head} -j ${root}`);
        break;
      }
    }
  }
  return out;
}

/** hash:net cannot hold a /0: split it into two halves. */
function ipsetEntries(value: string): string[] {
  if (canonicalIPv4Value(value) >= 0) return [value]; // a host in canonical text is its own element text
  const e = elementText(value).text;
  if (e === '0.0.0.0/0') return ['0.0.0.0/1', '128.0.0.0/1'];
  if (e === '::/0') return ['::/1', '8000::/1'];
  return [e];
}

export interface IpsetDef {
  /** Content-addressed ipset name: a changed set is a new set, so live sets are never modified. */
  name: string;
  /** Plan set name. */
  key: string;
  family: Family;
  entries: { value: string; owner: string }[];
}

export function ipsetDefs(plan: RulesetPlan, options: IptablesRenderOptions = {}): IpsetDef[] {
  plan = iptablesPlan(plan);
  const n = names(options);
  const out: IpsetDef[] = [];
  const named = (key: string, family: Family, entries: { value: string; owner: string }[]): IpsetDef => {
    const h = createHash('sha256').update(`${family}|${key.split('|')[0]}|${entries.map((e) => `${e.value} ${e.owner}`).join(',')}`).digest('hex').slice(0, 12);
    return { name: assertName(`${n.setPrefix}-${h}`, 'ipset name'), key, family, entries };
  };
  const fromSet = (s: AddressSet): IpsetDef => {
    // A plan's sets are values (a changed set is a new object; the compile session keeps unchanged
    // ones): each is turned into its ipset, and hashed, once per set prefix.
    let byPrefix = defMemo.get(s);
    if (!byPrefix) defMemo.set(s, (byPrefix = new Map()));
    let d = byPrefix.get(n.setPrefix);
    if (!d) byPrefix.set(n.setPrefix, (d = named(s.name, s.family, s.elements.flatMap((e) => ipsetEntries(e.value).map((value) => ({ value, owner: e.owner }))))));
    return d;
  };
  for (const s of plan.sets) out.push(fromSet(s));
  return out;
}
const defMemo = new WeakMap<AddressSet, Map<string, IpsetDef>>();

/** `ipset restore` text creating the sets that do not exist yet (existing ones have the same content). */
export function renderIpsets(defs: IpsetDef[], existing: string[] = []): string {
  const lines: string[] = [];
  const done = new Set(existing);
  for (const d of defs) {
    if (done.has(d.name)) continue;
    done.add(d.name);
    const fam = d.family === 4 ? 'inet' : 'inet6';
    lines.push(`create ${d.name} hash:net family ${fam} comment`);
    for (const e of d.entries) lines.push(`add ${d.name} ${e.value} comment "${safeComment(e.owner)}" -exist`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** An ipset member as `ipset save` prints it (a host without its /32 or /128). */
export function ipsetMember(value: string): string {
  return value.toLowerCase().replace(/\/(32|128)$/, (m, bits: string) => ((bits === '32') === !value.includes(':') ? '' : m));
}

/**
 * `ipset restore` text that gives every existing set whose members differ from its definition (someone
 * ran `ipset add` or `ipset del` on it) its members back: a fresh copy swapped in atomically, so the
 * rules that use the set never see it half-filled.
 */
export function renderIpsetRepairs(defs: IpsetDef[], members: Map<string, string[]>): { script: string; repaired: string[] } {
  const lines: string[] = [];
  const repaired: string[] = [];
  const done = new Set<string>();
  for (const d of defs) {
    const have = members.get(d.name);
    if (!have || done.has(d.name)) continue;
    done.add(d.name);
    const want = [...new Set(d.entries.map((e) => ipsetMember(e.value)))].sort();
    const got = [...new Set(have.map(ipsetMember))].sort();
    if (want.length === got.length && want.every((x, i) => x === got[i])) continue;
    repaired.push(d.name);
    const tmp = assertName(`${d.name}-r`, 'ipset name');
    lines.push(`create ${tmp} hash:net family ${d.family === 4 ? 'inet' : 'inet6'} comment -exist`, `flush ${tmp}`);
    for (const e of d.entries) lines.push(`add ${tmp} ${e.value} comment "${safeComment(e.owner)}" -exist`);
    lines.push(`swap ${tmp} ${d.name}`, `destroy ${tmp}`);
  }
  return { script: lines.length ? `${lines.join('\n')}\n` : '', repaired };
}

/** Members of moat's ipsets (names starting with `prefix`) in `ipset save` output. */
export function parseIpsetSave(text: string, prefix: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const c = /^create (\S+) /.exec(line);
    if (c) {
      if (c[1].startsWith(prefix)) out.set(c[1], []);
      continue;
    }
    const a = /^add (\S+) (\S+)/.exec(line);
    if (a) out.get(a[1])?.push(a[2]);
  }
  return out;
}

export function setNamesOf(defs: IpsetDef[]): SetNames {
  return new Map(defs.map((d) => [d.key, d.name]));
}

/** Where the base chains are jumped from, per family. */
export function jumpSources(family: Family, jumps: Jumps, n: ReturnType<typeof names>): { from: string; to: string }[] {
  const forwardFrom = jumps.existingChains.includes('DOCKER-USER') ? 'DOCKER-USER' : 'FORWARD';
  void family;
  return [
    { from: forwardFrom, to: n.chain('forward') },
    { from: 'INPUT', to: n.chain('input') },
    { from: 'OUTPUT', to: n.chain('output') },
  ];
}

/**
 * `iptables-restore --noflush` text for one family: declares (and so flushes) moat's chains,
 * fills them, inserts the jumps that are missing, and deletes moat chains that are no longer used.
 * `staleChains` may list all of moat's chains in the kernel: those this plan keeps are not deleted.
 * With `current` (their rules as iptables-save prints them), only the chains whose rules differ are
 * declared and filled: rules are rendered in iptables-save's own form (ipHeaderFirst, xtablesString,
 * nflogTarget), so an unchanged chain reads back exactly as rendered.
 */
export function renderRestore(plan: RulesetPlan, family: Family, jumps: Jumps, staleChains: string[], setNames: SetNames, options: IptablesRenderOptions = {}, current?: Readonly<Record<string, string[]>>): string {
  return restoreAndAfter(plan, family, jumps, staleChains, setNames, options, current).text;
}

/** What the kernel's filter table holds once a restore of renderRestore succeeded, as the backend reads it (parseSave). */
export interface AfterRestore {
  /** Every chain of the filter table, the jumps (`from>to`, rules that are only `-j to`), moat's chains and their rules as iptables-save prints them. */
  state: { jumps: Jumps; moatChains: string[]; lines: Record<string, string[]> };
  /** Whether the restore changes anything (iptables-nft then commits one transaction; else none). */
  changes: boolean;
}

/** renderRestore, and what the kernel holds after it (AfterRestore). */
export function restoreAndAfter(plan: RulesetPlan, family: Family, jumps: Jumps, staleChains: string[], setNames: SetNames, options: IptablesRenderOptions = {}, current?: Readonly<Record<string, string[]>>): { text: string; after: AfterRestore } {
  plan = iptablesPlan(plan);
  const n = names(options, setNames);
  const trees = dispatchTrees(plan, family, options);
  const logs = logChains(plan, family, options);
  const keep = familyChains(plan, family, options, trees, logs);
  const kept = new Set(keep);
  const stale = [...new Set(staleChains)].filter((s) => !kept.has(s));
  // Each kept chain's rules, as iptables-save prints them.
  const rules = new Map<string, string[]>(keep.map((c) => [c, []]));
  for (const c of plan.chains) rules.get(n.chain(c))!.push(...c.rules.flatMap((r) => ruleLines(n.chain(c), r, family, plan, n, trees, logs)));
  for (const t of trees.values()) for (const c of t.chains) {
    const out = rules.get(c.name)!;
    if (out.length === 0) for (const r of c.rules) out.push(`-A ${c.name} ${r}`);
  }
  for (const l of new Set(logs.values())) {
    const out = rules.get(l.name)!;
    if (out.length === 0) for (const r of l.rules) out.push(`-A ${l.name} ${r}`);
  }
  // With `current` (the rules of the kernel's moat chains, `staleChains` being all of them, read by
  // iptables-save), a chain that holds exactly these rules already is left as it is: not declared
  // (which would flush it), no rules sent. Its counters stay, and one container added rewrites a few
  // chains instead of all of them.
  const inKernel = new Set(staleChains);
  const same = (c: string) => {
    // A chain iptables-save lists without rules has none.
    const have = current ? (current[c] ?? (inKernel.has(c) ? [] : undefined)) : undefined;
    const want = rules.get(c)!;
    return have !== undefined && have.length === want.length && have.every((x, i) => x === want[i]);
  };
  const changed = keep.filter((c) => !same(c));
  const lines = ['*filter'];
  for (const c of [...changed, ...stale]) lines.push(`:${c} - [0:0]`);
  for (const c of changed) lines.push(...rules.get(c)!);
  const added: string[] = [];
  for (const j of jumpSources(family, jumps, n)) {
    if (!jumps.existingJumps.includes(`${j.from}>${j.to}`)) {
      lines.push(`-I ${j.from} 1 -j ${j.to}`);
      added.push(`${j.from}>${j.to}`);
    }
  }
  for (const s of stale) lines.push(`-X ${s}`);
  lines.push('COMMIT');
  // The table as parseSave reads it afterwards: the chains (the stale ones gone), the jumps (none from
  // or into a deleted chain; moat's own from its chains' new rules), and every kept chain's rules.
  const gone = new Set(stale);
  const existingChains = [...new Set([...jumps.existingChains.filter((c) => !gone.has(c)), ...keep])];
  const existingJumps = [...jumps.existingJumps, ...added].filter((j) => {
    const [from, to] = j.split('>');
    return !kept.has(from) && !gone.has(from) && !gone.has(to);
  });
  const afterLines: Record<string, string[]> = {};
  for (const c of keep) {
    const rs = rules.get(c)!;
    if (rs.length === 0) continue;
    afterLines[c] = rs;
    for (const r of rs) {
      const m = / -j (\S+)$/.exec(r);
      if (m && r === `-A ${c} -j ${m[1]}`) existingJumps.push(`${c}>${m[1]}`);
    }
  }
  return { text: `${lines.join('\n')}\n`, after: { state: { jumps: { existingChains, existingJumps }, moatChains: keep, lines: afterLines }, changes: lines.length > 2 } };
}

/** Removes everything moat added in one family: the jumps, then its chains. */
export function renderRemove(family: Family, jumps: Jumps, moatChains: string[], options: IptablesRenderOptions = {}): string {
  const n = names(options);
  const lines = ['*filter'];
  for (const c of moatChains) lines.push(`:${c} - [0:0]`);
  for (const j of jumps.existingJumps) {
    const [from, to] = j.split('>');
    if (moatChains.includes(to) && !moatChains.includes(from)) lines.push(`-D ${from} -j ${to}`);
  }
  for (const c of moatChains) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  void family;
  void n;
  return `${lines.join('\n')}\n`;
}

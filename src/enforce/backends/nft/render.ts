// RulesetPlan -> an `nft -f` script for moat's own table. The script replaces the table in one
// transaction (`table` + `delete table` + full definition), so a reader never sees half a ruleset.
import type { PortRanges } from '../../../model/connset.js';
import type { AddressSet, Hook, Match, PlanChain, PlanRule, RulesetPlan, VerdictMap } from '../../plan-model.js';
import { createHash } from 'node:crypto';
import { assertName, canonicalAddress, cidrText, elementText, safeComment, safeLogPrefix, validTableName } from '../../validate.js';

export const DEFAULT_TABLE = 'moat';

export interface NftRenderOptions {
  table?: string;
}

const PRIORITY = 'filter - 10';
/**
 * The netfilter hook of each base chain. Every packet a container sends passes prerouting (bridged
 * ones too, through br_netfilter), after Docker's DNAT (priority -100); every packet to a container
 * passes postrouting, before masquerading (100). So one chain per direction decides for all paths
 * (container to container, to and from the host, to and from outside), and each verdict map is used
 * from one base chain only.
 */
export const NFT_HOOK: Record<Hook, string> = { egress: 'prerouting', ingress: 'postrouting' };

export function tableName(options: NftRenderOptions = {}): string {
  const t = options.table ?? DEFAULT_TABLE;
  if (!validTableName(t)) throw new Error(`invalid nft table name: ${JSON.stringify(t)}`);
  return t;
}

/** A port list's elements as nft writes them (`80`, `9000-9100`). */
export function portItems(r: PortRanges): string[] {
  return r.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
}

/**
 * The named set that stands for a list of several ports or ranges (`th dport @ports_<hash>`), shared
 * by every rule with that list. An inline list (`th dport { 80, 443 }`) is an anonymous set per rule;
 * the kernel allocates, names and binds each one by walking its sets and the batch, which for 500
 * rules cost a quarter of a whole-table load (bench/README.md, "Control plane"). Named by content.
 */
export function portSetName(r: PortRanges): string {
  const items = portItems(r).join(',');
  let name = portSetNames.get(items);
  if (name === undefined) {
    if (portSetNames.size >= 10_000) portSetNames.clear();
    name = `ports_${createHash('sha256').update(items).digest('hex').slice(0, 10)}`;
    portSetNames.set(items, name);
  }
  return name;
}
/** Port list -> set name (the same few lists come back for hundreds of rules). */
const portSetNames = new Map<string, string>();

function ports(r: PortRanges): string {
  return r.length === 1 ? portItems(r)[0] : `@${portSetName(r)}`;
}

/**
 * The port sets the plan's rules use, by name (the order the table lists them in): name -> its
 * elements as nft writes them (`80`, `9000-9100`).
 */
export function portSets(plan: Pick<RulesetPlan, 'chains'>): Map<string, string[]> {
  return new Map([...portSetRanges(plan)].map(([name, r]) => [name, portItems(r)]));
}

/** The port sets the plan's rules use, by name (the order the table lists them in): name -> its port list. */
export function portSetRanges(plan: Pick<RulesetPlan, 'chains'>): Map<string, PortRanges> {
  const out = new Map<string, PortRanges>();
  for (const c of plan.chains) for (const [name, ranges] of chainPortSets(c)) out.set(name, ranges);
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

// Per chain object: plans share their unchanged chains (the compile session's deltas, the plan diff's
// two sides), so a plan's port sets cost a lookup per chain instead of a walk of every rule's matches.
const chainPortSetMemo = new WeakMap<PlanChain, [string, PortRanges][]>();
const NO_PORT_SETS: [string, PortRanges][] = [];
function chainPortSets(c: PlanChain): [string, PortRanges][] {
  let v = chainPortSetMemo.get(c);
  if (!v) {
    v = NO_PORT_SETS;
    for (const r of c.rules) {
      for (const m of r.matches) if (m.kind === 'l4' && m.ports && m.ports.length > 1) v = [...v, [portSetName(m.ports), m.ports]];
    }
    chainPortSetMemo.set(c, v);
  }
  return v;
}

/** A port set's declaration. */
export function renderPortSet(name: string, items: string[], indent = '\t'): string {
  return [`${indent}set ${assertName(name, 'set name')} {`, `${indent}\ttype inet_service`, `${indent}\tflags interval`, `${indent}\telements = { ${items.join(', ')} }`, `${indent}}`].join('\n');
}

function addrKw(family: 4 | 6, dir: 'src' | 'dst'): string {
  return `${family === 4 ? 'ip' : 'ip6'} ${dir === 'src' ? 'saddr' : 'daddr'}`;
}

export function renderMatch(m: Match): string {
  switch (m.kind) {
    case 'set':
      return `${addrKw(m.family, m.dir)} ${m.negate ? '!= ' : ''}@${assertName(m.set, 'set name')}`;
    case 'cidr':
      return `${addrKw(m.family, m.dir)} ${m.negate ? '!= ' : ''}${cidrText(m.cidr, m.family)}`;
    case 'local':
      return `fib ${m.dir === 'src' ? 'saddr' : 'daddr'} type ${m.negate ? '!= ' : ''}local`;
    case 'l4':
      return m.ports ? `meta l4proto ${m.proto} th dport ${ports(m.ports)}` : `meta l4proto ${m.proto}`;
    case 'l4other':
      return 'meta l4proto != { tcp, udp, sctp }';
    case 'published':
      return `ct status dnat meta l4proto ${m.proto} ct original proto-dst ${m.hostPort}`;
    case 'established':
      return 'ct state established,related';
    case 'nd':
      return 'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert }';
  }
}

export function renderRule(r: PlanRule, group: number): string {
  const parts = r.matches.map(renderMatch);
  if (r.counter) parts.push('counter');
  if (r.log && r.verdict.kind === 'drop') parts.push(`log prefix "${safeLogPrefix(r.log)}" group ${group}`);
  const v = r.verdict;
  switch (v.kind) {
    case 'accept':
    case 'drop':
    case 'return':
      parts.push(v.kind);
      break;
    case 'jump':
      parts.push(`jump ${assertName(v.chain, 'chain name')}`);
      break;
    case 'vmap':
      parts.push(`${addrKw(v.family, v.dir)} vmap @${assertName(v.map, 'map name')}`);
      break;
  }
  parts.push(`comment "${safeComment(r.comment)}"`);
  return parts.join(' ');
}

function elementLines(items: string[], indent: string): string {
  // One element per line keeps diffs and golden files readable.
  return items.map((x, i) => `${indent}${x}${i < items.length - 1 ? ',' : ''}`).join('\n');
}

/** A set's or map's `size` (1 to 2^24 elements); throws for anything else. */
export function validSize(size: number, name: string): number {
  if (!Number.isSafeInteger(size) || size < 1 || size > 1 << 24) throw new Error(`invalid size of ${name}: ${size}`);
  return size;
}

export function renderSet(s: AddressSet, indent = '\t'): string {
  const type = s.family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  const lines = [`${indent}set ${assertName(s.name, 'set name')} {`, `${indent}\ttype ${type}`, ...(s.exact ? [] : [`${indent}\tflags interval`])];
  if (s.size !== undefined) lines.push(`${indent}\tsize ${validSize(s.size, s.name)}`);
  if (s.elements.length) {
    lines.push(`${indent}\telements = {`);
    lines.push(elementLines(s.elements.map((e) => `${elementText(e.value).text} comment "${safeComment(e.owner)}"`), `${indent}\t\t`));
    lines.push(`${indent}\t}`);
  }
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** A verdict-map element: `goto` the address's chain (the base chain's vmap verdict is final), or `accept` when it has none. */
export function mapElementText(e: VerdictMap['elements'][number]): string {
  return `${canonicalAddress(e.key).text} comment "${safeComment(e.owner)}" : ${e.chain === '' ? 'accept' : `goto ${assertName(e.chain, 'chain name')}`}`;
}

export function renderMap(m: VerdictMap, indent = '\t'): string {
  const type = m.family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  const lines = [`${indent}map ${assertName(m.name, 'map name')} {`, `${indent}\ttype ${type} : verdict`];
  if (m.size !== undefined) {
    lines.push(`${indent}\tsize ${validSize(m.size, m.name)}`);
  }
  if (m.elements.length) {
    lines.push(`${indent}\telements = {`);
    lines.push(elementLines(m.elements.map(mapElementText), `${indent}\t\t`));
    lines.push(`${indent}\t}`);
  }
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/**
 * A chain's owner, as its comment: for a per-identity chain the policies its rules come from (stable
 * while containers come and go: the containers are on the map elements), for a base chain its role.
 */
export function chainComment(c: PlanChain): string {
  if (c.hook) return safeComment(`moat:${c.name}`);
  const owners = new Set<string>();
  // `isolated-by:` names several policies: each once. (The prefix by startsWith, not a regular
  // expression: ~5,400 rules at 10,000 endpoints, for every render and netlink encode.)
  for (const r of c.rules) {
    let t = r.comment;
    for (const p of OWNER_PREFIXES)
      if (t.startsWith(p)) {
        t = t.slice(p.length);
        break;
      }
    if (!t.includes(',')) owners.add(t);
    else for (const o of t.split(',')) owners.add(o);
  }
  return safeComment(`identity of ${[...owners].join(',')}`);
}
const OWNER_PREFIXES = ['policy:', 'isolated-by:', 'allowlist:', 'default-stance:'];

export function renderChain(c: PlanChain, group: number, indent = '\t'): string {
  const lines = [`${indent}chain ${assertName(c.name, 'chain name')} {`];
  if (c.hook) lines.push(`${indent}\ttype filter hook ${NFT_HOOK[c.hook]} priority ${PRIORITY}; policy accept;`);
  lines.push(`${indent}\tcomment "${chainComment(c)}"`);
  for (const r of c.rules) lines.push(`${indent}\t${renderRule(r, group)}`);
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** The table definition alone (`table inet NAME { ... }`). */
export function renderTable(plan: RulesetPlan, options: NftRenderOptions = {}): string {
  const t = tableName(options);
  const body: string[] = [];
  for (const [name, items] of portSets(plan)) body.push(renderPortSet(name, items));
  for (const s of plan.sets) body.push(renderSet(s));
  // Chains before maps: map elements jump to them.
  const [base, per] = [plan.chains.filter((c) => c.hook), plan.chains.filter((c) => !c.hook)];
  for (const c of per) body.push(renderChain(c, plan.nflogGroup));
  for (const m of plan.maps) body.push(renderMap(m));
  for (const c of base) body.push(renderChain(c, plan.nflogGroup));
  return `table inet ${t} {\n${body.join('\n')}\n}\n`;
}

/** A whole-table replacement, atomic when given to `nft -f` in one go. */
export function renderReplace(plan: RulesetPlan, options: NftRenderOptions = {}): string {
  const t = tableName(options);
  return `# moat ruleset (generated; do not edit)\ntable inet ${t}\ndelete table inet ${t}\n${renderTable(plan, options)}`;
}

/** Removes the table (uninstall). `table` first so that the delete never fails when it is absent. */
export function renderDelete(options: NftRenderOptions = {}): string {
  const t = tableName(options);
  return `table inet ${t}\ndelete table inet ${t}\n`;
}

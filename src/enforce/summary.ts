// A comparable summary of a ruleset (what moat put in the kernel, or what a plan would put there):
// set and map elements and each chain's rules by owner comment. `plan` diffs two summaries.
import type { RulesetPlan } from './plan-model.js';
import { elementText } from './validate.js';
import { portSets } from './backends/nft/render.js';

export interface RulesetSummary {
  present: boolean;
  sets: Record<string, string[]>;
  /** map -> address -> chain (`accept` for an address without rules in that direction) */
  maps: Record<string, Record<string, string>>;
  /** chain -> one line per rule (its owner comment) */
  chains: Record<string, string[]>;
  /**
   * chain -> digest of its rules' full content (counters left out), when read from the kernel: tells
   * a rule edited in place (same comment, other matches) from the one moat applied.
   */
  ruleDigest?: Record<string, string>;
}

export function emptySummary(): RulesetSummary {
  return { present: false, sets: {}, maps: {}, chains: {} };
}

export function planSummary(plan: RulesetPlan): RulesetSummary {
  const s: RulesetSummary = { present: true, sets: {}, maps: {}, chains: {} };
  // nft: the shared port sets the rules refer to, first, as the table lists them (iptables
  // comparisons leave sets out).
  for (const [name, items] of portSets(plan)) s.sets[name] = [...items].sort();
  for (const set of plan.sets) s.sets[set.name] = set.elements.map((e) => elementText(e.value).text).sort();
  for (const m of plan.maps) {
    s.maps[m.name] = {};
    for (const e of m.elements) s.maps[m.name][e.key] = e.chain || 'accept';
  }
  for (const c of plan.chains) s.chains[c.name] = c.rules.map((r) => r.comment);
  return s;
}

export interface SetChange {
  name: string;
  added: string[];
  removed: string[];
}

export interface RulesetDiff {
  tableCreated: boolean;
  tableRemoved: boolean;
  chainsAdded: string[];
  chainsRemoved: string[];
  chainsChanged: string[];
  setsAdded: string[];
  setsRemoved: string[];
  sets: SetChange[];
  maps: { name: string; added: Record<string, string>; removed: Record<string, string>; changed: Record<string, { from: string; to: string }> }[];
  unchanged: boolean;
}

export function diffSummaries(current: RulesetSummary, desired: RulesetSummary): RulesetDiff {
  const d: RulesetDiff = {
    tableCreated: !current.present && desired.present,
    tableRemoved: current.present && !desired.present,
    chainsAdded: [], chainsRemoved: [], chainsChanged: [], setsAdded: [], setsRemoved: [], sets: [], maps: [], unchanged: true,
  };
  for (const c of Object.keys(desired.chains)) {
    if (!(c in current.chains)) d.chainsAdded.push(c);
    else if (JSON.stringify(current.chains[c]) !== JSON.stringify(desired.chains[c])) d.chainsChanged.push(c);
  }
  for (const c of Object.keys(current.chains)) if (!(c in desired.chains)) d.chainsRemoved.push(c);
  for (const s of Object.keys(desired.sets)) {
    if (!(s in current.sets)) d.setsAdded.push(s);
    const cur = new Set(current.sets[s] ?? []);
    const want = new Set(desired.sets[s]);
    const added = [...want].filter((x) => !cur.has(x));
    const removed = [...cur].filter((x) => !want.has(x));
    if (added.length || removed.length) d.sets.push({ name: s, added, removed });
  }
  for (const s of Object.keys(current.sets)) if (!(s in desired.sets)) d.setsRemoved.push(s);
  for (const m of new Set([...Object.keys(current.maps), ...Object.keys(desired.maps)])) {
    const cur = current.maps[m] ?? {};
    const want = desired.maps[m] ?? {};
    const added: Record<string, string> = {};
    const removed: Record<string, string> = {};
    const changed: Record<string, { from: string; to: string }> = {};
    for (const [k, v] of Object.entries(want)) {
      if (!(k in cur)) added[k] = v;
      else if (cur[k] !== v) changed[k] = { from: cur[k], to: v };
    }
    for (const [k, v] of Object.entries(cur)) if (!(k in want)) removed[k] = v;
    if (Object.keys(added).length || Object.keys(removed).length || Object.keys(changed).length) d.maps.push({ name: m, added, removed, changed });
  }
  d.unchanged =
    !d.tableCreated && !d.tableRemoved && !d.chainsAdded.length && !d.chainsRemoved.length && !d.chainsChanged.length &&
    !d.setsAdded.length && !d.setsRemoved.length && !d.sets.length && !d.maps.length;
  return d;
}

export function formatDiff(d: RulesetDiff): string {
  if (d.unchanged) return 'no change: the kernel already holds this ruleset\n';
  const out: string[] = [];
  if (d.tableCreated) out.push('+ create moat ruleset');
  if (d.tableRemoved) out.push('- remove moat ruleset');
  for (const c of d.chainsAdded) out.push(`+ chain ${c}`);
  for (const c of d.chainsChanged) out.push(`~ chain ${c}`);
  for (const c of d.chainsRemoved) out.push(`- chain ${c}`);
  for (const s of d.setsAdded) out.push(`+ set ${s}`);
  for (const s of d.setsRemoved) out.push(`- set ${s}`);
  for (const s of d.sets) {
    for (const a of s.added) out.push(`+ ${s.name}: ${a}`);
    for (const r of s.removed) out.push(`- ${s.name}: ${r}`);
  }
  for (const m of d.maps) {
    for (const [k, v] of Object.entries(m.added)) out.push(`+ ${m.name}: ${k} -> ${v}`);
    for (const [k, v] of Object.entries(m.changed)) out.push(`~ ${m.name}: ${k} -> ${v.to} (was ${v.from})`);
    for (const [k, v] of Object.entries(m.removed)) out.push(`- ${m.name}: ${k} (was ${v})`);
  }
  return `${out.join('\n')}\n`;
}

// The iptables backend: ipsets (`ipset restore`) and `iptables-restore --noflush` /
// `ip6tables-restore --noflush`, each checked with `--test` first. ipset names are content-addressed,
// so the live sets are never modified (except one whose members someone changed: it gets a fresh copy
// swapped in): the restore is the one atomic switch per family, and the sets no longer referenced are
// destroyed afterwards. Verdict maps are trees of dispatch chains
// (dispatch.ts), and logged drops go to one log chain per NFLOG prefix (render.ts), both named by
// their content; the restore deletes the ones no longer used.
import type { Family } from '../../../model/address.js';
import { run, runOk } from '../../exec.js';
import type { RulesetPlan } from '../../plan-model.js';
import { emptySummary, planSummary, type RulesetSummary } from '../../summary.js';
import { createHash } from 'node:crypto';
import { iptablesPlan, ipsetDefs, ipsetMember, names, parseIpsetSave, renderIpsetRepairs, renderIpsets, renderRemove, restoreAndAfter, setNamesOf, type AfterRestore, type IpsetDef, type IptablesRenderOptions, type Jumps } from './render.js';
import { sharedNetlink } from '../nft/netlink.js';
import { iptablesFlavour } from '../../doctor.js';

export interface IptablesOptions extends IptablesRenderOptions {
  netns?: string;
  /** Also manage IPv6 with ip6tables (default true). */
  ipv6?: boolean;
}

export interface FamilyState {
  jumps: Jumps;
  moatChains: string[];
  /** rules per moat chain, by comment */
  rules: Record<string, string[]>;
  /** rules per moat chain, whole (`-A` lines as iptables-save prints them) */
  lines: Record<string, string[]>;
  /** ipsets referenced by moat rules */
  sets: string[];
}

export interface IptablesScripts {
  ipset: string;
  v4: string;
  v6?: string;
  newSets: string[];
  /** What each family's filter table holds once its restore succeeded. */
  after?: Partial<Record<Family, AfterRestore>>;
}

/**
 * What moat's last restores left in this process's network namespace, per chain prefix, and the
 * nf_tables generation right after them. iptables-nft commits to nf_tables, whose generation every
 * commit by anyone bumps: while it is unchanged, nobody has touched any table since, and the next
 * apply compares with this instead of reading both families with `iptables-save` (~0.4-0.55 s at
 * 10,000 endpoints). Recorded only when the generation moved by exactly our restores' commits.
 */
const lastRestore = new Map<string, { generation: number; states: Map<Family, AfterRestore['state']> }>();

/** How many times this process read a family's rules with iptables-save (for tests and benchmarks). */
export const iptablesReads = { saves: 0 };

let flavourNft: Promise<boolean> | undefined;
/** Whether both iptables and ip6tables are the nf_tables flavour (legacy x_tables have no generation). */
function bothNft(): Promise<boolean> {
  return (flavourNft ??= Promise.all(['iptables', 'ip6tables'].map((t) => run(t, ['-V']))).then((rs) => rs.every((r) => r.code === 0 && iptablesFlavour(r.stdout.trim()) === 'nft')));
}

const digestOf = (xs: string[]) => createHash('sha256').update(xs.join('\n')).digest('hex').slice(0, 16);

export class IptablesBackend {
  readonly kind = 'iptables' as const;
  constructor(readonly options: IptablesOptions = {}) {
    names(options);
  }

  private families(): Family[] {
    return this.options.ipv6 === false ? [4] : [4, 6];
  }

  private tool(f: Family, what: 'save' | 'restore'): string {
    return `${f === 4 ? 'iptables' : 'ip6tables'}-${what}`;
  }

  async familyState(f: Family): Promise<FamilyState> {
    iptablesReads.saves++;
    const out = await runOk(this.tool(f, 'save'), ['-t', 'filter'], { netns: this.options.netns });
    return parseSave(out, names(this.options).chainPrefix);
  }

  async ipsetNames(): Promise<string[]> {
    const r = await run('ipset', ['list', '-n'], { netns: this.options.netns });
    if (r.code !== 0) return [];
    const p = `${names(this.options).setPrefix}-`;
    return r.stdout.split('\n').filter((x) => x.startsWith(p));
  }

  /** Members of moat's ipsets, from one `ipset save`. */
  async ipsetMembers(): Promise<Map<string, string[]>> {
    const r = await run('ipset', ['save'], { netns: this.options.netns });
    if (r.code !== 0) return new Map();
    return parseIpsetSave(r.stdout, `${names(this.options).setPrefix}-`);
  }

  /**
   * The restore inputs for `plan`; `full`: every chain of the plan declared and filled, changed or
   * not; `defs`: the plan's ipsets when the caller has them (their names hash every member).
   */
  async render(plan: RulesetPlan, opts: { full?: boolean; defs?: IpsetDef[]; states?: Map<Family, AfterRestore['state']> } = {}): Promise<IptablesScripts> {
    const defs = opts.defs ?? ipsetDefs(plan, this.options);
    const existing = await this.ipsetNames();
    const setNames = setNamesOf(defs);
    const scripts: IptablesScripts = { ipset: renderIpsets(defs, existing), v4: '', newSets: [...new Set(defs.map((d) => d.name))].filter((n) => !existing.includes(n)), after: {} };
    for (const f of this.families()) {
      const st = opts.states?.get(f) ?? (await this.familyState(f));
      // All of moat's chains in the kernel: renderRestore deletes those the plan no longer uses
      // (plan chains and verdict-map dispatch chains alike), and leaves alone those that hold
      // exactly the plan's rules already.
      const { text, after } = restoreAndAfter(plan, f, st.jumps, st.moatChains, setNames, this.options, opts.full ? undefined : st.lines);
      scripts.after![f] = after;
      if (f === 4) scripts.v4 = text;
      else scripts.v6 = text;
    }
    return scripts;
  }

  /** The nf_tables generation, when the kernel's iptables rules live in nf_tables and netlink reaches them here. */
  private async generation(): Promise<number | undefined> {
    if (this.options.netns !== undefined || !(await bothNft())) return undefined;
    try {
      return await sharedNetlink()?.generation();
    } catch {
      return undefined;
    }
  }

  /** Creates the new ipsets, checks and applies both families; on failure removes the new sets. */
  async apply(plan: RulesetPlan, opts: { full?: boolean } = {}): Promise<IptablesScripts> {
    const defs = ipsetDefs(plan, this.options);
    const key = names(this.options).chainPrefix;
    const genBefore = await this.generation();
    const known = lastRestore.get(key);
    lastRestore.delete(key);
    const s = await this.render(plan, { ...opts, defs, states: genBefore !== undefined && known?.generation === genBefore ? known.states : undefined });
    const before = await this.ipsetNames();
    // Sets that exist already are reused by name; one whose members someone changed gets them back.
    const repair = renderIpsetRepairs(defs, await this.ipsetMembers());
    if (s.ipset || repair.script) await runOk('ipset', ['restore'], { input: s.ipset + repair.script, netns: this.options.netns });
    try {
      await runOk(this.tool(4, 'restore'), ['--noflush', '--test'], { input: s.v4, netns: this.options.netns });
      if (s.v6) await runOk(this.tool(6, 'restore'), ['--noflush', '--test'], { input: s.v6, netns: this.options.netns });
      await runOk(this.tool(4, 'restore'), ['--noflush'], { input: s.v4, netns: this.options.netns });
      if (s.v6) await runOk(this.tool(6, 'restore'), ['--noflush'], { input: s.v6, netns: this.options.netns });
    } catch (e) {
      await this.destroySets(s.newSets.filter((n) => !before.includes(n)));
      throw e;
    }
    // The restores replaced all of moat's chains: they refer to the plan's sets and no others.
    await this.destroyUnreferencedSets(new Set(defs.map((d) => d.name)));
    if (genBefore !== undefined) {
      // Ours were the only commits since `genBefore` (one per restore that changed something; ipset
      // is not nf_tables): the kernel holds what the restores said, and the next apply may start from it.
      const after = await this.generation();
      const ours = this.families().filter((f) => s.after?.[f]?.changes).length;
      if (after === genBefore + ours) {
        lastRestore.set(key, { generation: after, states: new Map(this.families().map((f) => [f, s.after![f]!.state])) });
      }
    }
    return s;
  }

  /**
   * Destroys moat's ipsets not in `used` (before, found by one more `iptables-save` per family:
   * ~400 ms at 10,000 endpoints). The kernel refuses to destroy a set a rule still refers to (e.g.
   * another moat instance's, with another chain prefix), and that refusal is ignored.
   */
  async destroyUnreferencedSets(used: ReadonlySet<string>): Promise<void> {
    await this.destroySets((await this.ipsetNames()).filter((n) => !used.has(n)));
  }

  /**
   * Destroys the named ipsets, skipping any the kernel refuses (one a rule still refers to): one
   * `ipset restore` of `destroy` lines instead of a process per set (~8 ms each: ~2.4 s for the ~300
   * sets of a 10,000-endpoint host at uninstall). The restore stops at the first refusal and names its
   * line; the sets after it go in the next restore. A name that is not plain text goes by itself,
   * as an argument.
   */
  async destroySets(sets: string[]): Promise<void> {
    const netns = this.options.netns;
    const plain = (n: string) => /^[A-Za-z0-9_.:-]{1,31}$/.test(n);
    for (const n of sets.filter((x) => !plain(x))) await run('ipset', ['destroy', n], { netns });
    let rest = sets.filter(plain);
    // Each round destroys at least one set or skips the one refused: at most one round per set.
    for (let round = 0; rest.length && round <= sets.length; round++) {
      const r = await run('ipset', ['restore'], { input: rest.map((n) => `destroy ${n}\n`).join(''), netns });
      if (r.code === 0) return;
      const line = Number(/Error in line (\d+)/.exec(r.stderr)?.[1]);
      if (!(line >= 1 && line <= rest.length)) {
        // Not a refusal of one line: each set by itself, its own error ignored as before.
        for (const n of rest) await run('ipset', ['destroy', n], { netns });
        return;
      }
      rest = rest.slice(line);
    }
  }

  /**
   * Chains by their rules' comments (what the plan can be compared with), and digests of every moat
   * chain's whole rules in both families and of every moat ipset's members: a rule edited in place
   * with its comment kept, or an `ipset add`, changes a digest.
   */
  async readBack(): Promise<RulesetSummary> {
    const st = await this.familyState(4);
    if (st.moatChains.length === 0) return emptySummary();
    const n = names(this.options);
    const s: RulesetSummary = { present: true, sets: {}, maps: {}, chains: {}, ruleDigest: {} };
    for (const c of st.moatChains) {
      // Dispatch chains stand for the verdict maps, which iptables read-back does not report; log
      // chains (NFLOG + DROP per log prefix) are part of the drop rules that go to them.
      if (n.isHelper(c)) continue;
      const plain = c === n.chainPrefix ? 'forward' : c === `${n.chainPrefix}-INPUT` ? 'input' : c === `${n.chainPrefix}-OUTPUT` ? 'output' : c.slice(n.chainPrefix.length + 1);
      s.chains[plain] = st.rules[c] ?? [];
    }
    for (const f of this.families()) {
      const fs = f === 4 ? st : await this.familyState(6);
      for (const c of fs.moatChains) s.ruleDigest![`${f === 4 ? 'iptables' : 'ip6tables'} ${c}`] = digestOf(fs.lines[c] ?? []);
    }
    Object.assign(s.ruleDigest!, await this.ipsetDigests());
    return s;
  }

  /**
   * What read-back should report for this plan: its chains in iptables' places (render.ts
   * `iptablesPlan`) and their rules; no sets or maps, whose names iptables does not keep.
   */
  expectedSummary(plan: RulesetPlan): RulesetSummary {
    const s = planSummary(iptablesPlan(plan));
    s.sets = {};
    s.maps = {};
    return s;
  }

  /** A digest of each moat ipset's members (`ipset <name>` -> digest), from one `ipset save`. */
  async ipsetDigests(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, members] of await this.ipsetMembers()) out[`ipset ${name}`] = digestOf(members.map(ipsetMember).sort());
    return out;
  }

  async remove(): Promise<void> {
    lastRestore.delete(names(this.options).chainPrefix);
    for (const f of this.families()) {
      const st = await this.familyState(f);
      if (st.moatChains.length === 0) continue;
      await runOk(this.tool(f, 'restore'), ['--noflush'], { input: renderRemove(f, st.jumps, st.moatChains, this.options), netns: this.options.netns });
    }
    await this.destroySets(await this.ipsetNames());
  }
}

/** Parses `iptables-save -t filter` output. */
export function parseSave(text: string, chainPrefix: string): FamilyState {
  const existingChains: string[] = [];
  const existingJumps: string[] = [];
  const moatChains: string[] = [];
  const rules: Record<string, string[]> = {};
  const lines: Record<string, string[]> = {};
  const sets = new Set<string>();
  let inFilter = false;
  const isMoat = (c: string) => c === chainPrefix || c.startsWith(`${chainPrefix}-`);
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const decl = /^:(\S+)/.exec(line);
    if (decl) {
      existingChains.push(decl[1]);
      if (isMoat(decl[1])) moatChains.push(decl[1]);
      continue;
    }
    const a = /^-A (\S+) (.*)$/.exec(line);
    if (!a) continue;
    const j = / -j (\S+)/.exec(` ${a[2]}`);
    if (j && /^-j \S+$/.test(a[2].trim())) existingJumps.push(`${a[1]}>${j[1]}`);
    if (isMoat(a[1])) {
      const c = /--comment "?([^"]*?)"?(?: -|$)/.exec(a[2]);
      (rules[a[1]] ??= []).push(c ? c[1] : '');
      (lines[a[1]] ??= []).push(line);
      for (const m of a[2].matchAll(/--match-set (\S+)/g)) sets.add(m[1]);
    }
  }
  return { jumps: { existingChains, existingJumps }, moatChains, rules, lines, sets: [...sets] };
}

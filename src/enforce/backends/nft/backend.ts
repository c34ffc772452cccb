// The nftables backend: check (`nft -c -f -`), apply (one `nft -f -` transaction), read back
// (`nft -j list table inet NAME`), remove. moat's own table only; Docker's tables are never touched.
import { run, runOk, CommandError } from '../../exec.js';
import type { RulesetPlan } from '../../plan-model.js';
import { emptySummary, planSummary, type RulesetSummary } from '../../summary.js';
import { renderDelete, renderReplace, tableName } from './render.js';
import { createHash } from 'node:crypto';
import { sharedNetlink as netlinkSocket, type ElementChange, type NftNetlink } from './netlink.js';
import { applyElements, applyTableChange, replaceTable, type TableChange } from './netlink-table.js';

export interface NftOptions {
  table?: string;
  /** Run inside this network namespace (tests). */
  netns?: string;
  nftPath?: string;
  /**
   * Write to the kernel over netlink instead of `nft -f` (default true): whole-table replaces and
   * element-only changes. Not possible with `netns` (the socket lives in this process's namespace)
   * or when the netlink module cannot load.
   */
  netlink?: boolean;
}

export class NftBackend {
  readonly kind = 'nft' as const;
  readonly table: string;
  constructor(readonly options: NftOptions = {}) {
    this.table = tableName(options);
  }

  private nft(args: string[], input?: string): Promise<string> {
    return runOk(this.options.nftPath ?? 'nft', args, { input, netns: this.options.netns });
  }

  render(plan: RulesetPlan): string {
    return renderReplace(plan, { table: this.table });
  }

  /** Checks a script without touching the kernel; throws CommandError with nft's message. */
  async check(script: string): Promise<void> {
    await this.nft(['-c', '-f', '-'], script);
  }

  /** Checks, then applies in one transaction. A failure leaves the kernel as it was. */
  async applyScript(script: string): Promise<void> {
    await this.check(script);
    await this.nft(['-f', '-'], script);
  }

  /**
   * Applies an incremental script (element and chain changes) without a separate check: `nft -f` is
   * one transaction, so a failing command (e.g. deleting an element the kernel does not hold) leaves
   * the kernel as it was.
   */
  async applyIncrementalScript(script: string): Promise<void> {
    await this.nft(['-f', '-'], script);
  }

  /**
   * Replaces the table with the plan in one transaction. Over netlink when it can: the nf_tables
   * batch built from the plan (netlink-table.ts), checked first, when `check`, by the same batch
   * without its commit. Else, or when the kernel refuses the netlink batch, `nft -f` of the rendered
   * script (checked first by `nft -c`), so nft's own message names any real problem. Returns how it
   * went, and why netlink was not used when it could have been.
   */
  async replace(plan: RulesetPlan, opts: { check?: boolean } = {}): Promise<{ via: 'netlink' | 'nft'; script?: string; fallback?: string }> {
    const check = opts.check !== false;
    const nl = this.netlinkAvailable ? netlinkSocket() : undefined;
    let fallback: string | undefined;
    if (nl) {
      try {
        if (check) await replaceTable(nl, plan, this.table, { check: true });
        await replaceTable(nl, plan, this.table);
        return { via: 'netlink' };
      } catch (e) {
        // The kernel kept what it had: the batch is committed whole or not at all.
        fallback = (e as Error).message;
      }
    }
    const script = this.render(plan);
    if (check) await this.applyScript(script);
    else await this.applyIncrementalScript(script);
    return { via: 'nft', script, fallback };
  }

  /** The nf_tables generation (bumped by every commit, by anyone), when netlink can be used here. */
  async generation(): Promise<number | undefined> {
    if (!this.netlinkAvailable) return undefined;
    try {
      return await netlinkSocket()!.generation();
    } catch {
      return undefined;
    }
  }

  /** Whether element changes can go over netlink here. */
  get netlinkAvailable(): boolean {
    return this.options.netlink !== false && this.options.netns === undefined && netlinkSocket() !== undefined;
  }

  /**
   * Applies element additions and deletions in one netlink transaction (no `nft` process, no cache
   * load). Throws when any of them fails; the kernel then keeps what it had.
   */
  async applyElements(changes: ElementChange[]): Promise<void> {
    await applyElements(this.socket(), this.table, changes);
  }

  /** The netlink socket, for a change that must go over it. */
  private socket(): NftNetlink {
    const nl = this.netlinkAvailable ? netlinkSocket() : undefined;
    if (!nl) throw new Error('netlink is not available here');
    return nl;
  }

  /**
   * Applies an incremental change with new or removed sets and chains (netlink-table.ts
   * encodeChangeBatch) in one netlink transaction: no `nft` process, which would first load the
   * whole table into its cache. Throws when the kernel refuses any part; it then keeps what it had.
   */
  async applyChange(change: TableChange, group: number, existing: ReadonlySet<string>): Promise<void> {
    await applyTableChange(this.socket(), change, this.table, group, existing);
  }

  async exists(): Promise<boolean> {
    const r = await run(this.options.nftPath ?? 'nft', ['list', 'table', 'inet', this.table], { netns: this.options.netns });
    return r.code === 0;
  }

  async listJson(): Promise<unknown[] | undefined> {
    const r = await run(this.options.nftPath ?? 'nft', ['-j', 'list', 'table', 'inet', this.table], { netns: this.options.netns });
    if (r.code !== 0) {
      if (/No such file or directory|does not exist/i.test(r.stderr)) return undefined;
      throw new CommandError(['nft', '-j', 'list', 'table', 'inet', this.table], r);
    }
    return (JSON.parse(r.stdout) as { nftables: unknown[] }).nftables;
  }

  /** What read-back should report for this plan. */
  expectedSummary(plan: RulesetPlan): RulesetSummary {
    return planSummary(plan);
  }

  async readBack(): Promise<RulesetSummary> {
    const items = await this.listJson();
    return items ? summaryFromNftJson(items) : emptySummary();
  }

  async remove(): Promise<void> {
    await this.nft(['-f', '-'], renderDelete({ table: this.table }));
  }
}

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function elemValue(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as J;
  if (o?.elem) return elemValue(o.elem.val);
  if (o?.prefix) return `${o.prefix.addr}/${o.prefix.len}`;
  if (o?.range) return `${o.range[0]}-${o.range[1]}`;
  return JSON.stringify(v);
}

/** Summary of `nft -j list table` output (sets, verdict maps, rule comments per chain). */
export function summaryFromNftJson(items: unknown[]): RulesetSummary {
  const s: RulesetSummary = { present: true, sets: {}, maps: {}, chains: {}, ruleDigest: {} };
  const digests = new Map<string, ReturnType<typeof createHash>>();
  for (const it of items as J[]) {
    if (it.set) s.sets[it.set.name] = (it.set.elem ?? []).map(elemValue).sort();
    else if (it.map) {
      const m: Record<string, string> = {};
      for (const pair of it.map.elem ?? []) {
        const [k, v] = pair as [unknown, J];
        m[elemValue(k)] = v?.jump?.target ?? v?.goto?.target ?? (v && typeof v === 'object' && 'accept' in v ? 'accept' : JSON.stringify(v));
      }
      s.maps[it.map.name] = m;
    } else if (it.chain) s.chains[it.chain.name] ??= [];
    else if (it.rule) {
      (s.chains[it.rule.chain] ??= []).push(it.rule.comment ?? '');
      let h = digests.get(it.rule.chain);
      if (!h) digests.set(it.rule.chain, (h = createHash('sha256')));
      h.update(JSON.stringify(it.rule.expr, (k, v) => (k === 'packets' || k === 'bytes' ? 0 : v)));
      h.update(`\u0000${it.rule.comment ?? ''}\n`);
    }
  }
  for (const c of Object.keys(s.chains)) s.ruleDigest![c] = digests.get(c)?.digest('hex').slice(0, 16) ?? 'empty';
  return s;
}

/** Counters of drop rules: chain, comment, packets, bytes (for monitoring and tests). */
export function dropCounters(items: unknown[]): { chain: string; comment: string; packets: number; bytes: number }[] {
  const out = [];
  for (const it of items as J[]) {
    if (!it.rule) continue;
    const c = (it.rule.expr as J[]).find((e) => e.counter);
    if (c) out.push({ chain: it.rule.chain as string, comment: (it.rule.comment ?? '') as string, packets: c.counter.packets as number, bytes: c.counter.bytes as number });
  }
  return out;
}

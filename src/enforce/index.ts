// Enforcement entry points for the CLI and the controller: plan, apply, rollback, uninstall.
// (doctor and verify live in doctor.ts and verify.ts.)
import type { PolicySet } from '../model/ir.js';
import type { World } from '../model/world.js';
import { IptablesBackend, type IptablesOptions } from './backends/iptables/backend.js';
import { NftBackend } from './backends/nft/backend.js';
import { compile, type CompileOptions } from './compile/compile.js';
import { buildEnforcementInput, type InputOptions } from './compile/input.js';
import { capacitiesOf, type RulesetPlan } from './plan-model.js';
import { incrementalScript, type IncrementalChanges } from './incremental.js';
import { DEFAULT_STATE_DIR, dropNewest, kernelInstance, loadApplied, saveApplied, clearApplied, type AppliedRecord } from './state.js';
import { diffSummaries, formatDiff, type RulesetDiff } from './summary.js';

export type BackendKind = 'nft' | 'iptables';

export interface EnforceOptions extends CompileOptions, InputOptions {
  backend?: BackendKind;
  /** nft table name (default `moat`). */
  table?: string;
  /** iptables chain prefix (default MOAT) and ipset prefix (default moat). */
  chainPrefix?: string;
  setPrefix?: string;
  ipv6?: boolean;
  /** Where the last applied rulesets are kept (default /var/lib/moat). */
  stateDir?: string;
  /** Run the backend inside a network namespace (tests). */
  netns?: string;
  /**
   * nft: check the script with `nft -c` before applying it (default true). The `nft -f` transaction
   * is atomic on its own, so a controller may skip the check to halve the apply time.
   */
  check?: boolean;
  /** nft: element-only incremental changes over netlink (default true; see NftOptions.netlink). */
  netlink?: boolean;
  /**
   * Record the applied plan in the state directory for `rollback` (default true). A controller
   * keeps its own and writes the record once events go quiet (at 10,000 endpoints it is ~5 MB).
   */
  record?: boolean;
  /**
   * nft, `apply`: send only the difference from the last recorded plan when the kernel provably
   * still holds it (its nf_tables generation is the one recorded right after that commit); default
   * true. False: always replace the whole table. iptables: false declares and fills every chain,
   * not only those whose rules differ from the kernel's.
   */
  incremental?: boolean;
}

/**
 * The generation mark for a record: the generation after our commit, if ours was the only commit
 * since `before` (see AppliedRecord.generation).
 */
async function generationMark(b: NftBackend, before: number | undefined): Promise<AppliedRecord['generation']> {
  if (before === undefined) return undefined;
  const after = await b.generation();
  const instance = kernelInstance();
  return after === before + 1 && instance ? { instance, value: after } : undefined;
}

export function backendFor(options: EnforceOptions): NftBackend | IptablesBackend {
  if ((options.backend ?? 'nft') === 'nft') return new NftBackend({ table: options.table, netns: options.netns, netlink: options.netlink });
  const o: IptablesOptions = { chainPrefix: options.chainPrefix, setPrefix: options.setPrefix, netns: options.netns, ipv6: options.ipv6 };
  return new IptablesBackend(o);
}

/** Compiles without touching the kernel. Throws UserError for bad input (nothing applied). */
export function compilePlan(world: World, policies: PolicySet, options: EnforceOptions = {}): RulesetPlan {
  return compile(buildEnforcementInput(world, policies, options), options);
}

export interface PlanResult {
  plan: RulesetPlan;
  diff: RulesetDiff;
  text: string;
  /** The script that apply would give the kernel (nft) or the iptables-restore texts. */
  script: string;
  warnings: string[];
}

async function scriptOf(b: NftBackend | IptablesBackend, plan: RulesetPlan): Promise<string> {
  if (b instanceof NftBackend) return b.render(plan);
  const s = await b.render(plan);
  return `# ipset restore\n${s.ipset}# iptables-restore --noflush\n${s.v4}${s.v6 ? `# ip6tables-restore --noflush\n${s.v6}` : ''}`;
}

/**
 * nft: the last recorded plan when the kernel provably still holds it (the generation recorded right
 * after its commit is still the kernel's: nobody committed since; AppliedRecord.generation), else
 * undefined. Also its capacities, which a compile keeps (CompileOptions.capacities) so that the
 * difference stays element and chain changes.
 */
async function heldPlan(b: NftBackend | IptablesBackend, options: EnforceOptions): Promise<{ plan: RulesetPlan; capacities: Map<string, number> } | undefined> {
  if (!(b instanceof NftBackend) || options.incremental === false || !b.netlinkAvailable) return undefined;
  const last = loadApplied(options.stateDir ?? DEFAULT_STATE_DIR, 'nft');
  const mark = last?.generation;
  if (!last || !mark || last.target !== b.table || mark.instance !== kernelInstance() || (await b.generation()) !== mark.value) return undefined;
  return { plan: last.plan, capacities: capacitiesOf(last.plan) };
}

/**
 * What would change in the kernel (text and JSON-able diff). Against the table read back, or, when
 * the kernel provably holds the last recorded plan (heldPlan), against that plan without reading
 * the table (`nft -j list table` takes ~1.1 s at 10,000 endpoints); the diff is what `apply` sends.
 */
export async function plan(world: World, policies: PolicySet, options: EnforceOptions = {}): Promise<PlanResult> {
  const b = backendFor(options);
  const held = await heldPlan(b, options);
  const p = compilePlan(world, policies, held ? { ...options, capacities: held.capacities } : options);
  const current = held ? b.expectedSummary(held.plan) : await b.readBack();
  const diff = diffSummaries(current, b.expectedSummary(p));
  return { plan: p, diff, text: formatDiff(diff), script: await scriptOf(b, p), warnings: p.warnings };
}

export interface ApplyResult {
  backend: BackendKind;
  plan: RulesetPlan;
  /** The ruleset as text (nft: the `nft -f` script, rendered when first read; iptables: the restore inputs). */
  script: string;
  /** nft: how the table reached the kernel (one netlink batch, or `nft -f`) and why not netlink when it could have. */
  via?: 'netlink' | 'nft';
  fallback?: string;
  warnings: string[];
  /** `apply`: the whole table replaced, only the difference sent, or nothing to send. */
  mode?: 'full' | 'incremental' | 'unchanged';
  /** Why the difference alone could not be sent (mode `full` after an attempt). */
  reason?: string;
  changes?: IncrementalChanges;
}

/** Applies a compiled plan atomically (checked first) and records it for rollback. */
export async function applyPlan(p: RulesetPlan, options: EnforceOptions = {}): Promise<ApplyResult> {
  const b = backendFor(options);
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const appliedAt = new Date().toISOString();
  if (b instanceof NftBackend) {
    const record = options.record !== false;
    const before = record ? await b.generation() : undefined;
    const r = await b.replace(p, { check: options.check });
    // Over netlink no text reached the kernel: the record says so and keeps the plan, which renders the same table.
    if (record) saveApplied(stateDir, { backend: 'nft', target: b.table, appliedAt, plan: p, script: r.script ?? '', via: r.via, generation: await generationMark(b, before) });
    let script = r.script;
    return {
      backend: 'nft',
      plan: p,
      get script() {
        return (script ??= b.render(p));
      },
      via: r.via,
      fallback: r.fallback,
      warnings: p.warnings,
    };
  }
  const s = await b.apply(p, { full: options.incremental === false });
  const script = `${s.ipset}\n${s.v4}\n${s.v6 ?? ''}`;
  if (options.record !== false) saveApplied(stateDir, { backend: b.kind, target: 'MOAT', appliedAt, plan: p, script });
  return { backend: b.kind, plan: p, script, warnings: p.warnings };
}

/**
 * Compile then apply. A policy that fails to compile throws before anything reaches the kernel.
 * nft: when the kernel provably holds the last recorded plan (the generation recorded right after
 * its commit is still the kernel's), only the difference is sent, as one atomic transaction
 * (applyIncremental: a change batch over netlink; a whole replace if the kernel refuses it); else
 * the whole table is replaced. The result says which (`mode`).
 */
export async function apply(world: World, policies: PolicySet, options: EnforceOptions = {}): Promise<ApplyResult> {
  const b = backendFor(options);
  const held = await heldPlan(b, options);
  if (held && b instanceof NftBackend) {
    const p = compilePlan(world, policies, { ...options, capacities: held.capacities });
    const r = await applyIncremental(held.plan, p, options);
    return {
      backend: 'nft',
      plan: p,
      get script() {
        return r.mode === 'full' ? r.script : b.render(p);
      },
      via: r.via,
      warnings: p.warnings,
      mode: r.mode,
      reason: r.reason,
      changes: r.changes,
    };
  }
  const r = await applyPlan(compilePlan(world, policies, options), options);
  r.mode = 'full';
  return r;
}

export interface IncrementalResult {
  /** `incremental`: element/map/chain changes only; `full`: a whole-table replace (or the iptables backend). */
  mode: 'incremental' | 'full' | 'unchanged';
  /** Why a full replace was needed. */
  reason?: string;
  script: string;
  changes?: IncrementalChanges;
  /** How an incremental change reached the kernel: one netlink batch, or `nft -f` of the script. */
  via?: 'netlink' | 'nft';
}

/**
 * Takes the kernel from `previous` (the plan it holds; default: the last one recorded in the state
 * directory) to `next` with only element, map and chain changes in one `nft -f` transaction. When
 * that is not possible (base chains or a chain's rules changed, no previous plan, the kernel does not
 * hold `previous`, or the iptables backend) it falls back to a full atomic apply. A failing
 * transaction changes nothing in the kernel.
 */
export async function applyIncremental(previous: RulesetPlan | undefined, next: RulesetPlan, options: EnforceOptions = {}): Promise<IncrementalResult> {
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const b = backendFor(options);
  const full = async (reason: string): Promise<IncrementalResult> => {
    const r = await applyPlan(next, options);
    return {
      mode: 'full',
      reason,
      get script() {
        return r.script;
      },
    };
  };
  if (!(b instanceof NftBackend)) return full('the iptables backend applies by iptables-restore (the chains whose rules differ)');
  const prev = previous ?? loadApplied(stateDir, 'nft')?.plan;
  if (!prev) return full('no previous plan');
  const d = incrementalScript(prev, next, { table: b.table });
  if (!d.incremental) return full(d.reason);
  if (d.empty) return { mode: 'unchanged', script: '', changes: d.changes };
  const record = options.record !== false;
  const before = record ? await b.generation() : undefined;
  let via: IncrementalResult['via'] = 'nft';
  try {
    if (b.netlinkAvailable) {
      // One netlink batch: element changes, and new or removed sets and chains (a policy change).
      via = 'netlink';
      if (d.elementOps) await b.applyElements(d.elementOps);
      else await b.applyChange(d.netlink.change, next.nflogGroup, d.netlink.existing);
    } else await b.applyIncrementalScript(d.script);
  } catch (e) {
    return full(`incremental transaction failed (the kernel did not hold the previous plan?): ${(e as Error).message.split('\n')[0]}`);
  }
  if (record) saveApplied(stateDir, { backend: 'nft', target: b.table, appliedAt: new Date().toISOString(), plan: next, script: d.script, via, generation: await generationMark(b, before) });
  return { mode: 'incremental', via, script: d.script, changes: d.changes };
}

/** Re-applies the ruleset applied before the last one. Returns false when there is none. */
export async function rollback(options: EnforceOptions = {}): Promise<boolean> {
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const kind = options.backend ?? 'nft';
  const previous = loadApplied(stateDir, kind, 1);
  if (!previous) return false;
  const b = backendFor(options);
  if (b instanceof NftBackend) await b.replace(previous.plan);
  else await b.apply(previous.plan);
  dropNewest(stateDir, kind);
  return true;
}

/** Removes everything moat added; the host's ruleset is as before moat. */
export async function uninstall(options: EnforceOptions = {}): Promise<void> {
  const b = backendFor(options);
  await b.remove();
  clearApplied(options.stateDir ?? DEFAULT_STATE_DIR, b.kind);
}

export { compile } from './compile/compile.js';
export { buildEnforcementInput } from './compile/input.js';
export type { RulesetPlan } from './plan-model.js';
export { incrementalScript, type IncrementalChanges, type IncrementalDiff } from './incremental.js';

// The last applied rulesets, kept on disk for `rollback` and for incremental updates.
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { currentPlanShape, type RulesetPlan } from './plan-model.js';

export const DEFAULT_STATE_DIR = '/var/lib/moat';
const KEEP = 5;

export interface AppliedRecord {
  backend: 'nft' | 'iptables';
  /** nft table or iptables chain prefix. */
  target: string;
  appliedAt: string;
  plan: RulesetPlan;
  /** The exact text given to the kernel (nft over netlink: none, the plan renders the same table). */
  script: string;
  /** nft: one netlink batch or `nft -f`. */
  via?: 'netlink' | 'nft';
  /**
   * nft: the nf_tables generation right after this record's commit, when that commit was the only
   * one (the generation moved by exactly one), and the kernel instance it counts in (boot id and
   * network namespace: the counter is per namespace and starts again at boot). While the kernel's
   * generation is still this one, nobody has committed since, so the kernel holds exactly this plan
   * and the next `moat apply` may send only the difference.
   */
  generation?: { instance: string; value: number };
}

function dir(stateDir: string, backend: string): string {
  const d = join(stateDir, 'enforce', backend);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Saves a record as the newest; keeps the last few. Written atomically (rename). */
export function saveApplied(stateDir: string, rec: AppliedRecord): void {
  const d = dir(stateDir, rec.backend);
  const existing = listApplied(stateDir, rec.backend);
  const seq = existing.length ? existing[existing.length - 1].seq + 1 : 1;
  const file = join(d, `applied-${String(seq).padStart(8, '0')}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(rec));
  renameSync(`${file}.tmp`, file);
  for (const old of existing.slice(0, Math.max(0, existing.length + 1 - KEEP))) unlinkSync(old.file);
}

export function listApplied(stateDir: string, backend: 'nft' | 'iptables'): { seq: number; file: string }[] {
  const d = join(stateDir, 'enforce', backend);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => /^applied-\d{8}\.json$/.test(f))
    .sort()
    .map((f) => ({ seq: Number(f.slice(8, 16)), file: join(d, f) }));
}

/** The n-th newest record (0 = last applied). */
export function loadApplied(stateDir: string, backend: 'nft' | 'iptables', back = 0): AppliedRecord | undefined {
  const all = listApplied(stateDir, backend);
  const item = all[all.length - 1 - back];
  if (!item) return undefined;
  const rec = JSON.parse(readFileSync(item.file, 'utf8')) as AppliedRecord;
  return { ...rec, plan: currentPlanShape(rec.plan) };
}

/** Drops the newest record (after a rollback re-applied the one before it). */
export function dropNewest(stateDir: string, backend: 'nft' | 'iptables'): void {
  const all = listApplied(stateDir, backend);
  const last = all[all.length - 1];
  if (last) unlinkSync(last.file);
}

export function clearApplied(stateDir: string, backend: 'nft' | 'iptables'): void {
  for (const r of listApplied(stateDir, backend)) unlinkSync(r.file);
}

/** This kernel boot and this process's network namespace (where an nf_tables generation counts), or undefined. */
export function kernelInstance(): string | undefined {
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${statSync('/proc/self/ns/net').ino}`;
  } catch {
    return undefined;
  }
}

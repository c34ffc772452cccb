// Drift: what the kernel holds against what moat last applied. moat's own table (nft) or chains
// (iptables) flushed, edited or deleted by someone else (an admin, a ufw or firewalld reload), and the
// FORWARD -> DOCKER-USER jump that the iptables backend depends on.
import { IptablesBackend } from '../enforce/backends/iptables/backend.js';
import type { NftBackend } from '../enforce/backends/nft/backend.js';
import type { RulesetPlan } from '../enforce/plan-model.js';
import { diffSummaries, type RulesetDiff, type RulesetSummary } from '../enforce/summary.js';
import { run } from '../enforce/exec.js';

export interface DriftReport {
  drifted: boolean;
  /** Short human descriptions, e.g. `table missing`, `chain forward: rules changed`. */
  findings: string[];
  diff?: RulesetDiff;
  /** Whether FORWARD jumps to DOCKER-USER (undefined when it could not be read). */
  dockerUserJump?: boolean;
}

/** Differences between the summary of the plan and the kernel's, in words. */
export function describeDrift(expected: RulesetSummary, actual: RulesetSummary): { drifted: boolean; findings: string[]; diff: RulesetDiff } {
  const diff = diffSummaries(actual, expected);
  const findings: string[] = [];
  if (!actual.present && expected.present) findings.push("moat's ruleset is missing from the kernel");
  else {
    for (const c of diff.chainsAdded) findings.push(`chain ${c} missing`);
    for (const c of diff.chainsChanged) findings.push(`chain ${c}: rules differ (${(actual.chains[c] ?? []).length} in the kernel, ${(expected.chains[c] ?? []).length} expected)`);
    for (const c of diff.chainsRemoved) findings.push(`chain ${c} added by someone else`);
    for (const s of diff.setsAdded) findings.push(`set ${s} missing`);
    for (const s of diff.setsRemoved) findings.push(`set ${s} added by someone else`);
    for (const s of diff.sets) if (!diff.setsAdded.includes(s.name)) findings.push(`set ${s.name}: ${s.removed.length} unexpected, ${s.added.length} missing element(s)`);
    for (const m of diff.maps) findings.push(`map ${m.name}: ${Object.keys(m.removed).length} unexpected, ${Object.keys(m.added).length} missing, ${Object.keys(m.changed).length} changed element(s)`);
  }
  return { drifted: !diff.unchanged, findings, diff };
}

/** Parses `iptables-save -t filter` for a `-A FORWARD -j DOCKER-USER` rule. Undefined when there is no DOCKER-USER chain. */
export function hasDockerUserJump(save: string): boolean | undefined {
  if (!/^:DOCKER-USER /m.test(save)) return undefined;
  return /^-A FORWARD -j DOCKER-USER\s*$/m.test(save);
}

/**
 * From one `iptables-save -t filter`: the FORWARD -> DOCKER-USER jump, and (with `chainPrefix`) whether
 * moat's forward chain is jumped from DOCKER-USER (or FORWARD where there is no DOCKER-USER).
 */
export async function readJumps(netns?: string, chainPrefix?: string): Promise<{ dockerUserJump?: boolean; moatJump?: boolean }> {
  const r = await run('iptables-save', ['-t', 'filter'], { netns, timeoutMs: 10_000 });
  if (r.code !== 0) return {};
  const save = r.stdout;
  const out: { dockerUserJump?: boolean; moatJump?: boolean } = { dockerUserJump: hasDockerUserJump(save) };
  if (chainPrefix) {
    const from = /^:DOCKER-USER /m.test(save) ? 'DOCKER-USER' : 'FORWARD';
    out.moatJump = new RegExp(`^-A ${from} -j ${chainPrefix}\\s*$`, 'm').test(save);
  }
  return out;
}

/** Puts the FORWARD -> DOCKER-USER jump back (what dockerd itself does at start), first in FORWARD. */
export async function restoreDockerUserJump(netns?: string): Promise<void> {
  const r = await run('iptables', ['-w', '5', '-I', 'FORWARD', '1', '-j', 'DOCKER-USER'], { netns, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`iptables -I FORWARD -j DOCKER-USER failed: ${r.stderr.trim()}`);
}

/** Chains whose rules' content differs from the reference digests (rules edited in place). */
export function editedChains(reference: Record<string, string> | undefined, actual: RulesetSummary): string[] {
  if (!reference || !actual.ruleDigest) return [];
  return Object.keys(reference).filter((c) => actual.ruleDigest![c] !== undefined && actual.ruleDigest![c] !== reference[c]);
}

/**
 * Compares the kernel with the plan moat applied last. `ruleDigest`: the rules' digests read back
 * right after moat's last rule change, to catch a rule edited in place with its comment kept.
 */
export async function detectDrift(
  backend: NftBackend | IptablesBackend,
  plan: RulesetPlan,
  options: { checkJump?: boolean; netns?: string; ruleDigest?: Record<string, string>; expected?: RulesetSummary } = {},
): Promise<DriftReport & { actual: RulesetSummary }> {
  // iptables: one plan rule becomes several iptables rules (NFLOG + DROP, one per port chunk, the
  // dispatch of a verdict map), so the reference is what the kernel held right after moat's apply.
  const expected = options.expected ?? backend.expectedSummary(plan);
  const actual = await backend.readBack();
  const d = describeDrift(expected, actual);
  const report: DriftReport & { actual: RulesetSummary } = { drifted: d.drifted, findings: d.findings, diff: d.diff, actual };
  for (const c of editedChains(options.ruleDigest, actual)) {
    if (d.diff.chainsChanged.includes(c)) continue;
    report.drifted = true;
    report.findings.push(c.startsWith('ipset ') ? `${c}: its members were changed` : `chain ${c}: a rule was edited in place`);
  }
  if (options.checkJump !== false) {
    const jumps = await readJumps(options.netns, backend instanceof IptablesBackend ? (backend.options.chainPrefix ?? 'MOAT') : undefined);
    report.dockerUserJump = jumps.dockerUserJump;
    if (jumps.moatJump === false && actual.present) {
      report.drifted = true;
      report.findings.push("the jump to moat's chain is missing: its rules are bypassed");
    }
    if (report.dockerUserJump === false && backend instanceof IptablesBackend) {
      report.drifted = true;
      report.findings.push('FORWARD no longer jumps to DOCKER-USER: Docker fails open and moat\'s chains are bypassed');
    }
  }
  return report;
}

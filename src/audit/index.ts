// The auditor: runs the checks over Compose files, daemon.json, Dockerfiles and the live engine,
// applies suppressions, and returns one AuditResult for the reporters.
import { relative } from 'node:path';
import { formatDiagnostic, userError } from '../model/diagnostics.js';
import { loadPolicies } from '../policy/load.js';
import { composeToWorld, loadComposeProject, type ComposeProject } from '../sources/compose/index.js';
import { CHECKS } from './catalogue.js';
import { runProjectChecks } from './checks.js';
import { readDaemonJson, runDaemonChecks } from './daemon.js';
import { readDockerfile } from './dockerfile.js';
import { projectFactsFromCompose } from './facts.js';
import { auditLive } from './live.js';
import { applySuppressions, readSuppressionConfig } from './suppress.js';
import { severityRank, type AuditResult, type AuditSeverity, type Finding, type Suppression } from './types.js';

export * from './types.js';
export { CHECKS, checkById } from './catalogue.js';

export interface AuditOptions {
  /** Compose files (-f, merged in order). */
  composeFiles?: string[];
  projectName?: string;
  projectDirectory?: string;
  profiles?: string[];
  envFiles?: string[];
  /** Process environment for interpolation (default process.env). */
  env?: Record<string, string | undefined>;
  /** Policy files for the reachability checks (labels in the Compose files always count). */
  policies?: string[];
  daemonJson?: string;
  dockerfiles?: string[];
  live?: boolean;
  dockerHost?: string;
  /** Suppression config file. */
  config?: string;
  /** Honour inline `# moat-ignore` comments (default true). */
  inline?: boolean;
  /** Skip the reachability analysis. */
  noReachability?: boolean;
}

export interface AuditRun {
  result: AuditResult;
  /** The resolved Compose project, when Compose files were audited (for --fix). */
  project?: ComposeProject;
}

/** Runs every check of a resolved Compose project (no suppressions). */
export function auditComposeProject(project: ComposeProject, opts: { policies?: string[]; noReachability?: boolean } = {}): { findings: Finding[]; warnings: string[] } {
  const warnings = project.warnings.map((d) => formatDiagnostic(d));
  let facts;
  if (opts.noReachability) facts = projectFactsFromCompose(project);
  else {
    const world = composeToWorld(project);
    const labelPositions = (endpoint: { composeService?: string }, key: string) =>
      endpoint.composeService ? project.positionOf(['services', endpoint.composeService, 'labels', key]) : undefined;
    const p = loadPolicies(opts.policies ?? [], world, labelPositions, true);
    for (const d of p.diagnostics) warnings.push(formatDiagnostic(d));
    facts = projectFactsFromCompose(project, world, p.policySet);
  }
  const r = runProjectChecks(facts, 'compose');
  return { findings: r.findings, warnings: [...warnings, ...r.warnings] };
}

export async function runAudit(opts: AuditOptions): Promise<AuditRun> {
  const hasCompose = !!opts.composeFiles?.length;
  if (!hasCompose && !opts.daemonJson && !opts.dockerfiles?.length && !opts.live) {
    throw userError('audit.no-input', 'nothing to audit', { fix: 'Pass -f compose.yml, --daemon-json FILE, --dockerfile FILE or --live.' });
  }
  const findings: Finding[] = [];
  const warnings: string[] = [];
  const inputs: string[] = [];
  let project: ComposeProject | undefined;
  if (hasCompose) {
    project = await loadComposeProject({
      files: opts.composeFiles!,
      projectName: opts.projectName,
      projectDirectory: opts.projectDirectory,
      profiles: opts.profiles,
      envFiles: opts.envFiles,
      env: opts.env,
    });
    inputs.push(...project.files);
    const r = auditComposeProject(project, opts);
    findings.push(...r.findings);
    warnings.push(...r.warnings);
  }
  if (opts.daemonJson) {
    inputs.push(opts.daemonJson);
    findings.push(...runDaemonChecks(readDaemonJson(opts.daemonJson)));
  }
  for (const d of opts.dockerfiles ?? []) {
    inputs.push(d);
    findings.push(...readDockerfile(d));
  }
  if (opts.live) {
    const r = await auditLive({ dockerHost: opts.dockerHost, noReachability: opts.noReachability });
    inputs.push(r.origin);
    findings.push(...r.findings);
    warnings.push(...r.warnings);
  }
  let config: Suppression[] = [];
  if (opts.config) config = readSuppressionConfig(opts.config).entries;
  const s = applySuppressions(sortFindings(findings), config, opts.inline !== false);
  warnings.push(...s.warnings);
  return { result: { inputs, findings: s.findings, suppressed: s.suppressed, warnings, checks: [...CHECKS] }, project };
}

export function sortFindings(findings: Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      (a.service ?? '').localeCompare(b.service ?? '') ||
      severityRank(b.severity) - severityRank(a.severity) ||
      (a.pos?.file ?? '').localeCompare(b.pos?.file ?? '') ||
      (a.pos?.line ?? 0) - (b.pos?.line ?? 0) ||
      a.checkId.localeCompare(b.checkId),
  );
}

/** Whether any finding is at or above the threshold (the exit code of `--fail-on`). */
export function failsAt(result: AuditResult, threshold: AuditSeverity): boolean {
  return result.findings.some((f) => severityRank(f.severity) >= severityRank(threshold));
}

/** A path relative to `base` with forward slashes (SARIF and reports). */
export function relPath(file: string, base: string): string {
  const r = relative(base, file);
  return (r === '' ? file : r).split('\\').join('/');
}

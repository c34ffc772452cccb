// The auditor's data: checks (the catalogue), findings, suppressions and the result of a run.
import type { SourcePos } from '../model/diagnostics.js';

export type AuditSeverity = 'critical' | 'high' | 'medium' | 'low' | 'info';
export const SEVERITIES: readonly AuditSeverity[] = ['critical', 'high', 'medium', 'low', 'info'];

/** Higher is worse. */
export function severityRank(s: AuditSeverity): number {
  return SEVERITIES.length - SEVERITIES.indexOf(s);
}

export type CheckScope = 'service' | 'project' | 'daemon' | 'dockerfile';

export interface CheckDef {
  /** Stable id, used in reports, SARIF ruleId and `# moat-ignore ID`. */
  id: string;
  title: string;
  severity: AuditSeverity;
  scope: CheckScope;
  rationale: string;
  fix: string;
  /** Section of the seed tutorial the check comes from, e.g. `4.2`. */
  seed: string;
  /** CIS Docker Benchmark v1.6.0 recommendation, when one covers it. */
  cis?: string;
  /** Whether `--fix` can write a safe override for it. */
  autofix?: boolean;
}

export interface Finding {
  checkId: string;
  severity: AuditSeverity;
  /** One sentence about this instance. */
  message: string;
  /** Compose service (or live container name); absent for daemon/project-wide findings. */
  service?: string;
  /** Where it was written (file:line:col), when known. */
  pos?: SourcePos;
  /** What the finding is about, for JSON consumers and the fixer: e.g. {port: '0.0.0.0:5432->5432/tcp'}. */
  data?: Record<string, string | number | boolean>;
  /** `compose`, `daemon.json`, `live`, `dockerfile`. */
  source: 'compose' | 'daemon' | 'live' | 'dockerfile';
  /** The position is the service itself (the finding is about something missing). */
  atService?: boolean;
}

export interface Suppression {
  checkId: string;
  /** Limit to one service (config file). */
  service?: string;
  reason: string;
  /** Where the suppression was written. */
  pos?: SourcePos;
  origin: 'inline' | 'config';
}

export interface SuppressedFinding {
  finding: Finding;
  suppression: Suppression;
}

export interface AuditResult {
  /** Inputs that were audited, for the report header. */
  inputs: string[];
  findings: Finding[];
  suppressed: SuppressedFinding[];
  /** Warnings about the inputs (unset variables, unused suppressions...). */
  warnings: string[];
  /** Checks that ran (their definitions), for SARIF rules and the catalogue. */
  checks: CheckDef[];
}

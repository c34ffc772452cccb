// Reporters: human text (grouped by service), JSON, SARIF 2.1.0 (GitHub code scanning) and Markdown.
import type { Log, ReportingDescriptor, Result } from 'sarif';
import pc from 'picocolors';
import { checkById } from './catalogue.js';
import { relPath } from './index.js';
import { SEVERITIES, type AuditResult, type AuditSeverity, type CheckDef, type Finding } from './types.js';

export const AUDIT_FORMATS = ['text', 'json', 'sarif', 'md'] as const;
export type AuditFormat = (typeof AUDIT_FORMATS)[number];

export interface RenderOptions {
  /** Paths in reports are relative to this directory (default: cwd). */
  base?: string;
  color?: boolean;
  /** Tool version for SARIF. */
  version?: string;
}

function where(f: Finding, base: string): string {
  if (!f.pos) return '';
  const file = relPath(f.pos.file, base);
  return f.pos.line > 0 ? `${file}:${f.pos.line}:${f.pos.col}` : file;
}

function groupOf(f: Finding, base: string): string {
  if (f.service) return f.source === 'live' ? `container ${f.service}` : `service ${f.service}`;
  if (f.source === 'daemon') return `daemon ${f.pos ? relPath(f.pos.file, base) : ''}`.trim();
  if (f.source === 'dockerfile') return `Dockerfile ${f.pos ? relPath(f.pos.file, base) : ''}`.trim();
  if (f.source === 'live' && f.checkId.startsWith('daemon-')) return 'daemon (live engine)';
  return 'project';
}

function groups(findings: Finding[], base: string): Map<string, Finding[]> {
  const m = new Map<string, Finding[]>();
  for (const f of findings) {
    const g = groupOf(f, base);
    const list = m.get(g) ?? [];
    list.push(f);
    m.set(g, list);
  }
  return m;
}

function counts(findings: Finding[]): Record<AuditSeverity, number> {
  const c = { critical: 0, high: 0, medium: 0, low: 0, info: 0 };
  for (const f of findings) c[f.severity]++;
  return c;
}

export function renderText(r: AuditResult, opts: RenderOptions = {}): string {
  const base = opts.base ?? process.cwd();
  const c = pc.createColors(!!opts.color);
  const sevColor: Record<AuditSeverity, (s: string) => string> = { critical: (s) => c.bold(c.red(s)), high: c.red, medium: c.yellow, low: c.cyan, info: c.dim };
  const lines: string[] = [];
  lines.push(c.bold(`moat audit: ${r.inputs.map((i) => (i.includes('://') ? i : relPath(i, base))).join(', ')}`));
  const shownFix = new Set<string>();
  for (const [g, list] of groups(r.findings, base)) {
    lines.push('', c.bold(g));
    for (const f of list) {
      const loc = where(f, base);
      lines.push(`  ${sevColor[f.severity](f.severity.toUpperCase().padEnd(8))} ${c.bold(f.checkId)}  ${f.message}${loc ? `  ${c.dim(loc)}` : ''}`);
      if (!shownFix.has(f.checkId)) {
        shownFix.add(f.checkId);
        lines.push(`           ${c.dim('fix:')} ${checkById(f.checkId)?.fix ?? ''}`);
      }
    }
  }
  if (r.suppressed.length) {
    lines.push('', c.bold(`suppressed (${r.suppressed.length})`));
    for (const s of r.suppressed) {
      const how = s.suppression.origin === 'inline' ? 'moat-ignore' : 'config';
      const at = s.suppression.pos ? ` at ${relPath(s.suppression.pos.file, base)}:${s.suppression.pos.line}` : '';
      lines.push(`  ${s.finding.checkId} ${s.finding.service ? `(${s.finding.service}) ` : ''}${where(s.finding, base)}: ${how}${at}: ${s.suppression.reason || '(no reason given)'}`);
    }
  }
  for (const w of r.warnings) lines.push(`${c.yellow('warning:')} ${w.split('\n')[0]}`);
  const n = counts(r.findings);
  lines.push('', `${r.findings.length} finding${r.findings.length === 1 ? '' : 's'} (${SEVERITIES.map((s) => `${n[s]} ${s}`).join(', ')}), ${r.suppressed.length} suppressed`);
  return `${lines.join('\n')}\n`;
}

function findingJson(f: Finding, base: string) {
  const def = checkById(f.checkId);
  return {
    id: f.checkId,
    title: def?.title,
    severity: f.severity,
    service: f.service ?? null,
    source: f.source,
    message: f.message,
    file: f.pos ? relPath(f.pos.file, base) : null,
    line: f.pos && f.pos.line > 0 ? f.pos.line : null,
    column: f.pos && f.pos.col > 0 ? f.pos.col : null,
    fix: def?.fix,
    seed: def?.seed,
    cis: def?.cis ?? null,
    data: f.data ?? {},
  };
}

export function renderJson(r: AuditResult, opts: RenderOptions = {}): string {
  const base = opts.base ?? process.cwd();
  const out = {
    version: 1,
    inputs: r.inputs.map((i) => (i.includes('://') ? i : relPath(i, base))),
    summary: { ...counts(r.findings), total: r.findings.length, suppressed: r.suppressed.length },
    findings: r.findings.map((f) => findingJson(f, base)),
    suppressed: r.suppressed.map((s) => ({
      ...findingJson(s.finding, base),
      suppression: {
        origin: s.suppression.origin,
        reason: s.suppression.reason,
        file: s.suppression.pos ? relPath(s.suppression.pos.file, base) : null,
        line: s.suppression.pos?.line ?? null,
        service: s.suppression.service ?? null,
      },
    })),
    warnings: r.warnings,
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

const SARIF_LEVEL: Record<AuditSeverity, Result.level> = { critical: 'error', high: 'error', medium: 'warning', low: 'note', info: 'note' };
const SECURITY_SEVERITY: Record<AuditSeverity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '3.0', info: '1.0' };

function sarifRule(d: CheckDef): ReportingDescriptor {
  return {
    id: d.id,
    name: d.id.replace(/(^|-)([a-z])/g, (_m, _s, ch: string) => ch.toUpperCase()),
    shortDescription: { text: d.title },
    fullDescription: { text: d.rationale },
    help: { text: `${d.fix}\nSeed section ${d.seed}${d.cis ? `; CIS Docker Benchmark ${d.cis}` : ''}.`, markdown: `**Fix:** ${d.fix}\n\nSeed section ${d.seed}${d.cis ? ` · CIS Docker Benchmark ${d.cis}` : ''}.` },
    defaultConfiguration: { level: SARIF_LEVEL[d.severity] },
    properties: { tags: ['security', 'docker', ...(d.cis ? [`CIS-${d.cis}`] : [])], 'security-severity': SECURITY_SEVERITY[d.severity], precision: 'high' },
  };
}

function sarifResult(f: Finding, ruleIndex: number, base: string, suppressed?: { reason: string; origin: string }): Result {
  const res: Result = {
    ruleId: f.checkId,
    ruleIndex,
    level: SARIF_LEVEL[f.severity],
    message: { text: f.service ? `${f.service}: ${f.message}` : f.message },
  };
  if (f.pos) {
    const physicalLocation: NonNullable<Result['locations']>[number]['physicalLocation'] = {
      artifactLocation: { uri: encodeURI(relPath(f.pos.file, base)), uriBaseId: '%SRCROOT%' },
    };
    if (f.pos.line > 0) physicalLocation.region = { startLine: f.pos.line, startColumn: Math.max(1, f.pos.col) };
    res.locations = [{ physicalLocation }];
  } else if (f.service) {
    res.locations = [{ logicalLocations: [{ name: f.service, kind: 'resource' }] }];
  }
  res.partialFingerprints = { 'moat/v1': `${f.checkId}|${f.service ?? ''}|${f.pos ? relPath(f.pos.file, base) : ''}|${f.message}` };
  if (suppressed) res.suppressions = [{ kind: suppressed.origin === 'inline' ? 'inSource' : 'external', justification: suppressed.reason }];
  return res;
}

export function renderSarif(r: AuditResult, opts: RenderOptions = {}): string {
  const base = opts.base ?? process.cwd();
  const rules = r.checks.map(sarifRule);
  const index = new Map(r.checks.map((c, i) => [c.id, i]));
  const log: Log = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'moat', informationUri: 'https://github.com/moat/moat', semanticVersion: opts.version ?? '0.1.0', rules } },
        originalUriBaseIds: { '%SRCROOT%': { uri: `file://${base.endsWith('/') ? base : `${base}/`}` } },
        results: [
          ...r.findings.map((f) => sarifResult(f, index.get(f.checkId) ?? -1, base)),
          ...r.suppressed.map((s) => sarifResult(s.finding, index.get(s.finding.checkId) ?? -1, base, s.suppression)),
        ],
      },
    ],
  };
  return `${JSON.stringify(log, null, 2)}\n`;
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderMarkdown(r: AuditResult, opts: RenderOptions = {}): string {
  const base = opts.base ?? process.cwd();
  const n = counts(r.findings);
  const lines: string[] = ['# moat audit', '', `Inputs: ${r.inputs.map((i) => `\`${i.includes('://') ? i : relPath(i, base)}\``).join(', ')}`, ''];
  lines.push(`**${r.findings.length} findings**: ${SEVERITIES.map((s) => `${n[s]} ${s}`).join(', ')}; ${r.suppressed.length} suppressed.`, '');
  for (const [g, list] of groups(r.findings, base)) {
    lines.push(`## ${g}`, '', '| severity | check | finding | location |', '|---|---|---|---|');
    for (const f of list) lines.push(`| ${f.severity} | \`${f.checkId}\` | ${mdEscape(f.message)} | ${where(f, base) ? `\`${where(f, base)}\`` : ''} |`);
    lines.push('');
  }
  const used = [...new Set(r.findings.map((f) => f.checkId))];
  if (used.length) {
    lines.push('## How to fix', '');
    for (const id of used) {
      const d = checkById(id)!;
      lines.push(`- **\`${id}\`** (${d.title}): ${mdEscape(d.fix)} _Seed ${d.seed}${d.cis ? `, CIS ${d.cis}` : ''}._`);
    }
    lines.push('');
  }
  if (r.suppressed.length) {
    lines.push('## Suppressed', '', '| check | service | location | how | reason |', '|---|---|---|---|---|');
    for (const s of r.suppressed) {
      lines.push(`| \`${s.finding.checkId}\` | ${s.finding.service ?? ''} | ${where(s.finding, base) ? `\`${where(s.finding, base)}\`` : ''} | ${s.suppression.origin === 'inline' ? 'moat-ignore' : 'config'} | ${mdEscape(s.suppression.reason || '(no reason given)')} |`);
    }
    lines.push('');
  }
  if (r.warnings.length) {
    lines.push('## Warnings', '');
    for (const w of r.warnings) lines.push(`- ${mdEscape(w)}`);
    lines.push('');
  }
  return lines.join('\n');
}

export function renderAudit(r: AuditResult, format: AuditFormat, opts: RenderOptions = {}): string {
  switch (format) {
    case 'json':
      return renderJson(r, opts);
    case 'sarif':
      return renderSarif(r, opts);
    case 'md':
      return renderMarkdown(r, opts);
    default:
      return renderText(r, opts);
  }
}

// Suppressions: inline `# moat-ignore ID[,ID...] reason` comments (on the finding's line or the line
// above; for findings about a whole service, also on the service's name line) and a config file.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YNode } from 'yaml';
import { formatPos, UserError, type Diagnostic, type SourcePos } from '../model/diagnostics.js';
import { isCheckId } from './catalogue.js';
import type { Finding, SuppressedFinding, Suppression } from './types.js';

const INLINE = /#\s*moat-ignore\s+([A-Za-z0-9_*,-]+)(?:\s+(.*?))?\s*$/;

interface InlineSuppression extends Suppression {
  /** The comment is alone on its line (it applies to the next line), rather than after a value (its own line). */
  standalone: boolean;
}

export interface InlineIndex {
  /** file -> line -> suppressions written on that line. */
  byFile: Map<string, Map<number, InlineSuppression[]>>;
  warnings: string[];
}

/** Reads the `# moat-ignore` comments of a file (cached per index). */
function inlineOf(index: InlineIndex, file: string): Map<number, InlineSuppression[]> {
  let m = index.byFile.get(file);
  if (m) return m;
  m = new Map();
  index.byFile.set(file, m);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return m;
  }
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const hit = INLINE.exec(line);
    if (!hit) return;
    const pos: SourcePos = { file, line: i + 1, col: line.indexOf('#') + 1 };
    const reason = (hit[2] ?? '').trim();
    for (const id of hit[1].split(',').map((x) => x.trim()).filter(Boolean)) {
      if (id !== '*' && !isCheckId(id)) {
        index.warnings.push(`${formatPos(pos)}: moat-ignore names unknown check "${id}"`);
        continue;
      }
      if (!reason) index.warnings.push(`${formatPos(pos)}: moat-ignore ${id} gives no reason`);
      const list = m!.get(i + 1) ?? [];
      list.push({ checkId: id, reason, pos, origin: 'inline', standalone: /^\s*#/.test(line) });
      m!.set(i + 1, list);
    }
  });
  return m;
}

export function newInlineIndex(): InlineIndex {
  return { byFile: new Map(), warnings: [] };
}

/**
 * The inline suppression for a finding: a trailing comment on the finding's line, or a comment alone on
 * the line above. A finding about a whole service points at its first attribute; there the service's
 * name line (a trailing comment) and the line above it count.
 */
function inlineFor(lines: Map<number, InlineSuppression[]>, f: Finding): InlineSuppression | undefined {
  if (!f.pos || f.pos.line <= 0) return undefined;
  const l = f.pos.line;
  const wanted: [number, boolean][] = [[l, false], [l - 1, true]];
  if (f.atService) wanted.push([l - 1, false], [l - 2, true]);
  for (const [line, standalone] of wanted) {
    const hit = lines.get(line)?.find((s) => s.standalone === standalone && (s.checkId === f.checkId || s.checkId === '*'));
    if (hit) return hit;
  }
  return undefined;
}

export interface ConfigSuppressions {
  file: string;
  entries: Suppression[];
}

/** Reads a suppression config file: `ignore: [{id, service?, reason}]`. */
export function readSuppressionConfig(file: string): ConfigSuppressions {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError({ severity: 'error', code: 'audit.config', message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, pos: { file, line: 0, col: 0 }, fix: 'Check the --config path.' });
  }
  return parseSuppressionConfig(text, file);
}

export function parseSuppressionConfig(text: string, file: string): ConfigSuppressions {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (n: YNode | null | undefined): SourcePos => {
    const off = n?.range?.[0];
    if (off === undefined) return { file, line: 1, col: 1 };
    const lp = lc.linePos(off);
    return { file, line: lp.line, col: lp.col };
  };
  const errors: Diagnostic[] = [];
  const err = (message: string, pos: SourcePos, fix: string) => errors.push({ severity: 'error', code: 'audit.config', message, pos, fix });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new UserError({ severity: 'error', code: 'audit.config', message: `malformed YAML: ${e.message.split('\n')[0]}`, pos: e.linePos ? { file, line: e.linePos[0].line, col: e.linePos[0].col } : { file, line: 1, col: 1 }, fix: 'Correct the YAML syntax.' });
  }
  const entries: Suppression[] = [];
  const root = doc.contents as YNode | null;
  if (root === null) return { file, entries };
  if (!isMap(root)) throw new UserError({ severity: 'error', code: 'audit.config', message: 'the audit config must be a mapping with an `ignore:` list', pos: at(root), fix: 'Write `ignore:` followed by entries `- {id: CHECK, service: NAME, reason: WHY}`.' });
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (key !== 'ignore') {
      err(`unknown key "${key}"`, at(pair.key as YNode), 'The audit config has one key, `ignore:`.');
      continue;
    }
    const list = pair.value as YNode | null;
    if (!isSeq(list)) {
      err('`ignore` must be a list', at(list ?? (pair.key as YNode)), 'Write entries `- {id: CHECK, service: NAME, reason: WHY}`.');
      continue;
    }
    for (const item of list.items as YNode[]) {
      if (!isMap(item)) {
        err('each ignore entry must be a mapping', at(item), 'Write `- {id: CHECK, service: NAME, reason: WHY}`.');
        continue;
      }
      const get = (k: string): { value?: string; node?: YNode } => {
        const p = item.items.find((x) => isScalar(x.key) && x.key.value === k);
        if (!p) return {};
        const v = p.value as YNode | null;
        return { value: isScalar(v) && v.value !== null ? String(v.value) : undefined, node: v ?? (p.key as YNode) };
      };
      for (const p of item.items) {
        const k = isScalar(p.key) ? String(p.key.value) : '';
        if (!['id', 'service', 'reason'].includes(k)) err(`unknown key "${k}" in an ignore entry`, at(p.key as YNode), 'Use id, service and reason.');
      }
      const id = get('id');
      const reason = get('reason');
      const service = get('service');
      if (!id.value) err('ignore entry without id', at(item), 'Add `id: <check id>` (see docs/audit.md).');
      else if (id.value !== '*' && !isCheckId(id.value)) err(`unknown check id "${id.value}"`, at(id.node), 'Use a check id from docs/audit.md.');
      if (!reason.value) err('ignore entry without reason', at(item), 'Add `reason:` saying why the finding is accepted.');
      if (id.value && reason.value) {
        const s: Suppression = { checkId: id.value, reason: reason.value, pos: at(item), origin: 'config' };
        if (service.value) s.service = service.value;
        entries.push(s);
      }
    }
  }
  if (errors.length) throw new UserError(errors);
  return { file, entries };
}

/** Splits findings into kept and suppressed; warns about suppressions that matched nothing. */
export function applySuppressions(
  findings: Finding[],
  config: Suppression[],
  useInline = true,
): { findings: Finding[]; suppressed: SuppressedFinding[]; warnings: string[] } {
  const index = newInlineIndex();
  const kept: Finding[] = [];
  const suppressed: SuppressedFinding[] = [];
  const used = new Set<Suppression>();
  for (const f of findings) {
    let hit: Suppression | undefined;
    if (useInline && f.pos && f.pos.line > 0 && f.source !== 'live') {
      hit = inlineFor(inlineOf(index, f.pos.file), f);
    }
    hit ??= config.find((s) => (s.checkId === f.checkId || s.checkId === '*') && (s.service === undefined || s.service === f.service));
    if (hit) {
      used.add(hit);
      const { standalone: _s, ...suppression } = hit as InlineSuppression;
      void _s;
      suppressed.push({ finding: f, suppression });
    } else kept.push(f);
  }
  const warnings = [...index.warnings];
  for (const lines of index.byFile.values()) {
    for (const list of lines.values()) for (const s of list) if (!used.has(s)) warnings.push(`${formatPos(s.pos)}: moat-ignore ${s.checkId} matches no finding`);
  }
  for (const s of config) if (!used.has(s)) warnings.push(`${formatPos(s.pos)}: ignore ${s.checkId}${s.service ? ` (service ${s.service})` : ''} matches no finding`);
  return { findings: kept, suppressed, warnings };
}

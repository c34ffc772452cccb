// Errors and warnings about the user's input, as data. A printer in cli/ turns them into
// `file:line:col: error: message` followed by `  fix: ...`. A user error never becomes a stack trace.

export interface SourcePos {
  file: string;
  /** 1-based line and column; 0 when unknown (for example a label read from the live engine). */
  line: number;
  col: number;
}

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  /** Stable machine-readable code, e.g. `label.port-range`, `netpol.invalid-selector`. */
  code: string;
  message: string;
  /** How to fix it, in one sentence. */
  fix?: string;
  pos?: SourcePos;
  /** Where the value came from when not a file position, e.g. `container shop/web label security.allow.inbound`. */
  context?: string;
}

/** Thrown for user mistakes: the CLI prints the diagnostics and exits with code 2. */
export class UserError extends Error {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[] | Diagnostic) {
    const list = Array.isArray(diagnostics) ? diagnostics : [diagnostics];
    super(list.map(formatDiagnostic).join('\n'));
    this.name = 'UserError';
    this.diagnostics = list;
  }
}

export function userError(code: string, message: string, extra: Partial<Diagnostic> = {}): UserError {
  return new UserError({ severity: 'error', code, message, ...extra });
}

export function formatPos(pos: SourcePos | undefined): string {
  if (!pos) return '';
  return pos.line > 0 ? `${pos.file}:${pos.line}:${pos.col}` : pos.file;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = formatPos(d.pos);
  const head = `${where ? `${where}: ` : ''}${d.severity}: ${d.message}${d.context ? ` (${d.context})` : ''}`;
  return d.fix ? `${head}\n  fix: ${d.fix}` : head;
}

/** Collects diagnostics while parsing; `throwIfErrors` turns errors into one UserError. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  error(code: string, message: string, extra: Partial<Diagnostic> = {}): void {
    this.items.push({ severity: 'error', code, message, ...extra });
  }
  warn(code: string, message: string, extra: Partial<Diagnostic> = {}): void {
    this.items.push({ severity: 'warning', code, message, ...extra });
  }
  get errors(): Diagnostic[] {
    return this.items.filter((d) => d.severity === 'error');
  }
  get warnings(): Diagnostic[] {
    return this.items.filter((d) => d.severity === 'warning');
  }
  throwIfErrors(): void {
    if (this.errors.length) throw new UserError(this.errors);
  }
}

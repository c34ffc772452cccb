// `.env` files as Compose reads them: KEY=VALUE lines, `export` prefix, # comments, single quotes
// (literal), double quotes (escapes and interpolation, may span lines), unquoted values (inline
// ` #` comments, trimmed, interpolated). A bare `KEY` takes its value from the environment.
import { UserError } from '../../model/diagnostics.js';
import { interpolateString, type Lookup } from './interpolate.js';

export function parseDotEnv(text: string, file: string, outer: Lookup): Record<string, string> {
  const vars: Record<string, string> = Object.create(null);
  const lookup: Lookup = (name) => (Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : outer(name));
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const lineNo = ln + 1;
    let line = lines[ln].trimStart();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const m = /^([A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:=|:\s|$)/.exec(line);
    if (!m) {
      throw new UserError({
        severity: 'error',
        code: 'compose.env-file',
        message: `unexpected line in env file: ${JSON.stringify(line.slice(0, 40))}`,
        fix: 'Write one KEY=VALUE per line; start comments with #.',
        pos: { file, line: lineNo, col: 1 },
      });
    }
    const key = m[1];
    if (!line.slice(key.length).trim().startsWith('=') && !line.slice(key.length).trim().startsWith(':')) {
      const v = outer(key);
      if (v !== undefined) vars[key] = v;
      continue;
    }
    let rest = line.slice(m[0].length).replace(/^\s+/, '');
    const pos = { file, line: lineNo, col: 1 };
    if (rest.startsWith("'") || rest.startsWith('"')) {
      const q = rest[0];
      let body = rest.slice(1);
      // Multi-line quoted value: keep reading lines until the closing quote.
      let end = findQuote(body, q);
      while (end < 0 && ln + 1 < lines.length) {
        ln++;
        body += '\n' + lines[ln];
        end = findQuote(body, q);
      }
      if (end < 0) {
        throw new UserError({
          severity: 'error',
          code: 'compose.env-file',
          message: `unterminated ${q === '"' ? 'double' : 'single'}-quoted value for ${key}`,
          fix: `Close the value with ${q}.`,
          pos,
        });
      }
      const raw = body.slice(0, end);
      vars[key] = q === "'" ? raw : interpolateString(unescape(raw), { lookup }, pos);
      continue;
    }
    const hash = rest.search(/\s#/);
    if (hash >= 0) rest = rest.slice(0, hash);
    vars[key] = interpolateString(rest.trim(), { lookup }, pos);
  }
  return { ...vars };
}

function findQuote(s: string, q: string): number {
  for (let i = 0; i < s.length; i++) {
    if (q === '"' && s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === q) return i;
  }
  return -1;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c === '$' ? '$$' : c));
}

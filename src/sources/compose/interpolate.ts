// Compose variable interpolation (Compose Specification, "Interpolation"):
//   $VAR ${VAR} ${VAR:-default} ${VAR-default} ${VAR:?err} ${VAR?err} ${VAR:+alt} ${VAR+alt} and $$ for a literal $.
// Defaults and alternatives may themselves contain interpolations (`${A:-${B:-x}}`).
import type { SourcePos } from '../../model/diagnostics.js';
import { UserError } from '../../model/diagnostics.js';

export type Lookup = (name: string) => string | undefined;

export interface InterpolationContext {
  lookup: Lookup;
  /** Called once per unset variable used without a default (Compose substitutes ''). */
  onUnset?: (name: string, pos: SourcePos | undefined) => void;
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

function fail(message: string, pos: SourcePos | undefined, fix: string): never {
  throw new UserError({ severity: 'error', code: 'compose.interpolation', message, fix, pos });
}

/** Finds the `}` that closes a `${` whose content starts at `start`, honouring nested `${...}`. */
function findClose(s: string, start: number): number {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === '$' && s[i + 1] === '$') {
      i++;
      continue;
    }
    if (c === '$' && s[i + 1] === '{') {
      depth++;
      i++;
      continue;
    }
    if (c === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

export function interpolateString(s: string, ctx: InterpolationContext, pos?: SourcePos): string {
  if (!s.includes('$')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next !== undefined && NAME_START.test(next)) {
      let j = i + 1;
      while (j < s.length && NAME_CHAR.test(s[j])) j++;
      const name = s.slice(i + 1, j);
      out += resolvePlain(name, ctx, pos);
      i = j;
      continue;
    }
    if (next === '{') {
      const close = findClose(s, i + 2);
      if (close < 0) fail(`invalid interpolation format in "${s}": unterminated \${`, pos, 'Close the ${...} with a }, or write $$ for a literal $.');
      out += resolveBraced(s.slice(i + 2, close), s, ctx, pos);
      i = close + 1;
      continue;
    }
    // A lone $ (at the end, or before a character that cannot start a name) stays as written, like Compose.
    out += '$';
    i++;
  }
  return out;
}

function resolvePlain(name: string, ctx: InterpolationContext, pos: SourcePos | undefined): string {
  const v = ctx.lookup(name);
  if (v === undefined) {
    ctx.onUnset?.(name, pos);
    return '';
  }
  return v;
}

function resolveBraced(body: string, whole: string, ctx: InterpolationContext, pos: SourcePos | undefined): string {
  let j = 0;
  if (!(j < body.length && NAME_START.test(body[j]))) {
    fail(`invalid interpolation format for "${whole}": "\${${body}}" is not a variable name`, pos, 'Use ${NAME} with letters, digits and _ (not starting with a digit), or $$ for a literal $.');
  }
  while (j < body.length && NAME_CHAR.test(body[j])) j++;
  const name = body.slice(0, j);
  const rest = body.slice(j);
  if (rest === '') return resolvePlain(name, ctx, pos);
  const value = ctx.lookup(name);
  const colon = rest.startsWith(':');
  const op = colon ? rest[1] : rest[0];
  const arg = rest.slice(colon ? 2 : 1);
  const unsetOrEmpty = value === undefined || (colon && value === '');
  switch (op) {
    case '-':
      return unsetOrEmpty ? interpolateString(arg, ctx, pos) : (value as string);
    case '+':
      return unsetOrEmpty ? '' : interpolateString(arg, ctx, pos);
    case '?':
      if (unsetOrEmpty) {
        const msg = interpolateString(arg, ctx, pos);
        fail(
          `required variable ${name} is missing a value${msg ? `: ${msg}` : ''}`,
          pos,
          `Set ${name} in the environment or in the .env file (--env-file).`,
        );
      }
      return value as string;
    default:
      fail(`invalid interpolation format for "${whole}": unsupported operator in "\${${body}}"`, pos, 'Use one of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}.');
  }
}

// Strict validation of every value that reaches a ruleset. Values from labels, files or the Engine
// API never enter rule text unchecked: names are derived (hashes) or matched against a small
// alphabet, addresses are parsed and printed back canonically, comments are reduced to a safe alphabet.
import ipaddr from 'ipaddr.js';
import { parseCidr, type Family } from '../model/address.js';

/** nft table / chain / set names and iptables chain names that moat creates. */
const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,27}$/;

export function assertName(name: string, what = 'name'): string {
  if (!NAME_RE.test(name)) throw new Error(`invalid ${what} for a ruleset: ${JSON.stringify(name)}`);
  return name;
}

/** Table name given by the user (option): lower-case letters, digits and underscores. */
export function validTableName(name: string): boolean {
  return /^[a-z][a-z0-9_]{0,30}$/.test(name);
}

const COMMENT_MAX = 120;

/**
 * Reduces any text to characters that are inert in nft and iptables-restore syntax (no quotes,
 * no backslash, no semicolon, no braces, no newline) and to the kernel's comment length.
 */
export function safeComment(text: string, max = COMMENT_MAX): string {
  // Fast path (compile calls this per container): text the replacements would leave unchanged.
  const s = isSafeText(text) ? text : text.replace(/[^A-Za-z0-9 ._:/@=,+#-]/g, '_').replace(/\s+/g, ' ').trim();
  return s.length > max ? s.slice(0, max) : s;
}

/**
 * A safe text (safeComment, safeLogPrefix: no quotes, no backslash) as iptables-save writes it
 * (libxtables `xtables_save_string`): bare when it is only letters, digits, `_` and `-`, else in
 * double quotes. iptables-restore reads both; rendered so, moat's rules read back exactly as sent.
 */
export function xtablesString(text: string): string {
  return /^[A-Za-z0-9_-]+$/.test(text) ? text : `"${text}"`;
}

/** Characters safeComment keeps, by code (ASCII only). */
const SAFE_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._:/@=,+#-') SAFE_CHAR[c.charCodeAt(0)] = 1;

/** Only safe characters, no space at either end, no two spaces in a row: safeComment's fixed points. */
function isSafeText(text: string): boolean {
  let space = true; // a space here would be leading
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || SAFE_CHAR[c] === 0) return false;
    if (c === 32) {
      if (space) return false;
      space = true;
    } else space = false;
  }
  return !space || text.length === 0;
}

/** NFLOG prefixes: the same alphabet without spaces, at most 63 characters. */
export function safeLogPrefix(text: string): string {
  return safeComment(text, 63).replace(/ /g, '_');
}

// Parsing is the hot path of compile and render (every element, every endpoint): results are memoised
// (bounded; cleared when full). Only successful parses are kept; errors are thrown each time.
const MEMO_MAX = 500_000;
const addrMemo = new Map<string, { text: string; family: Family }>();
const cidrMemo = new Map<string, { text: string; family: Family; prefix: number }>();
function remember<V>(m: Map<string, V>, k: string, v: V): V {
  if (m.size >= MEMO_MAX) m.clear();
  m.set(k, v);
  return v;
}

/** Parses an address and prints it canonically; throws on anything else. */
export function canonicalAddress(text: string): { text: string; family: Family } {
  const hit = addrMemo.get(text);
  if (hit) return hit;
  return remember(addrMemo, text, parseAddress(text));
}

function parseAddress(text: string): { text: string; family: Family } {
  const t = text.trim();
  if (!ipaddr.isValid(t)) throw new Error(`invalid address: ${JSON.stringify(text)}`);
  const a = ipaddr.parse(t);
  if (a.kind() === 'ipv4') {
    if (!ipaddr.IPv4.isValidFourPartDecimal(t)) throw new Error(`invalid address: ${JSON.stringify(text)}`);
    return { text: a.toString(), family: 4 };
  }
  const v6 = a as ipaddr.IPv6;
  if (v6.zoneId) throw new Error(`address with a zone is not allowed in a ruleset: ${JSON.stringify(text)}`);
  return { text: v6.toNormalizedString() === '0:0:0:0:0:0:0:0' ? '::' : v6.toString(), family: 6 };
}

/** Parses a CIDR (or a bare address: a host) and prints it canonically; throws when invalid. */
export function canonicalCidr(text: string): { text: string; family: Family; prefix: number } {
  const hit = cidrMemo.get(text);
  if (hit) return hit;
  const c = parseCidr(text.trim());
  if (!c) throw new Error(`invalid address range: ${JSON.stringify(text)}`);
  return remember(cidrMemo, text, { text: c.text, family: c.family, prefix: c.prefix });
}

/** A set element: a host address without `/32` (`/128`), else the CIDR. */
export function elementText(cidrOrAddress: string): { text: string; family: Family } {
  const c = canonicalCidr(cidrOrAddress);
  const full = c.family === 4 ? 32 : 128;
  return { text: c.prefix === full ? c.text.slice(0, c.text.indexOf('/')) : c.text, family: c.family };
}

/** A rule's CIDR or address, checked (canonical element text, of the family): it goes into rules as is. */
export function cidrText(cidr: string, family: Family): string {
  const t = elementText(cidr);
  if (t.text !== cidr || t.family !== family) throw new Error(`invalid CIDR in a rule: ${JSON.stringify(cidr)}`);
  return t.text;
}

export function assertPort(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`invalid port: ${p}`);
  return p;
}

export function assertNflogGroup(g: number): number {
  if (!Number.isInteger(g) || g < 0 || g > 65535) throw new Error(`invalid NFLOG group: ${g}`);
  return g;
}

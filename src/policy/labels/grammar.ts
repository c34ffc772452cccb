// The grammar of the seed's security labels (docs/labels.md). Values are data: every token is
// checked against this grammar before it becomes IR, and nothing else passes.
//
//   value  := 'none' | item (',' item)*            (spaces around commas are allowed)
//   item   := port | peer | peer ':' port
//   port   := NUM | NUM '-' NUM, then optionally '/tcp' | '/udp' | '/sctp'   (default tcp)
//   peer   := group | namespace '/' group | 'internet' | 'host' | 'any'
//           | IPv4 | IPv4 '/' LEN | '[' IPv6 ('/' LEN)? ']' | IPv6 ('/' LEN)?  (bare IPv6 only without a port)
//   group  := [a-z][a-z0-9_.-]{0,62}  (not a keyword)
import { parseCidr } from '../../model/address.js';
import type { Protocol } from '../../model/world.js';

export const LABEL_KEYS = {
  group: 'security.group',
  allowInbound: 'security.allow.inbound',
  allowOutbound: 'security.allow.outbound',
  denyInbound: 'security.deny.inbound',
  denyOutbound: 'security.deny.outbound',
} as const;

export const RULE_KEYS = [LABEL_KEYS.allowInbound, LABEL_KEYS.allowOutbound, LABEL_KEYS.denyInbound, LABEL_KEYS.denyOutbound] as const;
export type RuleKey = (typeof RULE_KEYS)[number];

export const KEYWORDS = ['internet', 'host', 'any', 'none'] as const;
export const MAX_VALUE_LENGTH = 1024;
const GROUP_RE = /^[a-z][a-z0-9_.-]{0,62}$/;
const NAMESPACE_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export type LabelPeer =
  | { kind: 'group'; group: string; namespace?: string }
  | { kind: 'cidr'; cidr: string }
  | { kind: 'internet' }
  | { kind: 'host' }
  | { kind: 'any' };

export interface LabelPort {
  protocol: Protocol;
  from: number;
  to: number;
}

export interface LabelItem {
  text: string;
  /** Offset of the item in the value (for column numbers). */
  offset: number;
  peer: LabelPeer;
  /** Absent: every port of every protocol. */
  port?: LabelPort;
}

export interface GrammarError {
  message: string;
  fix: string;
  offset: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: GrammarError };

function fail<T>(message: string, fix: string, offset: number): ParseResult<T> {
  return { ok: false, error: { message, fix, offset } };
}

/** Rejects values that are not plain label text before any tokenizing. */
function checkCharacters(value: string): GrammarError | undefined {
  if (value.length > MAX_VALUE_LENGTH) {
    return { message: `value is ${value.length} characters long; the limit is ${MAX_VALUE_LENGTH}`, fix: 'split the rules over a moat policy file', offset: 0 };
  }
  const bad = /[^A-Za-z0-9_.:/,\-\[\] ]/.exec(value);
  if (bad) {
    const ch = bad[0];
    const shown = ch === '\n' ? '\\n' : ch === '\t' ? '\\t' : ch === '\r' ? '\\r' : JSON.stringify(ch);
    return {
      message: `unexpected character ${shown} at position ${bad.index + 1}`,
      fix: 'a value is a comma-separated list of ports (80, 443/tcp, 53/udp, 8000-8100), groups (web, web:8080), CIDRs, or internet/host/any',
      offset: bad.index,
    };
  }
  return undefined;
}

export function parsePort(text: string, offset: number): ParseResult<LabelPort> {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/([A-Za-z]+))?$/.exec(text);
  if (!m) return fail(`"${text}" is not a port`, 'write a port as 80, 443/tcp, 53/udp or a range 8000-8100', offset);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  for (const p of [from, to]) {
    if (p < 1 || p > 65535) return fail(`port ${p} is out of range`, 'ports are 1 to 65535', offset);
  }
  if (to < from) return fail(`port range ${from}-${to} is reversed`, `write ${to}-${from}`, offset);
  let protocol: Protocol = 'TCP';
  if (m[3] !== undefined) {
    const p = m[3].toUpperCase();
    if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') return fail(`unknown protocol "${m[3]}"`, 'use tcp, udp or sctp', offset + text.indexOf('/') + 1);
    protocol = p;
  }
  return { ok: true, value: { protocol, from, to } };
}

function parsePeer(text: string, offset: number): ParseResult<LabelPeer> {
  if (text === 'internet' || text === 'host' || text === 'any') return { ok: true, value: { kind: text } };
  if (text === 'none') return fail('"none" must be the whole value', 'write security.allow.inbound=none alone to allow nothing', offset);
  const bracket = /^\[([^\]]+)\]$/.exec(text);
  const addr = bracket ? bracket[1] : text;
  if (/^[0-9.]+(\/\d+)?$/.test(addr) || addr.includes(':')) {
    const c = parseCidr(addr);
    if (!c) return fail(`"${text}" is not a valid address or CIDR`, 'write e.g. 10.0.0.0/8, 192.168.1.100 or [fd00::/64]', offset);
    return { ok: true, value: { kind: 'cidr', cidr: c.text } };
  }
  const slash = text.indexOf('/');
  const namespace = slash >= 0 ? text.slice(0, slash) : undefined;
  const group = slash >= 0 ? text.slice(slash + 1) : text;
  if (namespace !== undefined && !NAMESPACE_RE.test(namespace)) {
    return fail(`"${namespace}" is not a valid namespace (Compose project) name`, 'use lowercase letters, digits, - and _', offset);
  }
  if (!GROUP_RE.test(group)) {
    const lower = group.toLowerCase();
    const fix = GROUP_RE.test(lower) ? `group names are lowercase: write ${namespace ? `${namespace}/` : ''}${lower}` : 'a group name starts with a lowercase letter and has up to 63 of a-z 0-9 _ . -';
    return fail(`"${group}" is not a valid group name`, fix, offset + (slash + 1));
  }
  if ((KEYWORDS as readonly string[]).includes(group)) return fail(`"${group}" is a keyword, not a group`, 'rename the group', offset);
  return { ok: true, value: { kind: 'group', group, namespace } };
}

function parseItem(text: string, offset: number): ParseResult<LabelItem> {
  if (text === '') return fail('empty item', 'remove the extra comma', offset);
  if (/^\d+(-\d+)?(\/[A-Za-z]+)?$/.test(text)) {
    const p = parsePort(text, offset);
    return p.ok ? { ok: true, value: { text, offset, peer: { kind: 'any' }, port: p.value } } : p;
  }
  // peer ':' port — split at the last ':' unless the peer is a bare IPv6 (brackets required with a port).
  let peerText = text;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return fail(`"${text}" has an unclosed [`, 'write IPv6 as [fd00::/64] or [fd00::/64]:5432', offset);
    peerText = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return fail(`unexpected "${rest}" after ${peerText}`, 'write [fd00::/64]:5432', offset + close + 1);
      portText = rest.slice(1);
    }
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const i = text.indexOf(':');
    peerText = text.slice(0, i);
    portText = text.slice(i + 1);
  }
  const peer = parsePeer(peerText, offset);
  if (!peer.ok) return peer;
  if (portText === undefined) return { ok: true, value: { text, offset, peer: peer.value } };
  const port = parsePort(portText, offset + text.length - portText.length);
  if (!port.ok) return port;
  return { ok: true, value: { text, offset, peer: peer.value, port: port.value } };
}

/** Parses a rule label value: `none` gives an empty list (isolate, allow nothing). */
export function parseRuleValue(value: string): ParseResult<LabelItem[]> {
  const bad = checkCharacters(value);
  if (bad) return { ok: false, error: bad };
  if (value.trim() === '') return fail('empty value', 'write none to allow nothing, or list ports/groups such as 80,443 or web', 0);
  if (value.trim() === 'none') return { ok: true, value: [] };
  const items: LabelItem[] = [];
  let offset = 0;
  for (const raw of value.split(',')) {
    const lead = raw.length - raw.trimStart().length;
    const text = raw.trim();
    if (/\s/.test(text)) return fail(`"${text}" contains a space`, 'separate items with commas', offset + lead);
    const r = parseItem(text, offset + lead);
    if (!r.ok) return r;
    items.push(r.value);
    offset += raw.length + 1;
  }
  return { ok: true, value: items };
}

/** Parses `security.group`: one or more group names separated by commas. */
export function parseGroupValue(value: string): ParseResult<string[]> {
  const bad = checkCharacters(value);
  if (bad) return { ok: false, error: bad };
  const groups: string[] = [];
  let offset = 0;
  for (const raw of value.split(',')) {
    const text = raw.trim();
    const lead = raw.length - raw.trimStart().length;
    if (!GROUP_RE.test(text) || (KEYWORDS as readonly string[]).includes(text)) {
      return fail(`"${text}" is not a valid group name`, 'a group name starts with a lowercase letter and has up to 63 of a-z 0-9 _ . - (not internet/host/any/none)', offset + lead);
    }
    if (!groups.includes(text)) groups.push(text);
    offset += raw.length + 1;
  }
  return { ok: true, value: groups };
}

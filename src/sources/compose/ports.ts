// Compose `ports` and `expose`, normalised the way `docker compose config` prints them: one entry per
// container port (ranges expanded), host IP without brackets, protocol lower-case.
// Short syntax follows Docker's nat.ParsePortSpec: the last `:`-part is the container port, the one
// before it the host port, everything before that the host IP (so "::1:8080:80" is host_ip ::1).
import type { SourcePos } from '../../model/diagnostics.js';
import { UserError } from '../../model/diagnostics.js';
import { isIp } from '../../model/address.js';
import { isObj, type Value } from './tree.js';

export type PortProtocol = 'tcp' | 'udp' | 'sctp';

export interface ResolvedPort {
  /** Container port. */
  target: number;
  /** Host port as Compose prints it: "8080", a range "8000-8010" (Docker picks one), or undefined (Docker picks any). */
  published?: string;
  /** Host port when it is one fixed number. */
  hostPort?: number;
  /** Host port range when Docker picks one from a range for a single container port. */
  hostPortRange?: [number, number];
  /** Host address ('' when not given, meaning all interfaces). Without brackets. */
  hostIp: string;
  protocol: PortProtocol;
  mode: 'ingress' | 'host';
  name?: string;
  appProtocol?: string;
  /** Where the entry was written. */
  pos?: SourcePos;
}

export interface ExposedPort {
  port: number;
  protocol: PortProtocol;
  pos?: SourcePos;
}

const PROTOS: PortProtocol[] = ['tcp', 'udp', 'sctp'];

function bad(message: string, pos: SourcePos | undefined, fix = 'Write ports as [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], ports 1-65535, e.g. "127.0.0.1:8080:80/tcp".'): never {
  throw new UserError({ severity: 'error', code: 'compose.port', message, fix, pos });
}

function parsePortNumber(text: string, pos: SourcePos | undefined, what: string): number {
  if (!/^\d+$/.test(text)) bad(`invalid ${what} "${text}": not a port number`, pos);
  const n = Number(text);
  if (n < 1 || n > 65535) bad(`invalid ${what} ${text}: ports are 1-65535`, pos);
  return n;
}

function parseRange(text: string, pos: SourcePos | undefined, what: string): [number, number] {
  const m = /^([^-]+)-([^-]+)$/.exec(text);
  if (!m) {
    const n = parsePortNumber(text, pos, what);
    return [n, n];
  }
  const a = parsePortNumber(m[1], pos, what);
  const b = parsePortNumber(m[2], pos, what);
  if (b < a) bad(`invalid ${what} range "${text}": end before start`, pos);
  return [a, b];
}

function parseProto(text: string, pos: SourcePos | undefined): PortProtocol {
  const p = text.toLowerCase();
  if (!(PROTOS as string[]).includes(p)) bad(`invalid protocol "${text}": use tcp, udp or sctp`, pos);
  return p as PortProtocol;
}

/** Short syntax: "80", "8080:80", "127.0.0.1:8080:80/udp", "[::1]:8080:80", "8000-8010:8000-8010", 80 (a number). */
export function parseShortPort(spec: string | number, pos?: SourcePos): ResolvedPort[] {
  const raw = String(spec).trim();
  if (raw === '') bad('empty port specification', pos);
  let body = raw;
  let protocol: PortProtocol = 'tcp';
  const slash = raw.lastIndexOf('/');
  if (slash >= 0) {
    protocol = parseProto(raw.slice(slash + 1), pos);
    body = raw.slice(0, slash);
  }
  const parts = body.split(':');
  const n = parts.length;
  const containerText = parts[n - 1];
  let hostText = '';
  let ipText = '';
  if (n === 2) hostText = parts[0];
  else if (n === 3) {
    ipText = parts[0];
    hostText = parts[1];
  } else if (n > 3) {
    ipText = parts.slice(0, n - 2).join(':');
    hostText = parts[n - 2];
  }
  if (ipText.startsWith('[') && ipText.endsWith(']')) ipText = ipText.slice(1, -1);
  if (ipText !== '' && !isIp(ipText)) bad(`invalid host IP "${ipText}" in port "${raw}"`, pos);
  if (containerText === '') bad(`no container port in "${raw}"`, pos);
  const [cStart, cEnd] = parseRange(containerText, pos, 'container port');
  let hStart = 0;
  let hEnd = 0;
  if (hostText !== '') [hStart, hEnd] = parseRange(hostText, pos, 'host port');
  const cLen = cEnd - cStart;
  const hLen = hEnd - hStart;
  if (hostText !== '' && cLen !== hLen && cLen !== 0) {
    bad(`invalid port ranges in "${raw}": container range ${containerText} and host range ${hostText} differ in length`, pos);
  }
  const out: ResolvedPort[] = [];
  for (let i = 0; i <= cLen; i++) {
    const port: ResolvedPort = { target: cStart + i, hostIp: ipText, protocol, mode: 'ingress', pos };
    if (hostText !== '') {
      if (cLen === 0 && hLen > 0) {
        port.published = `${hStart}-${hEnd}`;
        port.hostPortRange = [hStart, hEnd];
      } else {
        port.published = String(hStart + i);
        port.hostPort = hStart + i;
      }
    }
    out.push(port);
  }
  return out;
}

/** Long syntax: {target, published, host_ip, protocol, mode, name, app_protocol}. */
export function parseLongPort(m: Record<string, Value>, pos?: SourcePos): ResolvedPort[] {
  for (const k of Object.keys(m)) {
    if (!['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol'].includes(k) && !k.startsWith('x-')) {
      bad(`unknown key "${k}" in port mapping`, pos, 'Use target, published, host_ip, protocol, mode, name or app_protocol.');
    }
  }
  if (m.target === undefined || m.target === null) bad('port mapping has no target', pos, 'Add `target: <container port>`.');
  const target = parsePortNumber(String(m.target), pos, 'target port');
  const protocol = m.protocol == null ? 'tcp' : parseProto(String(m.protocol), pos);
  let hostIp = m.host_ip == null ? '' : String(m.host_ip);
  if (hostIp.startsWith('[') && hostIp.endsWith(']')) hostIp = hostIp.slice(1, -1);
  if (hostIp !== '' && !isIp(hostIp)) bad(`invalid host_ip "${hostIp}"`, pos, 'Use an IPv4 or IPv6 address.');
  const mode = m.mode == null ? 'ingress' : String(m.mode);
  if (mode !== 'ingress' && mode !== 'host') bad(`invalid port mode "${mode}"`, pos, 'Use mode: ingress or mode: host.');
  const port: ResolvedPort = { target, hostIp, protocol, mode, pos };
  if (m.name != null) port.name = String(m.name);
  if (m.app_protocol != null) port.appProtocol = String(m.app_protocol);
  if (m.published != null && String(m.published) !== '') {
    const [a, b] = parseRange(String(m.published), pos, 'published port');
    if (a === b) {
      port.hostPort = a;
      port.published = String(a);
    } else {
      port.published = `${a}-${b}`;
      port.hostPortRange = [a, b];
    }
  }
  return [port];
}

export function parsePortEntry(v: Value, pos?: SourcePos): ResolvedPort[] {
  if (typeof v === 'string' || typeof v === 'number') return parseShortPort(v, pos);
  if (isObj(v)) return parseLongPort(v, pos);
  return bad(`invalid port entry ${JSON.stringify(v)}`, pos);
}

/** `expose` entries: "80", "8000-8010", "53/udp", 80. */
export function parseExpose(v: Value, pos?: SourcePos): ExposedPort[] {
  if (typeof v !== 'string' && typeof v !== 'number') bad(`invalid expose entry ${JSON.stringify(v)}`, pos, 'Write expose entries as "PORT[-END][/PROTOCOL]".');
  const raw = String(v).trim();
  let body = raw;
  let protocol: PortProtocol = 'tcp';
  const slash = raw.lastIndexOf('/');
  if (slash >= 0) {
    protocol = parseProto(raw.slice(slash + 1), pos);
    body = raw.slice(0, slash);
  }
  const [a, b] = parseRange(body, pos, 'exposed port');
  const out: ExposedPort[] = [];
  for (let p = a; p <= b; p++) out.push({ port: p, protocol, pos });
  return out;
}

/** Compose's uniqueness key for a port (duplicates after merging are dropped, the last kept). */
export function portKey(p: ResolvedPort): string {
  return `${p.hostIp}:${p.published ?? ''}:${p.target}/${p.protocol}:${p.mode}`;
}

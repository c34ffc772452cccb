// daemon.json checks (seed 3.3 and 8.5, CIS section 2), from the file or from the live engine.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Node as YNode } from 'yaml';
import { UserError, type SourcePos } from '../model/diagnostics.js';
import { checkById } from './catalogue.js';
import type { Finding } from './types.js';

/** What the daemon checks need, from daemon.json or from the engine. Undefined: not set (Docker's default applies). */
export interface DaemonSettings {
  icc?: boolean;
  iptables?: boolean;
  ipForward?: boolean;
  ipForwardNoDrop?: boolean;
  userlandProxy?: boolean;
  hosts?: string[];
  tlsverify?: boolean;
  defaultAddressPools?: unknown[];
  liveRestore?: boolean;
  logDriver?: string;
  logOpts?: Record<string, string>;
}

export interface DaemonInput {
  settings: DaemonSettings;
  /** Where each daemon.json key was written. */
  positions: Record<string, SourcePos>;
  /** The file, for findings about keys that are missing. */
  file?: string;
  source: 'daemon' | 'live';
}

const bad = (file: string, message: string, pos?: SourcePos) =>
  new UserError({ severity: 'error', code: 'audit.daemon-json', message, pos: pos ?? { file, line: 0, col: 0 }, fix: 'daemon.json must be a JSON object (no comments), as dockerd reads it.' });

/** Parses daemon.json text, keeping the position of every top-level key. */
export function parseDaemonJson(text: string, file: string): DaemonInput {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw bad(file, `${file} is not valid JSON: ${e.message.split('\n')[0]}`, e.linePos ? { file, line: e.linePos[0].line, col: e.linePos[0].col } : undefined);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    let pos: SourcePos = { file, line: 1, col: 1 };
    if (m) {
      const before = text.slice(0, Number(m[1]));
      const lines = before.split('\n');
      pos = { file, line: lines.length, col: lines[lines.length - 1].length + 1 };
    }
    throw bad(file, `${file} is not valid JSON: ${msg.replace(/ in JSON at position \d+.*$/, '')}`, pos);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(file, `${file} must contain a JSON object`, { file, line: 1, col: 1 });
  const positions: Record<string, SourcePos> = {};
  const root = doc.contents as YNode | null;
  if (isMap(root)) {
    for (const pair of root.items) {
      const k = pair.key as YNode | null;
      if (isScalar(k) && k.range) {
        const lp = lc.linePos(k.range[0]);
        positions[String(k.value)] = { file, line: lp.line, col: lp.col };
      }
    }
  }
  const o = value as Record<string, unknown>;
  const s: DaemonSettings = {};
  const boolAt = (key: string): boolean | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw bad(file, `"${key}" must be true or false, not ${JSON.stringify(v)}`, positions[key]);
    return v;
  };
  s.icc = boolAt('icc');
  s.iptables = boolAt('iptables');
  s.ipForward = boolAt('ip-forward');
  s.ipForwardNoDrop = boolAt('ip-forward-no-drop');
  s.userlandProxy = boolAt('userland-proxy');
  s.tlsverify = boolAt('tlsverify');
  s.liveRestore = boolAt('live-restore');
  if (o.hosts !== undefined) {
    if (!Array.isArray(o.hosts) || o.hosts.some((h) => typeof h !== 'string')) throw bad(file, '"hosts" must be a list of strings', positions.hosts);
    s.hosts = o.hosts as string[];
  }
  if (o['default-address-pools'] !== undefined) {
    if (!Array.isArray(o['default-address-pools'])) throw bad(file, '"default-address-pools" must be a list', positions['default-address-pools']);
    s.defaultAddressPools = o['default-address-pools'];
  }
  if (o['log-driver'] !== undefined) s.logDriver = String(o['log-driver']);
  if (o['log-opts'] !== undefined) {
    const lo = o['log-opts'];
    if (typeof lo !== 'object' || lo === null || Array.isArray(lo)) throw bad(file, '"log-opts" must be an object', positions['log-opts']);
    s.logOpts = Object.fromEntries(Object.entries(lo).map(([k, v]) => [k, String(v)]));
  }
  return { settings: s, positions, file, source: 'daemon' };
}

export function readDaemonJson(file: string): DaemonInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError({ severity: 'error', code: 'audit.daemon-json', message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, pos: { file, line: 0, col: 0 }, fix: 'Check the --daemon-json path.' });
  }
  return parseDaemonJson(text, file);
}

export function runDaemonChecks(input: DaemonInput): Finding[] {
  const { settings: s, positions } = input;
  const out: Finding[] = [];
  const fileStart: SourcePos | undefined = input.file ? { file: input.file, line: 1, col: 1 } : undefined;
  const add = (checkId: string, message: string, key?: string, data?: Finding['data']) => {
    const def = checkById(checkId)!;
    const f: Finding = { checkId, severity: def.severity, message, source: input.source };
    const pos = (key && positions[key]) || fileStart;
    if (pos) f.pos = pos;
    if (data) f.data = data;
    out.push(f);
  };
  if (s.icc !== false) add('daemon-icc', s.icc === true ? '"icc": true' : 'icc is not disabled (the default is true)', 'icc');
  if (s.iptables === false) add('daemon-iptables-disabled', '"iptables": false: Docker installs no isolation rules and no DOCKER-USER chain', 'iptables');
  if (s.ipForwardNoDrop === true) add('daemon-ip-forward', '"ip-forward-no-drop": true: the FORWARD policy is not set to DROP', 'ip-forward-no-drop');
  else if (s.ipForward !== false && s.iptables !== false) add('daemon-ip-forward', s.ipForward === true ? '"ip-forward": true' : 'ip-forward is not disabled (Docker enables forwarding)', 'ip-forward');
  if (s.userlandProxy !== false) add('daemon-userland-proxy', s.userlandProxy === true ? '"userland-proxy": true' : 'userland-proxy is not disabled (the default is true)', 'userland-proxy');
  for (const h of s.hosts ?? []) {
    if (/^(tcp|http):\/\//i.test(h.trim()) && s.tlsverify !== true) add('daemon-tcp-no-tls', `the API listens on ${h} without tlsverify`, 'hosts', { host: h });
  }
  if (!s.defaultAddressPools || s.defaultAddressPools.length === 0) add('daemon-no-address-pools', 'no default-address-pools', 'default-address-pools');
  if (s.liveRestore !== true) add('daemon-no-live-restore', s.liveRestore === false ? '"live-restore": false' : 'live-restore is not enabled', 'live-restore');
  const driver = s.logDriver ?? 'json-file';
  // `local` rotates by default (100 MB per container); json-file keeps everything unless max-size is set.
  if (driver === 'json-file' && !s.logOpts?.['max-size']) {
    add('daemon-no-log-limits', `log driver ${driver} without log-opts max-size`, s.logOpts ? 'log-opts' : 'log-driver');
  }
  return out;
}

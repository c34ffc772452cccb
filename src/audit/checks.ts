// Service and project checks over ProjectFacts (Compose or live). Each finding points at the line
// that causes it, or at the service when the problem is something missing.
import { analyze } from '../analysis/reachability.js';
import { ConnSet } from '../model/connset.js';
import { readFileSync } from 'node:fs';
import type { SourcePos } from '../model/diagnostics.js';
import { checkById } from './catalogue.js';
import type { NetworkFacts, PortFact, ProjectFacts, ServiceFacts } from './facts.js';
import {
  DATA_KINDS,
  dataKind,
  describeInterfaces,
  HIGH_RISK_PORTS,
  isAllInterfaces,
  isLiteralSecretValue,
  isLoopback,
  isPublicAddress,
  isSecretName,
  kindOfImage,
  tlsConfigured,
  type DataKind,
} from './known.js';
import type { Finding } from './types.js';

export interface CheckContext {
  source: Finding['source'];
  findings: Finding[];
  warnings: string[];
}

function add(ctx: CheckContext, checkId: string, message: string, extra: Omit<Partial<Finding>, 'checkId' | 'message'> = {}): void {
  const def = checkById(checkId);
  if (!def) throw new Error(`unknown check ${checkId}`);
  ctx.findings.push({ checkId, severity: def.severity, message, source: ctx.source, ...extra });
}

const DANGEROUS_CAPS = new Set(['NET_ADMIN', 'SYS_ADMIN', 'SYS_MODULE', 'ALL']);
const SOCKET_RE = /(^|\/)(docker|podman)\.sock$/;

function capName(c: string): string {
  return c.trim().toUpperCase().replace(/^CAP_/, '');
}

/** The data-service kind of a service (databases, caches, and the other high-risk images). */
export function serviceKind(s: ServiceFacts): DataKind | undefined {
  if (!s.built) {
    const k = kindOfImage(s.image);
    if (k) return k;
    if (s.image) return undefined;
  }
  return dataKind(undefined, s.containerPorts);
}

export function isDataService(s: ServiceFacts): boolean {
  const k = serviceKind(s);
  return k !== undefined && DATA_KINDS.has(k);
}

function portText(p: PortFact): string {
  const host = p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp;
  return `${host ? `${host}:` : ''}${p.published ? `${p.published}:` : ''}${p.target}/${p.protocol}`;
}

/** Port findings: one per port entry and check (a range stays one finding). */
function checkPorts(ctx: CheckContext, s: ServiceFacts): void {
  const kind = serviceKind(s);
  const groups = new Map<string, { check: string; ports: PortFact[]; why: string }>();
  for (const p of s.ports) {
    if (isLoopback(p.hostIp)) continue;
    const everywhere = isAllInterfaces(p.hostIp);
    const risky = HIGH_RISK_PORTS.get(p.target) ?? (p.hostPort !== undefined ? HIGH_RISK_PORTS.get(p.hostPort) : undefined) ?? (kind ? `${kind} image` : undefined);
    let check: string | undefined;
    let why = '';
    if (risky && (everywhere || isPublicAddress(p.hostIp))) {
      check = 'port-high-risk';
      why = risky;
    } else if (p.published === undefined && everywhere) check = 'port-publish-all';
    else if (everywhere) check = 'port-all-interfaces';
    if (!check) continue;
    const where = p.pos ? `${p.pos.file}:${p.pos.line}:${p.pos.col}` : `#${p.index}`;
    const key = `${check}|${where}|${p.hostIp}|${p.protocol}`;
    const g = groups.get(key) ?? { check, ports: [], why };
    g.ports.push(p);
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    const first = g.ports[0];
    const last = g.ports[g.ports.length - 1];
    const target = g.ports.length > 1 ? `${first.target}-${last.target}` : `${first.target}`;
    const hostPorts = g.ports.length > 1 && first.hostPort !== undefined ? `${first.hostPort}-${last.hostPort}` : first.published;
    const iface = describeInterfaces(first.hostIp);
    const shown = `${hostPorts ?? '(random)'}->${target}/${first.protocol}`;
    let message: string;
    if (g.check === 'port-high-risk') message = `${g.why} port published on ${iface}: ${shown}`;
    else if (g.check === 'port-publish-all') message = `container port ${target}/${first.protocol} published on a random host port on ${iface}`;
    else message = `port ${shown} published on ${iface}`;
    add(ctx, g.check, message, {
      service: s.name,
      pos: first.pos ?? s.pos(['ports']),
      data: { port: portText(first), target: first.target, hostIp: first.hostIp, protocol: first.protocol, index: first.index, count: g.ports.length },
    });
  }
  if (s.publishAll) add(ctx, 'port-publish-all', 'all EXPOSEd ports are published on random host ports on all interfaces (-P)', { service: s.name, pos: s.pos([]) });
}

function checkService(ctx: CheckContext, s: ServiceFacts): void {
  const before = ctx.findings.length;
  checkServiceInner(ctx, s);
  const at = s.pos([]);
  if (!at) return;
  for (const f of ctx.findings.slice(before)) {
    if (f.pos && f.pos.file === at.file && f.pos.line === at.line && f.pos.col === at.col) f.atService = true;
  }
}

function checkServiceInner(ctx: CheckContext, s: ServiceFacts): void {
  checkPorts(ctx, s);
  if (s.networkMode === 'host') add(ctx, 'network-mode-host', 'network_mode: host shares the host network namespace', { service: s.name, pos: s.pos(['network_mode']) });
  s.volumes.forEach((v, i) => {
    const hit = (v.source && SOCKET_RE.test(v.source)) || (v.type === 'bind' && SOCKET_RE.test(v.target));
    if (hit) {
      add(ctx, 'docker-socket', `the Docker socket ${v.source ?? v.target} is mounted at ${v.target}${v.readOnly ? ' (read-only, which does not restrict the API)' : ''}`, {
        service: s.name,
        pos: v.pos ?? s.pos(['volumes', i]),
        data: { source: v.source ?? '', target: v.target, readOnly: v.readOnly },
      });
    }
  });
  if (s.privileged) add(ctx, 'privileged', 'privileged: true', { service: s.name, pos: s.pos(['privileged']) });
  s.capAdd.forEach((c, i) => {
    const name = capName(c);
    if (DANGEROUS_CAPS.has(name)) add(ctx, 'cap-add-dangerous', `cap_add ${name}`, { service: s.name, pos: s.pos(['cap_add', i]), data: { capability: name } });
  });
  if (!s.capDrop.some((c) => capName(c) === 'ALL') && !s.privileged) add(ctx, 'no-cap-drop-all', 'capabilities are not dropped (no cap_drop: [ALL])', { service: s.name, pos: s.pos(['cap_drop']) });
  const user = s.user?.trim();
  if (user === undefined || user === '') add(ctx, 'root-user', 'no user: set; the image\'s default user (root for most images) applies', { service: s.name, pos: s.pos([]) });
  else if (/^(root|0)(:.*)?$/.test(user)) add(ctx, 'root-user', `runs as ${user}`, { service: s.name, pos: s.pos(['user']) });
  if (!s.readOnly) add(ctx, 'no-read-only', 'the root filesystem is writable (no read_only: true)', { service: s.name, pos: s.pos(['read_only']) });
  if (!s.securityOpt.some((o) => /^no-new-privileges([:=](true|1))?$/i.test(o.trim()))) {
    add(ctx, 'no-new-privileges', 'no-new-privileges is not set', { service: s.name, pos: s.pos(['security_opt']) });
  }
  for (const [key, value] of Object.entries(s.environment)) {
    if (isSecretName(key) && isLiteralSecretValue(value) && !interpolatedAt(s.pos(['environment', key]), key)) {
      add(ctx, 'plaintext-secret', `${key} holds a literal secret in the environment`, { service: s.name, pos: s.pos(['environment', key]), data: { variable: key } });
    }
  }
  const kind = serviceKind(s);
  if (kind && DATA_KINDS.has(kind)) {
    const env = s.environment;
    const tls = tlsConfigured(kind, s.commandText, env);
    if (tls === false) add(ctx, 'db-no-tls', `${kind} without TLS (nothing in command or environment enables it)`, { service: s.name, pos: s.pos(s.commandText ? ['command'] : []), data: { kind } });
  }
}

const lineCache = new Map<string, string[]>();

/**
 * Whether the value at `pos` was written with a variable (`KEY=${VAR}`): then the secret lives in the
 * environment or .env (the documented Compose pattern), not in the Compose file, and is not reported.
 */
function interpolatedAt(pos: SourcePos | undefined, key: string): boolean {
  if (!pos || pos.line <= 0) return false;
  let lines = lineCache.get(pos.file);
  if (!lines) {
    try {
      lines = readFileSync(pos.file, 'utf8').split(/\r?\n/);
    } catch {
      lines = [];
    }
    if (lineCache.size > 256) lineCache.clear();
    lineCache.set(pos.file, lines);
  }
  const line = lines[pos.line - 1] ?? '';
  const at = line.indexOf(key);
  const value = at >= 0 ? line.slice(at + key.length) : line;
  return /\$\{?[A-Za-z_]/.test(value);
}

function checkDataNetworks(ctx: CheckContext, p: ProjectFacts): void {
  for (const s of p.services) {
    if (!isDataService(s) || s.networkMode !== undefined) continue;
    for (const key of s.networks) {
      const n = p.networks[key];
      if (n && n.internal) continue;
      add(ctx, 'db-network-not-internal', `${serviceKind(s)} is on network "${key}", which is not internal`, {
        service: s.name,
        pos: s.pos(['networks', key]),
        data: { network: key },
      });
    }
  }
}

function checkReachability(ctx: CheckContext, p: ProjectFacts): void {
  if (!p.world || !p.policySet) return;
  const data = p.services.filter(isDataService);
  if (!data.length) return;
  let analysis;
  try {
    analysis = analyze(p.world, p.policySet);
  } catch (e) {
    ctx.warnings.push(`reachability checks skipped: the analyzer failed (${(e as Error).message})`);
    return;
  }
  const internet = analysis.nodeIndex('internet');
  if (internet === undefined) return;
  const entries: number[] = [];
  analysis.nodes.forEach((n, i) => {
    if (n.kind === 'endpoint' && !analysis.connections(internet, i).isEmpty) entries.push(i);
  });
  for (const s of data) {
    const idx = analysis.nodeIndex(p.endpointIdOf(s.name));
    if (idx === undefined) continue;
    const direct = analysis.connections(internet, idx);
    if (!direct.isEmpty) {
      add(ctx, 'db-reachable-from-entry', `reachable from the internet (${direct.toString()})`, { service: s.name, pos: s.pos([]), atService: true, data: { from: 'internet', connections: direct.toString() } });
      continue;
    }
    const from: string[] = [];
    let via = ConnSet.none;
    for (const e of entries) {
      if (e === idx) continue;
      const c = analysis.connections(e, idx);
      if (c.isEmpty) continue;
      from.push(analysis.nodes[e].endpoint?.name ?? analysis.nodes[e].id);
      via = via.union(c);
    }
    if (from.length) {
      add(ctx, 'db-reachable-from-entry', `reachable from the public entr${from.length === 1 ? 'y' : 'ies'} ${from.map((f) => `"${f}"`).join(', ')} (${via.toString()})`, {
        service: s.name,
        pos: s.pos([]),
        atService: true,
        data: { from: from.join(','), connections: via.toString() },
      });
    }
  }
}

function checkSegmentation(ctx: CheckContext, p: ProjectFacts, firstPos: SourcePos | undefined): void {
  const attached = p.services.filter((s) => s.networkMode === undefined);
  if (attached.length < 3) return;
  const nets = new Set(attached.flatMap((s) => s.networks));
  if (nets.size !== 1) return;
  const [only] = [...nets];
  add(ctx, 'single-network', `all ${attached.length} services share the one network "${only}": no segmentation`, { pos: p.networks[only]?.pos ?? firstPos, data: { network: only } });
}

function checkOverlay(ctx: CheckContext, n: NetworkFacts): void {
  if (n.driver !== 'overlay' || n.external) return;
  const enc = n.options.encrypted;
  if (enc !== undefined && !/^(false|0|no)$/i.test(enc)) return;
  add(ctx, 'overlay-unencrypted', `overlay network "${n.key}" is not encrypted`, { pos: n.pos, data: { network: n.key } });
}

export function runProjectChecks(p: ProjectFacts, source: Finding['source']): { findings: Finding[]; warnings: string[] } {
  const ctx: CheckContext = { source, findings: [], warnings: [] };
  lineCache.clear();
  for (const s of p.services) checkService(ctx, s);
  checkDataNetworks(ctx, p);
  checkReachability(ctx, p);
  checkSegmentation(ctx, p, p.services[0]?.pos([]));
  for (const n of Object.values(p.networks)) checkOverlay(ctx, n);
  return ctx;
}

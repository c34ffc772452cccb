// `moat audit --fix FILE`: a Compose override file with the safe fixes, for `docker compose -f base.yml -f FILE`.
//  - ports on all interfaces (and high-risk ports on public addresses) are re-bound to loopback; the
//    service's whole port list is replaced with `!override` (Compose >= 2.24.4), since Compose appends
//    ports from later files;
//  - `cap_drop: [ALL]`, adding back the capabilities a root entrypoint usually needs (it may chown and
//    switch users) and NET_BIND_SERVICE when it listens below 1024;
//  - `read_only: true` with tmpfs for /tmp and /run;
//  - `security_opt: [no-new-privileges:true]`;
//  - `internal: true` on a network that holds a database, when no service loses its only way out.
import { Document, YAMLSeq } from 'yaml';
import { isDataService } from './checks.js';
import { projectFactsFromCompose, type ServiceFacts } from './facts.js';
import { isAllInterfaces, isLoopback, isPublicAddress } from './known.js';
import type { ComposeProject } from '../sources/compose/index.js';
import type { Finding } from './types.js';

export const FIXED_CHECKS = ['port-all-interfaces', 'port-high-risk', 'port-publish-all', 'no-cap-drop-all', 'no-read-only', 'no-new-privileges', 'db-network-not-internal'] as const;

/** Capabilities of Docker's default set that a root entrypoint which prepares files and drops to a user needs. */
const ROOT_ENTRYPOINT_CAPS = ['CHOWN', 'SETUID', 'SETGID', 'DAC_OVERRIDE', 'FOWNER'];

export interface FixPlan {
  /** The override file's text. */
  text: string;
  /** Findings the override addresses. */
  fixed: Finding[];
  /** Notes for the user (what to review). */
  notes: string[];
}

function loopbackFor(hostIp: string): string {
  return hostIp === '::' || (hostIp.includes(':') && !isLoopback(hostIp)) ? '::1' : '127.0.0.1';
}

/** Which networks can become internal without cutting anyone off (see the file header). */
function internalizable(project: ComposeProject, services: ServiceFacts[], key: string): boolean {
  const n = project.networks[key];
  if (!n || n.external || n.internal || (n.driver !== 'bridge' && n.driver !== 'overlay')) return false;
  const members = services.filter((s) => s.networkMode === undefined && s.networks.includes(key));
  const candidates = new Set<string>();
  for (const s of members) if (isDataService(s)) for (const k of s.networks) candidates.add(k);
  for (const s of members) {
    if (isDataService(s) && s.ports.length === 0) continue;
    // Anyone else (or a data service that publishes ports) must keep another network that stays routed.
    const other = s.networks.filter((k) => k !== key && !candidates.has(k) && !project.networks[k]?.internal);
    if (other.length === 0) return false;
  }
  return true;
}

export function buildFix(project: ComposeProject, findings: Finding[]): FixPlan {
  const facts = projectFactsFromCompose(project);
  const byName = new Map(facts.services.map((s) => [s.name, s]));
  const fixed: Finding[] = [];
  const notes: string[] = [];
  const services: Record<string, Record<string, unknown>> = {};
  const networks: Record<string, Record<string, unknown>> = {};
  const svcOut = (name: string) => (services[name] ??= {});

  const byService = new Map<string, Finding[]>();
  for (const f of findings) {
    if (!f.service || f.source !== 'compose') continue;
    const list = byService.get(f.service) ?? [];
    list.push(f);
    byService.set(f.service, list);
  }
  for (const [name, list] of byService) {
    const s = byName.get(name);
    if (!s) continue;
    const has = (id: string) => list.some((f) => f.checkId === id);
    const portFindings = list.filter((f) => f.checkId === 'port-all-interfaces' || f.checkId === 'port-high-risk' || f.checkId === 'port-publish-all');
    if (portFindings.length && s.networkMode === undefined) {
      const seq = new YAMLSeq();
      for (const p of s.ports) {
        const rebind = isAllInterfaces(p.hostIp) || (isPublicAddress(p.hostIp) && portFindings.some((f) => f.data?.index === p.index));
        const entry: Record<string, unknown> = { target: p.target };
        if (p.published !== undefined) entry.published = p.published;
        const ip = rebind ? loopbackFor(p.hostIp) : p.hostIp;
        if (ip) entry.host_ip = ip;
        entry.protocol = p.protocol;
        seq.items.push(entry);
      }
      svcOut(name).ports = seq;
      fixed.push(...portFindings);
    }
    if (has('no-cap-drop-all')) {
      const o = svcOut(name);
      o.cap_drop = ['ALL'];
      const add: string[] = [];
      if (!s.user || /^(root|0)(:.*)?$/.test(s.user.trim())) add.push(...ROOT_ENTRYPOINT_CAPS);
      if (s.containerPorts.some((p) => p < 1024)) add.push('NET_BIND_SERVICE');
      const already = new Set(s.capAdd.map((c) => c.toUpperCase().replace(/^CAP_/, '')));
      const missing = add.filter((c) => !already.has(c));
      if (missing.length) o.cap_add = missing;
      fixed.push(...list.filter((f) => f.checkId === 'no-cap-drop-all'));
    }
    if (has('no-read-only')) {
      const o = svcOut(name);
      o.read_only = true;
      o.tmpfs = ['/tmp', '/run'];
      fixed.push(...list.filter((f) => f.checkId === 'no-read-only'));
    }
    if (has('no-new-privileges')) {
      svcOut(name).security_opt = ['no-new-privileges:true'];
      fixed.push(...list.filter((f) => f.checkId === 'no-new-privileges'));
    }
    for (const f of list.filter((x) => x.checkId === 'db-network-not-internal')) {
      const key = String(f.data?.network ?? '');
      if (!key) continue;
      if (networks[key] || internalizable(project, facts.services, key)) {
        networks[key] = { internal: true };
        fixed.push(f);
      } else if (!notes.some((n) => n.includes(`"${key}"`))) {
        notes.push(`network "${key}" not made internal: a service on it has no other network (it would lose its way out, or its published ports); move the database to its own internal network by hand`);
      }
    }
  }
  const body: Record<string, unknown> = {};
  if (Object.keys(services).length) body.services = services;
  if (Object.keys(networks).length) body.networks = networks;
  const doc = new Document(body);
  // Document() copies plain objects; re-attach the tag on the port sequences it made.
  for (const [name, o] of Object.entries(services)) {
    if (!o.ports) continue;
    const node = doc.getIn(['services', name, 'ports'], true) as YAMLSeq | undefined;
    if (node) node.tag = '!override';
  }
  if (Object.keys(services).some((n) => services[n].read_only)) {
    notes.push('read_only: services that write outside /tmp and /run (caches, pid files, data) need a volume or tmpfs for those paths');
  }
  if (Object.keys(services).some((n) => services[n].cap_drop)) {
    notes.push('cap_drop ALL: a service that needs more capabilities than the ones added back fails at start; add them with cap_add');
  }
  const header = [
    `# Written by moat audit --fix for ${project.files.map((f) => f.split('/').pop()).join(', ')}.`,
    '# Use: docker compose -f <your files> -f <this file> up -d   (port lists use !override: Compose 2.24.4 or later)',
    ...notes.map((n) => `# Review: ${n}`),
  ];
  const text = Object.keys(body).length ? `${header.join('\n')}\n${doc.toString({ lineWidth: 0 })}` : `${header.join('\n')}\n# Nothing to fix safely.\n{}\n`;
  return { text, fixed, notes };
}

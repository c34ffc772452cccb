// moat policy files (`apiVersion: moat/v1`, `kind: Policy`) -> Policy IR. Format: docs/policy-file.md.
import { z } from 'zod';
import { cidrWithin, parseCidr } from '../../model/address.js';
import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import {
  emptyPolicySet,
  groupLabel,
  mergePolicySets,
  type EndpointSelector,
  type LabelSelector,
  type Peer,
  type PolicySet,
  type PortSpec,
  type Rule,
} from '../../model/ir.js';
import type { YamlDoc } from '../../util/yaml.js';
import { parsePort, parseRuleValue } from '../labels/grammar.js';

export const MOAT_API_VERSION = 'moat/v1';

const labelValue = z.string().max(63).regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, 'must be 63 characters or less, alphanumeric, -, _ or . inside');
const labelKey = z.string().min(1).max(253).regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'must be a label key like tier or example.com/tier');
const labelMap = z.record(labelKey, labelValue);
const requirement = z.strictObject({
  key: labelKey,
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(labelValue).optional(),
});
const name = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'must be lowercase letters, digits, _ . - (up to 63)');
const groupName = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'must start with a lowercase letter, then up to 62 of a-z 0-9 _ . -');
const oneOrMany = <T extends z.ZodTypeAny>(t: T) => z.union([t, z.array(t)]);

const selectorSchema = z.strictObject({
  namespace: oneOrMany(name).optional(),
  service: oneOrMany(z.string().min(1).max(253)).optional(),
  container: oneOrMany(z.string().min(1).max(253)).optional(),
  labels: labelMap.optional(),
  matchExpressions: z.array(requirement).optional(),
});

const peerObject = z.union([
  z.strictObject({ group: groupName, namespace: name.optional() }),
  z.strictObject({ cidr: z.string(), except: z.array(z.string()).optional() }),
  z.strictObject({ cidrSet: name }),
  z.strictObject({ select: selectorSchema }),
]);
const peerSchema = z.union([z.string().max(256), peerObject]);
const portSchema = z.union([
  z.number().int(),
  z.string().max(32),
  z.strictObject({ port: z.number().int(), endPort: z.number().int().optional(), protocol: z.enum(['TCP', 'UDP', 'SCTP', 'tcp', 'udp', 'sctp']).optional() }),
  z.strictObject({ name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/, 'must be a port name like http (up to 15 of a-z 0-9 -)'), protocol: z.enum(['TCP', 'UDP', 'SCTP', 'tcp', 'udp', 'sctp']).optional() }),
]);
const ingressRule = z.strictObject({ from: z.array(peerSchema).optional(), ports: z.array(portSchema).optional() });
const egressRule = z.strictObject({ to: z.array(peerSchema).optional(), ports: z.array(portSchema).optional() });

const groupSchema = z.strictObject({
  description: z.string().optional(),
  select: selectorSchema.optional(),
  ingress: z.array(ingressRule).optional(),
  egress: z.array(egressRule).optional(),
  deny: z.strictObject({ ingress: z.array(ingressRule).optional(), egress: z.array(egressRule).optional() }).optional(),
});

export const policyFileSchema = z.strictObject({
  apiVersion: z.literal(MOAT_API_VERSION),
  kind: z.literal('Policy'),
  metadata: z.strictObject({ name, description: z.string().optional() }),
  defaultStance: z.enum(['allow', 'deny']).optional(),
  namespaces: z.record(name, z.strictObject({ labels: labelMap })).optional(),
  cidrSets: z.record(name, z.array(z.string())).optional(),
  internalRanges: z.array(z.string()).optional(),
  groups: z.record(groupName, groupSchema).optional(),
  publishedPorts: z
    .array(
      z.strictObject({
        hostPort: z.number().int(),
        protocol: z.enum(['TCP', 'UDP', 'SCTP', 'tcp', 'udp', 'sctp']).optional(),
        group: groupName.optional(),
        from: z.array(peerSchema),
      }),
    )
    .optional(),
});
export type PolicyFile = z.infer<typeof policyFileSchema>;

type Path = (string | number)[];

/** Compiles the moat/v1 documents of one file. */
export function compileMoatDocuments(docs: YamlDoc[]): { policySet: PolicySet; diagnostics: Diagnostic[] } {
  const set = emptyPolicySet();
  const diagnostics: Diagnostic[] = [];
  for (const y of docs) compileOne(y, set, diagnostics);
  return { policySet: set, diagnostics };
}

function zodMessage(issue: z.core.$ZodIssue): { message: string; fix: string; keyIssue: boolean } {
  if (issue.code === 'unrecognized_keys') {
    return { message: `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`, fix: 'remove it or check its spelling against docs/policy-file.md', keyIssue: true };
  }
  if (issue.code === 'invalid_value' && issue.path.join('.') === 'apiVersion') {
    return { message: `apiVersion must be ${MOAT_API_VERSION}`, fix: `write apiVersion: ${MOAT_API_VERSION}`, keyIssue: false };
  }
  return { message: issue.message, fix: 'see docs/policy-file.md for the format', keyIssue: false };
}

function compileOne(y: YamlDoc, set: PolicySet, diagnostics: Diagnostic[]): void {
  const local = emptyPolicySet();
  const raw = y.doc.toJS({ maxAliasCount: 1000 }) as unknown;
  const parsed = policyFileSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path as Path;
      const m = zodMessage(issue);
      const pos = m.keyIssue && issue.code === 'unrecognized_keys' ? y.keyPosOf([...path, issue.keys[0]]) : y.posOf(path);
      diagnostics.push({ severity: 'error', code: 'policy.schema', message: `${path.length ? `${path.join('.')}: ` : ''}${m.message}`, fix: m.fix, pos });
    }
    return;
  }
  const file = parsed.data;
  const errors: Diagnostic[] = [];
  const err = (path: Path, message: string, fix: string) => errors.push({ severity: 'error', code: 'policy.invalid', message, fix, pos: y.posOf(path) });
  const source = y.file;

  // CIDR sets.
  const cidrSets = new Map<string, string[]>();
  for (const [setName, cidrs] of Object.entries(file.cidrSets ?? {})) {
    const out: string[] = [];
    cidrs.forEach((c, i) => {
      const p = parseCidr(c);
      if (!p) err(['cidrSets', setName, i], `"${c}" is not a valid CIDR`, 'write an address or a CIDR like 192.168.1.0/24 or 2001:db8::/48');
      else out.push(p.text);
    });
    cidrSets.set(setName, out);
    local.externals.push({ name: setName, cidrs: out });
  }
  (file.internalRanges ?? []).forEach((c, i) => {
    const p = parseCidr(c);
    if (!p) err(['internalRanges', i], `"${c}" is not a valid CIDR`, 'write a CIDR like 10.0.0.0/8');
    else local.internalRanges.push(p.text);
  });
  for (const [ns, def] of Object.entries(file.namespaces ?? {})) local.namespaceLabels[ns] = { ...def.labels };
  if (file.defaultStance) local.defaultStance = file.defaultStance;

  const toSelector = (sel: z.infer<typeof selectorSchema>, path: Path, describes?: string): EndpointSelector => {
    const list = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
    const labels: LabelSelector = { matchLabels: { ...(sel.labels ?? {}) }, matchExpressions: [...(sel.matchExpressions ?? [])] };
    sel.matchExpressions?.forEach((r, i) => {
      const needs = r.operator === 'In' || r.operator === 'NotIn';
      if (needs && !(r.values && r.values.length)) err([...path, 'matchExpressions', i], `operator ${r.operator} needs values`, 'add values: [...]');
      if (!needs && r.values && r.values.length) err([...path, 'matchExpressions', i], `operator ${r.operator} takes no values`, 'remove values');
    });
    const services = list(sel.service);
    if (services) labels.matchExpressions!.push({ key: 'com.docker.compose.service', operator: 'In', values: services });
    const containers = list(sel.container);
    if (containers) labels.matchExpressions!.push({ key: 'moat.io/container-name', operator: 'In', values: containers });
    const namespaces = list(sel.namespace);
    return { namespaces: namespaces ? { kind: 'names', names: namespaces } : { kind: 'all' }, labels, describes };
  };

  const toPeer = (p: z.infer<typeof peerSchema>, path: Path): Peer | undefined => {
    if (typeof p === 'string') {
      if (cidrSets.has(p)) return undefined; // expanded by the caller
      const r = parseRuleValue(p);
      if (!r.ok) {
        err(path, `peer "${p}": ${r.error.message}`, r.error.fix);
        return undefined;
      }
      if (r.value.length !== 1 || r.value[0].port) {
        err(path, `peer "${p}" must be one group, CIDR or keyword without a port`, 'put ports under ports:');
        return undefined;
      }
      const lp = r.value[0].peer;
      if (lp.kind === 'group') {
        return {
          kind: 'endpoints',
          selector: {
            namespaces: lp.namespace ? { kind: 'names', names: [lp.namespace] } : { kind: 'all' },
            labels: { matchLabels: { [groupLabel(lp.group)]: 'true' } },
            describes: `group ${lp.namespace ? `${lp.namespace}/` : ''}${lp.group}`,
          },
        };
      }
      if (lp.kind === 'cidr') return { kind: 'cidr', cidr: lp.cidr, except: [] };
      return { kind: lp.kind };
    }
    if ('group' in p) {
      return {
        kind: 'endpoints',
        selector: {
          namespaces: p.namespace ? { kind: 'names', names: [p.namespace] } : { kind: 'all' },
          labels: { matchLabels: { [groupLabel(p.group)]: 'true' } },
          describes: `group ${p.namespace ? `${p.namespace}/` : ''}${p.group}`,
        },
      };
    }
    if ('cidr' in p) {
      const c = parseCidr(p.cidr);
      if (!c) {
        err([...path, 'cidr'], `"${p.cidr}" is not a valid CIDR`, 'write a CIDR like 10.0.0.0/8');
        return undefined;
      }
      const except: string[] = [];
      (p.except ?? []).forEach((e, i) => {
        const x = parseCidr(e);
        if (!x) err([...path, 'except', i], `"${e}" is not a valid CIDR`, 'write a CIDR inside the cidr');
        else if (x.prefix <= c.prefix || !cidrWithin(x, c)) {
          err([...path, 'except', i], `except ${e} is not strictly inside ${p.cidr}`, 'an except range must be a smaller range inside cidr');
        } else except.push(x.text);
      });
      return { kind: 'cidr', cidr: c.text, except };
    }
    if ('select' in p) return { kind: 'endpoints', selector: toSelector(p.select, [...path, 'select'], 'selector') };
    return undefined;
  };

  const toPeers = (list: z.infer<typeof peerSchema>[] | undefined, path: Path): Peer[] | 'all' => {
    if (!list || list.length === 0) return 'all';
    const out: Peer[] = [];
    list.forEach((p, i) => {
      const setName = typeof p === 'string' ? p : 'cidrSet' in p ? p.cidrSet : undefined;
      if (setName !== undefined && (cidrSets.has(setName) || (typeof p !== 'string'))) {
        const cidrs = cidrSets.get(setName);
        if (!cidrs) {
          err([...path, i], `unknown cidrSet "${setName}"`, 'define it under cidrSets:');
          return;
        }
        for (const c of cidrs) out.push({ kind: 'cidr', cidr: c, except: [] });
        return;
      }
      const peer = toPeer(p, [...path, i]);
      if (peer) {
        if (peer.kind === 'any') return void out.splice(0, out.length, { kind: 'any' });
        out.push(peer);
      }
    });
    return out.some((p) => p.kind === 'any') ? 'all' : out;
  };

  const toPorts = (list: z.infer<typeof portSchema>[] | undefined, path: Path): PortSpec[] | undefined => {
    if (!list || list.length === 0) return undefined;
    const out: PortSpec[] = [];
    list.forEach((p, i) => {
      const at = [...path, i];
      if (typeof p === 'number' || typeof p === 'string') {
        const r = parsePort(String(p), 0);
        if (!r.ok) return err(at, r.error.message, r.error.fix);
        out.push({ protocol: r.value.protocol, port: r.value.from, endPort: r.value.to === r.value.from ? undefined : r.value.to });
        return;
      }
      const protocol = (p.protocol ?? 'TCP').toUpperCase() as 'TCP' | 'UDP' | 'SCTP';
      if ('name' in p) return void out.push({ protocol, name: p.name });
      if (p.port < 1 || p.port > 65535) return err([...at, 'port'], `port ${p.port} is out of range`, 'ports are 1 to 65535');
      if (p.endPort !== undefined && (p.endPort < p.port || p.endPort > 65535)) {
        return err([...at, 'endPort'], `endPort ${p.endPort} must be between port and 65535`, `use an endPort from ${p.port} to 65535`);
      }
      out.push({ protocol, port: p.port, endPort: p.endPort });
    });
    return out;
  };

  const rule = (action: 'allow' | 'deny', peers: Peer[] | 'all', ports: PortSpec[] | undefined, path: Path, text: string): Rule => ({
    action,
    peers,
    ports,
    pos: y.posOf(path),
    text,
  });

  for (const [gname, g] of Object.entries(file.groups ?? {})) {
    const gpath: Path = ['groups', gname];
    const pos: SourcePos = y.keyPosOf(gpath);
    if (g.select) local.groups.push({ name: gname, selector: toSelector(g.select, [...gpath, 'select']), pos });
    const hasRules = g.ingress !== undefined || g.egress !== undefined || g.deny !== undefined;
    if (!hasRules) continue;
    const ingress: Rule[] = [];
    const egress: Rule[] = [];
    g.ingress?.forEach((r, i) => ingress.push(rule('allow', toPeers(r.from, [...gpath, 'ingress', i, 'from']), toPorts(r.ports, [...gpath, 'ingress', i, 'ports']), [...gpath, 'ingress', i], `ingress[${i}]`)));
    g.egress?.forEach((r, i) => egress.push(rule('allow', toPeers(r.to, [...gpath, 'egress', i, 'to']), toPorts(r.ports, [...gpath, 'egress', i, 'ports']), [...gpath, 'egress', i], `egress[${i}]`)));
    g.deny?.ingress?.forEach((r, i) => ingress.push(rule('deny', toPeers(r.from, [...gpath, 'deny', 'ingress', i, 'from']), toPorts(r.ports, [...gpath, 'deny', 'ingress', i, 'ports']), [...gpath, 'deny', 'ingress', i], `deny.ingress[${i}]`)));
    g.deny?.egress?.forEach((r, i) => egress.push(rule('deny', toPeers(r.to, [...gpath, 'deny', 'egress', i, 'to']), toPorts(r.ports, [...gpath, 'deny', 'egress', i, 'ports']), [...gpath, 'deny', 'egress', i], `deny.egress[${i}]`)));
    local.policies.push({
      id: `moat:${source}#${gname}`,
      name: `${file.metadata.name}/${gname}`,
      kind: 'moat',
      pos,
      subject: { namespaces: { kind: 'all' }, labels: { matchLabels: { [groupLabel(gname)]: 'true' } }, describes: `group ${gname}` },
      isolates: { ingress: g.ingress !== undefined, egress: g.egress !== undefined },
      ingress,
      egress,
    });
  }

  (file.publishedPorts ?? []).forEach((pp, i) => {
    const path: Path = ['publishedPorts', i];
    if (pp.hostPort < 1 || pp.hostPort > 65535) err([...path, 'hostPort'], `host port ${pp.hostPort} is out of range`, 'ports are 1 to 65535');
    const sources = toPeers(pp.from, [...path, 'from']);
    local.publishedPortAllowlists.push({
      id: `moat:${source}#publishedPorts[${i}]`,
      hostPort: pp.hostPort,
      protocol: (pp.protocol ?? 'TCP').toUpperCase() as 'TCP' | 'UDP' | 'SCTP',
      target: pp.group ? { namespaces: { kind: 'all' }, labels: { matchLabels: { [groupLabel(pp.group)]: 'true' } }, describes: `group ${pp.group}` } : undefined,
      sources: sources === 'all' ? [{ kind: 'any' }] : sources,
      pos: y.posOf(path),
    });
  });

  // A file with errors contributes nothing: the caller keeps the last good policy.
  if (errors.length) {
    diagnostics.push(...errors);
    return;
  }
  const merged = mergePolicySets([set, local]);
  Object.assign(set, merged);
}


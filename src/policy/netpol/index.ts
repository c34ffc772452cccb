// Kubernetes NetworkPolicy (networking.k8s.io/v1) -> Policy IR. Semantics and validation follow the
// Kubernetes documentation and the API server (pkg/apis/networking/validation), with unknown fields
// rejected as `kubectl apply --validate=strict` does. A document with errors produces no Policy:
// a bad policy never widens access, and never silently narrows it either (it is reported).
// Format and mapping to Docker: docs/networkpolicy.md.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node, type Scalar } from 'yaml';
import { cidrContains, type Cidr } from '../../model/address.js';
import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import type { EndpointSelector, LabelSelector, LabelSelectorRequirement, Peer, Policy, PortSpec, Rule } from '../../model/ir.js';
import { DEFAULT_NAMESPACE, type Protocol } from '../../model/world.js';
import {
  isDns1123Label,
  isDns1123Subdomain,
  isQualifiedName,
  isValidLabelValue,
  isValidPortName,
  isValidPortNum,
  parseStrictCidr,
} from './k8s-validation.js';

export const NETPOL_API_VERSION = 'networking.k8s.io/v1';

export { isDns1123Label, isDns1123Subdomain, isQualifiedName, isValidLabelValue, isValidPortName } from './k8s-validation.js';

type Path = (string | number)[];

interface Field {
  key: Scalar;
  name: string;
  /** The value node; null when the YAML value is empty/null. */
  value: Node | null;
}

const OBJECT_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec'];
const LIST_FIELDS = ['apiVersion', 'kind', 'metadata', 'items'];
const METADATA_FIELDS = [
  'name',
  'namespace',
  'labels',
  'annotations',
  'generateName',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
  'ownerReferences',
  'finalizers',
  'managedFields',
];
const SPEC_FIELDS = ['podSelector', 'ingress', 'egress', 'policyTypes'];
const SELECTOR_FIELDS = ['matchLabels', 'matchExpressions'];
const REQUIREMENT_FIELDS = ['key', 'operator', 'values'];
const INGRESS_RULE_FIELDS = ['from', 'ports'];
const EGRESS_RULE_FIELDS = ['to', 'ports'];
const PEER_FIELDS = ['podSelector', 'namespaceSelector', 'ipBlock'];
const IPBLOCK_FIELDS = ['cidr', 'except'];
const PORT_FIELDS = ['protocol', 'port', 'endPort'];
const PROTOCOLS: Protocol[] = ['TCP', 'UDP', 'SCTP'];
const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
/** Plain scalars that YAML 1.1 (go-yaml v2, used by kubectl) reads as booleans and YAML 1.2 as strings. */
const YAML11_BOOLS = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'n', 'N', 'no', 'No', 'NO', 'on', 'On', 'ON', 'off', 'Off', 'OFF']);

export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

function typeName(node: Node | null): string {
  if (node === null) return 'null';
  if (isMap(node)) return 'an object';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
    if (typeof v === 'boolean') return 'a boolean';
    if (typeof v === 'string') return 'a string';
  }
  return 'an unsupported value';
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** Per-document parsing state. */
class Ctx {
  readonly diagnostics: Diagnostic[] = [];
  errorCount = 0;
  constructor(
    readonly file: string,
    readonly lc: LineCounter,
    readonly doc: Document.Parsed,
  ) {}

  pos(node: { range?: [number, number, number] | null } | null | undefined, fallback?: SourcePos): SourcePos {
    if (node?.range) {
      const { line, col } = this.lc.linePos(node.range[0]);
      return { file: this.file, line, col };
    }
    return fallback ?? { file: this.file, line: 1, col: 1 };
  }

  /** Position of a field's value, or of its key when the value is empty. */
  valuePos(f: Field): SourcePos {
    return f.value && f.value.range && !(isScalar(f.value) && f.value.value === null) ? this.pos(f.value) : this.pos(f.key);
  }

  error(pos: SourcePos, code: string, message: string, fix: string): void {
    this.errorCount++;
    this.diagnostics.push({ severity: 'error', code, message, fix, pos });
  }

  warn(pos: SourcePos, code: string, message: string, fix: string): void {
    this.diagnostics.push({ severity: 'warning', code, message, fix, pos });
  }

  resolve(node: unknown): Node | null {
    let n = node as Node | null | undefined;
    for (let i = 0; i < 32 && n && isAlias(n); i++) n = n.resolve(this.doc) as Node | undefined;
    if (!n) return null;
    if (isScalar(n) && n.value === null) return null;
    return n;
  }

  /**
   * The fields of a map node (merge keys `<<` expanded, explicit keys winning), with unknown
   * fields reported. Returns undefined (after reporting) when the node is not a map.
   */
  fields(node: Node, path: Path, allowed: readonly string[], what: string): Map<string, Field> | undefined {
    if (!isMap(node)) {
      this.error(this.pos(node), 'netpol.type', `${formatPath(path) || 'document'}: must be an object (${what}), not ${typeName(node)}`, `write ${what} as a YAML mapping (key: value lines)`);
      return undefined;
    }
    const out = new Map<string, Field>();
    const merged: Field[] = [];
    const collect = (map: Node, into: Field[] | Map<string, Field>, depth: number): void => {
      if (!isMap(map) || depth > 8) return;
      for (const pair of map.items) {
        const key = pair.key as Node | null;
        if (isScalar(key) && (typeof key.value === 'symbol' || key.value === '<<')) {
          const v = this.resolve(pair.value);
          const sources = v && isSeq(v) ? v.items.map((x) => this.resolve(x)) : [v];
          for (const s of sources) if (s) collect(s, merged, depth + 1);
          continue;
        }
        if (!isScalar(key)) {
          this.error(this.pos(key ?? map), 'netpol.type', `${formatPath(path) || 'document'}: keys must be plain strings`, 'write keys as plain words');
          continue;
        }
        const name = typeof key.value === 'string' ? key.value : String(key.source ?? key.value);
        const f: Field = { key, name, value: this.resolve(pair.value) };
        if (into instanceof Map) into.set(name, f);
        else into.push(f);
      }
    };
    collect(node, out, 0);
    for (const f of merged) if (!out.has(f.name)) out.set(f.name, f);
    if (allowed.length) {
      for (const f of out.values()) {
        if (allowed.includes(f.name)) continue;
        const guess = closest(f.name, allowed);
        this.error(
          this.pos(f.key),
          'netpol.unknown-field',
          `unknown field "${formatPath([...path, f.name])}"`,
          guess ? `did you mean "${guess}"? (the fields of ${what} are ${allowed.join(', ')})` : `remove it; the fields of ${what} are ${allowed.join(', ')}`,
        );
      }
    }
    return out;
  }

  /** A list node's items (aliases resolved, null items kept as null). */
  items(f: Field, path: Path, what: string): { node: Node | null; index: number }[] | undefined {
    if (f.value === null) return undefined;
    if (!isSeq(f.value)) {
      this.error(this.valuePos(f), 'netpol.type', `${formatPath(path)}: must be a list (${what}), not ${typeName(f.value)}`, `write ${what} as a YAML list ("- " items)`);
      return undefined;
    }
    return f.value.items.map((x, index) => ({ node: this.resolve(x), index }));
  }

  /** Warns about plain scalars that YAML 1.1 (kubectl) would read as booleans. */
  checkYaml11(node: Node | null, path: Path): void {
    if (node && isScalar(node) && node.type === 'PLAIN' && typeof node.value === 'string' && YAML11_BOOLS.has(node.value)) {
      this.warn(
        this.pos(node),
        'netpol.yaml11-bool',
        `${formatPath(path)}: the unquoted value ${node.value} is a boolean for kubectl (YAML 1.1), so Kubernetes would reject this object`,
        `quote it: "${node.value}"`,
      );
    }
  }

  string(f: Field, path: Path, fix: string): string | undefined {
    const v = f.value;
    if (v && isScalar(v) && typeof v.value === 'string') {
      this.checkYaml11(v, path);
      return v.value;
    }
    this.error(this.valuePos(f), 'netpol.type', `${formatPath(path)}: must be a string, not ${typeName(v)}`, fix);
    return undefined;
  }

  stringNode(node: Node | null, fallback: SourcePos, path: Path, fix: string): string | undefined {
    if (node && isScalar(node) && typeof node.value === 'string') {
      this.checkYaml11(node, path);
      return node.value;
    }
    this.error(node ? this.pos(node) : fallback, 'netpol.type', `${formatPath(path)}: must be a string, not ${typeName(node)}`, fix);
    return undefined;
  }

  int(f: Field, path: Path, fix: string): number | undefined {
    const v = f.value;
    if (v && isScalar(v) && typeof v.value === 'number' && Number.isInteger(v.value)) {
      if (/^[-+]?0[0-9]/.test(String(v.source ?? ''))) {
        this.error(this.valuePos(f), 'netpol.type', `${formatPath(path)}: ${String(v.source)} has a leading zero, which kubectl reads as an octal number`, `write ${Number(String(v.source))} without the leading zero`);
        return undefined;
      }
      return v.value;
    }
    this.error(this.valuePos(f), 'netpol.type', `${formatPath(path)}: must be an integer, not ${typeName(v)}`, fix);
    return undefined;
  }
}

function scalarText(node: Node | null): string {
  if (node && isScalar(node)) return String(node.source ?? node.value);
  return '';
}

/** Parse one file's text (multi-document YAML; also `kind: List` / `NetworkPolicyList` with items). */
export function parseNetworkPolicies(text: string, file: string): { policies: Policy[]; diagnostics: Diagnostic[] } {
  const lc = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const policies: Policy[] = [];
  // YAML 1.2 (core schema). The Kubernetes tools read YAML 1.1, where unquoted y/yes/on/n/no/off are
  // booleans and 0755 is octal: such values are flagged where they differ (see yaml11Bool, Ctx.int).
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const list = (Array.isArray(docs) ? docs : [docs]) as Document.Parsed[];
  const seen = new Map<string, SourcePos>();
  for (const doc of list) {
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const { line, col } = lc.linePos(e.pos[0]);
        diagnostics.push({
          severity: 'error',
          code: 'yaml.syntax',
          message: `YAML syntax error: ${e.message.split('\n')[0]}`,
          fix: 'fix the YAML syntax (indentation, quotes, colons, duplicate keys) at this position',
          pos: { file, line, col },
        });
      }
      continue;
    }
    const ctx = new Ctx(file, lc, doc);
    const root = ctx.resolve(doc.contents);
    if (root === null) continue; // an empty document
    parseDocument(ctx, root, policies, seen);
    diagnostics.push(...ctx.diagnostics);
  }
  return { policies, diagnostics };
}

function kindOf(ctx: Ctx, node: Node): { kind?: string; apiVersion?: string; kindNode?: Node | null } {
  if (!isMap(node)) return {};
  let kind: string | undefined;
  let apiVersion: string | undefined;
  let kindNode: Node | null | undefined;
  for (const pair of node.items) {
    const k = pair.key as Node | null;
    if (!isScalar(k)) continue;
    const v = ctx.resolve(pair.value);
    if (k.value === 'kind') {
      kindNode = v;
      if (v && isScalar(v) && typeof v.value === 'string') kind = v.value;
    }
    if (k.value === 'apiVersion' && v && isScalar(v) && typeof v.value === 'string') apiVersion = v.value;
  }
  return { kind, apiVersion, kindNode };
}

function parseDocument(ctx: Ctx, root: Node, policies: Policy[], seen: Map<string, SourcePos>): void {
  if (!isMap(root)) {
    ctx.warn(ctx.pos(root), 'netpol.skipped', `skipping a document that is not a Kubernetes object (it is ${typeName(root)})`, 'moat reads NetworkPolicy objects (networking.k8s.io/v1) and moat/v1 policy files; remove the document if it is a mistake');
    return;
  }
  const { kind, apiVersion } = kindOf(ctx, root);
  if (kind === 'List' || kind === 'NetworkPolicyList') {
    const expected = kind === 'List' ? 'v1' : NETPOL_API_VERSION;
    const fields = ctx.fields(root, [], LIST_FIELDS, `a ${kind}`);
    if (!fields) return;
    const av = fields.get('apiVersion');
    if (!av) ctx.error(ctx.pos(root), 'netpol.api-version', `apiVersion is required (a ${kind} is apiVersion: ${expected})`, `add apiVersion: ${expected}`);
    else if (ctx.string(av, ['apiVersion'], `write apiVersion: ${expected}`) !== undefined && apiVersion !== expected) {
      ctx.error(ctx.valuePos(av), 'netpol.api-version', `apiVersion "${apiVersion}" is not valid for a ${kind}: it must be ${expected}`, `write apiVersion: ${expected}`);
    }
    const items = fields.get('items');
    if (!items) return;
    const list = ctx.items(items, ['items'], 'the objects');
    if (!list) return;
    for (const { node, index } of list) {
      if (!node || !isMap(node)) {
        ctx.error(node ? ctx.pos(node) : ctx.valuePos(items), 'netpol.type', `items[${index}]: must be an object, not ${typeName(node)}`, 'each item of a List is a Kubernetes object');
        continue;
      }
      const k = kindOf(ctx, node);
      if (kind === 'NetworkPolicyList' && k.kind === undefined) {
        // Items of a typed list may omit apiVersion/kind.
        parseObject(ctx, node, ['items', index], policies, seen, true);
      } else parseObjectOrSkip(ctx, node, ['items', index], policies, seen);
    }
    return;
  }
  parseObjectOrSkip(ctx, root, [], policies, seen);
}

function parseObjectOrSkip(ctx: Ctx, node: Node, path: Path, policies: Policy[], seen: Map<string, SourcePos>): void {
  const { kind, apiVersion, kindNode } = kindOf(ctx, node);
  if (kind !== 'NetworkPolicy') {
    const what = kind ? `a ${kind}${apiVersion ? ` (${apiVersion})` : ''}` : 'an object without kind';
    ctx.warn(ctx.pos(kindNode ?? node), 'netpol.skipped', `${path.length ? `${formatPath(path)}: ` : ''}skipping ${what}: not a NetworkPolicy`, 'moat reads NetworkPolicy objects (networking.k8s.io/v1) and moat/v1 policy files; other objects are ignored');
    return;
  }
  parseObject(ctx, node, path, policies, seen, false);
}

function parseObject(ctx: Ctx, node: Node, path: Path, policies: Policy[], seen: Map<string, SourcePos>, typedListItem: boolean): void {
  const before = ctx.errorCount;
  const fields = ctx.fields(node, path, OBJECT_FIELDS, 'a NetworkPolicy');
  if (!fields) return;
  const p = (...rest: Path): Path => [...path, ...rest];

  // apiVersion
  const av = fields.get('apiVersion');
  if (!av) {
    if (!typedListItem) ctx.error(ctx.pos(node), 'netpol.api-version', `${formatPath(p('apiVersion'))}: required (NetworkPolicy is ${NETPOL_API_VERSION})`, `add apiVersion: ${NETPOL_API_VERSION}`);
  } else {
    const v = ctx.string(av, p('apiVersion'), `write apiVersion: ${NETPOL_API_VERSION}`);
    if (v !== undefined && v !== NETPOL_API_VERSION) {
      const old = v === 'extensions/v1beta1' || v === 'networking.k8s.io/v1beta1';
      ctx.error(
        ctx.valuePos(av),
        'netpol.api-version',
        `apiVersion "${v}" is not supported for NetworkPolicy: it must be ${NETPOL_API_VERSION}${old ? ` (${v} was removed in Kubernetes 1.16)` : ''}`,
        `write apiVersion: ${NETPOL_API_VERSION}`,
      );
    }
  }

  // metadata
  let name: string | undefined;
  let namespace = DEFAULT_NAMESPACE;
  let nameNode: Node | null = null;
  const md = fields.get('metadata');
  if (!md || md.value === null) {
    ctx.error(md ? ctx.pos(md.key) : ctx.pos(node), 'netpol.metadata', `${formatPath(p('metadata', 'name'))}: required`, 'add metadata: {name: <a name like allow-web>, namespace: <the Compose project>}');
  } else {
    const mf = ctx.fields(md.value, p('metadata'), METADATA_FIELDS, 'metadata');
    if (mf) {
      const nf = mf.get('name');
      if (!nf || nf.value === null) {
        ctx.error(nf ? ctx.pos(nf.key) : ctx.pos(md.value), 'netpol.metadata', `${formatPath(p('metadata', 'name'))}: required`, 'add metadata.name: a lowercase name like allow-web');
      } else {
        nameNode = nf.value;
        const v = ctx.string(nf, p('metadata', 'name'), 'quote the name');
        if (v !== undefined) {
          const errs = isDns1123Subdomain(v);
          if (errs.length) ctx.error(ctx.valuePos(nf), 'netpol.metadata', `${formatPath(p('metadata', 'name'))}: invalid value "${v}": ${errs.join('; ')}`, 'use lowercase letters, digits, - and . (for example allow-web)');
          else name = v;
        }
      }
      const nsf = mf.get('namespace');
      if (nsf && nsf.value !== null) {
        const v = ctx.string(nsf, p('metadata', 'namespace'), 'quote the namespace');
        if (v !== undefined) {
          const errs = isDns1123Label(v);
          if (errs.length) ctx.error(ctx.valuePos(nsf), 'netpol.metadata', `${formatPath(p('metadata', 'namespace'))}: invalid value "${v}": ${errs.join('; ')}`, 'use the Compose project name: lowercase letters, digits and - (up to 63)');
          else namespace = v;
        }
      }
      const lf = mf.get('labels');
      if (lf && lf.value !== null) parseLabelMap(ctx, lf, p('metadata', 'labels'));
      const af = mf.get('annotations');
      if (af && af.value !== null) {
        const am = ctx.fields(af.value, p('metadata', 'annotations'), [], 'annotations');
        if (am) {
          for (const f of am.values()) {
            const kErrs = isQualifiedName(f.name.toLowerCase());
            if (kErrs.length) ctx.error(ctx.pos(f.key), 'netpol.metadata', `${formatPath(p('metadata', 'annotations'))}: invalid key "${f.name}": ${kErrs.join('; ')}`, 'use a key like example.com/note');
            if (f.value !== null) ctx.string(f, p('metadata', 'annotations', f.name), 'quote the annotation value');
          }
        }
      }
    }
  }

  // spec (absent: the zero spec, which selects every pod of the namespace and isolates it for ingress)
  const sf = fields.get('spec');
  const spec = sf && sf.value !== null ? ctx.fields(sf.value, p('spec'), SPEC_FIELDS, 'a NetworkPolicy spec') : new Map<string, Field>();
  if (!sf || sf.value === null) {
    ctx.warn(sf ? ctx.pos(sf.key) : ctx.pos(node), 'netpol.no-spec', `${formatPath(p('spec'))}: missing: Kubernetes reads this as podSelector: {} with policyTypes [Ingress], which denies all ingress to every pod of namespace ${namespace}`, 'write the spec explicitly (podSelector: {}, policyTypes: [Ingress]) if that is what you mean');
  }
  if (!spec) return;

  const psf = spec.get('podSelector');
  let subjectLabels: LabelSelector = {};
  if (psf) {
    if (psf.value === null) {
      // null decodes to the empty selector in Kubernetes.
      subjectLabels = {};
    } else subjectLabels = parseLabelSelector(ctx, psf, p('spec', 'podSelector')) ?? {};
  }

  // policyTypes
  let types: { ingress: boolean; egress: boolean } | undefined;
  const ptf = spec.get('policyTypes');
  if (ptf && ptf.value !== null) {
    const list = ctx.items(ptf, p('spec', 'policyTypes'), 'policy types');
    if (list) {
      if (list.length > 2) {
        ctx.error(ctx.valuePos(ptf), 'netpol.policy-types', `${formatPath(p('spec', 'policyTypes'))}: may not specify more than two policyTypes`, 'list Ingress, Egress or both, once each');
      } else if (list.length > 0) {
        const t = { ingress: false, egress: false };
        const seenTypes = new Set<string>();
        for (const { node: item, index } of list) {
          const ip = p('spec', 'policyTypes', index);
          const v = ctx.stringNode(item, ctx.valuePos(ptf), ip, 'write Ingress or Egress');
          if (v === undefined) continue;
          if (v !== 'Ingress' && v !== 'Egress') {
            const guess = closest(v, ['Ingress', 'Egress']);
            ctx.error(ctx.pos(item), 'netpol.policy-types', `${formatPath(ip)}: unsupported value "${v}": supported values: "Ingress", "Egress"`, guess ? `write ${guess} (policy types are case-sensitive)` : 'write Ingress or Egress');
            continue;
          }
          // The API server accepts a repeated type (only more than two entries are invalid): warn, as it is harmless.
          if (seenTypes.has(v)) {
            ctx.warn(ctx.pos(item), 'netpol.policy-types', `${formatPath(ip)}: "${v}" is listed twice`, `list ${v} only once`);
            continue;
          }
          seenTypes.add(v);
          if (v === 'Ingress') t.ingress = true;
          else t.egress = true;
        }
        types = t;
      }
      // An empty list is defaulted like an absent one (Kubernetes' SetDefaults_NetworkPolicy).
    }
  }

  const ingress = parseRules(ctx, spec.get('ingress'), p('spec', 'ingress'), 'ingress', namespace);
  const egress = parseRules(ctx, spec.get('egress'), p('spec', 'egress'), 'egress', namespace);

  if (!types) types = { ingress: true, egress: (egress?.length ?? 0) > 0 };
  if (!types.ingress && ingress && ingress.length) {
    ctx.warn(ctx.pos(spec.get('ingress')!.key), 'netpol.ignored-rules', `${formatPath(p('spec', 'ingress'))}: ignored, because policyTypes does not list Ingress`, 'add Ingress to policyTypes, or remove the ingress rules');
  }
  if (!types.egress && egress && egress.length) {
    ctx.warn(ctx.pos(spec.get('egress')!.key), 'netpol.ignored-rules', `${formatPath(p('spec', 'egress'))}: ignored, because policyTypes does not list Egress`, 'add Egress to policyTypes, or remove the egress rules');
  }

  if (ctx.errorCount > before || name === undefined) return;
  const key = `${namespace}/${name}`;
  const here = ctx.pos(nameNode ?? node);
  const first = seen.get(key);
  if (first) {
    ctx.error(here, 'netpol.duplicate', `NetworkPolicy ${key} is defined twice in this file (first at line ${first.line})`, 'give each policy its own metadata.name, or merge the two');
    return;
  }
  seen.set(key, here);
  const subject: EndpointSelector = { namespaces: { kind: 'names', names: [namespace] }, labels: subjectLabels };
  policies.push({
    id: `netpol:${key}`,
    name: key,
    kind: 'netpol',
    pos: ctx.pos(node),
    subject,
    isolates: { ingress: types.ingress, egress: types.egress },
    ingress: types.ingress ? (ingress ?? []) : [],
    egress: types.egress ? (egress ?? []) : [],
  });
}

function parseLabelMap(ctx: Ctx, f: Field, path: Path): Record<string, string> | undefined {
  const m = ctx.fields(f.value!, path, [], 'labels');
  if (!m) return undefined;
  const out: Record<string, string> = {};
  let ok = true;
  for (const e of m.values()) {
    const kErrs = isQualifiedName(e.name);
    if (kErrs.length) {
      ok = false;
      ctx.error(ctx.pos(e.key), 'netpol.label-key', `${formatPath(path)}: invalid label key "${e.name}": ${kErrs.join('; ')}`, 'use a key like app or example.com/tier');
    }
    const vp = [...path, e.name];
    if (e.value === null) {
      // null decodes to the empty string, a valid label value.
      out[e.name] = '';
      continue;
    }
    if (!isScalar(e.value) || typeof e.value.value !== 'string') {
      ok = false;
      const src = scalarText(e.value);
      ctx.error(ctx.valuePos(e), 'netpol.type', `${formatPath(vp)}: must be a string, not ${typeName(e.value)}`, src ? `quote the value: "${src}"` : 'write a string value');
      continue;
    }
    ctx.checkYaml11(e.value, vp);
    const vErrs = isValidLabelValue(e.value.value);
    if (vErrs.length) {
      ok = false;
      ctx.error(ctx.valuePos(e), 'netpol.label-value', `${formatPath(vp)}: invalid label value "${e.value.value}": ${vErrs.join('; ')}`, 'label values are up to 63 of A-Z a-z 0-9 - _ . (alphanumeric at both ends)');
      continue;
    }
    out[e.name] = e.value.value;
  }
  return ok ? out : undefined;
}

function parseLabelSelector(ctx: Ctx, f: Field, path: Path): LabelSelector | undefined {
  const m = ctx.fields(f.value!, path, SELECTOR_FIELDS, 'a label selector');
  if (!m) return undefined;
  const sel: LabelSelector = {};
  const ml = m.get('matchLabels');
  if (ml && ml.value !== null) {
    const labels = parseLabelMap(ctx, ml, [...path, 'matchLabels']);
    if (labels && Object.keys(labels).length) sel.matchLabels = labels;
  }
  const me = m.get('matchExpressions');
  if (me && me.value !== null) {
    const list = ctx.items(me, [...path, 'matchExpressions'], 'label selector requirements');
    const reqs: LabelSelectorRequirement[] = [];
    for (const { node, index } of list ?? []) {
      const rp = [...path, 'matchExpressions', index];
      if (!node) {
        ctx.error(ctx.valuePos(me), 'netpol.selector', `${formatPath(rp)}: empty requirement`, 'write {key: ..., operator: In|NotIn|Exists|DoesNotExist, values: [...]}');
        continue;
      }
      const rf = ctx.fields(node, rp, REQUIREMENT_FIELDS, 'a label selector requirement');
      if (!rf) continue;
      let key: string | undefined;
      const kf = rf.get('key');
      if (!kf || kf.value === null) {
        ctx.error(ctx.pos(node), 'netpol.selector', `${formatPath([...rp, 'key'])}: required`, 'add key: <label key>');
      } else {
        const k = ctx.string(kf, [...rp, 'key'], 'write the label key as a string');
        if (k !== undefined) {
          const errs = isQualifiedName(k);
          if (errs.length) ctx.error(ctx.valuePos(kf), 'netpol.label-key', `${formatPath([...rp, 'key'])}: invalid label key "${k}": ${errs.join('; ')}`, 'use a key like app or example.com/tier');
          else key = k;
        }
      }
      let values: string[] | undefined;
      const vf = rf.get('values');
      if (vf && vf.value !== null) {
        const vl = ctx.items(vf, [...rp, 'values'], 'label values');
        if (vl) {
          values = [];
          for (const { node: vn, index: vi } of vl) {
            const v = ctx.stringNode(vn, ctx.valuePos(vf), [...rp, 'values', vi], vn ? `quote the value: "${scalarText(vn)}"` : 'write a string value');
            if (v === undefined) continue;
            const errs = isValidLabelValue(v);
            if (errs.length) ctx.error(ctx.pos(vn), 'netpol.label-value', `${formatPath([...rp, 'values', vi])}: invalid label value "${v}": ${errs.join('; ')}`, 'label values are up to 63 of A-Z a-z 0-9 - _ . (alphanumeric at both ends)');
            values.push(v);
          }
        }
      }
      const of = rf.get('operator');
      if (!of || of.value === null) {
        ctx.error(ctx.pos(node), 'netpol.selector', `${formatPath([...rp, 'operator'])}: required`, 'add operator: In, NotIn, Exists or DoesNotExist');
        continue;
      }
      const op = ctx.string(of, [...rp, 'operator'], 'write In, NotIn, Exists or DoesNotExist');
      if (op === undefined) continue;
      if (!(OPERATORS as readonly string[]).includes(op)) {
        const guess = closest(op, OPERATORS);
        ctx.error(ctx.valuePos(of), 'netpol.selector', `${formatPath([...rp, 'operator'])}: unsupported value "${op}": supported values: "In", "NotIn", "Exists", "DoesNotExist"`, guess ? `write ${guess} (operators are case-sensitive)` : 'write In, NotIn, Exists or DoesNotExist');
        continue;
      }
      if ((op === 'In' || op === 'NotIn') && !(values && values.length)) {
        ctx.error(vf ? ctx.valuePos(vf) : ctx.valuePos(of), 'netpol.selector', `${formatPath([...rp, 'values'])}: must be specified when \`operator\` is 'In' or 'NotIn'`, `add values: [...] (at least one), or use ${op === 'In' ? 'Exists' : 'DoesNotExist'}`);
        continue;
      }
      if ((op === 'Exists' || op === 'DoesNotExist') && values && values.length) {
        ctx.error(ctx.valuePos(vf!), 'netpol.selector', `${formatPath([...rp, 'values'])}: may not be specified when \`operator\` is 'Exists' or 'DoesNotExist'`, `remove values, or use ${op === 'Exists' ? 'In' : 'NotIn'}`);
        continue;
      }
      if (key !== undefined) reqs.push(values && values.length ? { key, operator: op as LabelSelectorRequirement['operator'], values } : { key, operator: op as LabelSelectorRequirement['operator'] });
    }
    if (reqs.length) sel.matchExpressions = reqs;
  }
  return sel;
}

function parseRules(ctx: Ctx, f: Field | undefined, path: Path, direction: 'ingress' | 'egress', namespace: string): Rule[] | undefined {
  if (!f || f.value === null) return undefined;
  const list = ctx.items(f, path, `${direction} rules`);
  if (!list) return undefined;
  const peersField = direction === 'ingress' ? 'from' : 'to';
  const rules: Rule[] = [];
  for (const { node, index } of list) {
    const rp = [...path, index];
    const rulePos = node ? ctx.pos(node) : ctx.valuePos(f);
    // A null rule decodes to the empty rule, which allows everything (as `{}`).
    const rf = node ? ctx.fields(node, rp, direction === 'ingress' ? INGRESS_RULE_FIELDS : EGRESS_RULE_FIELDS, `an ${direction} rule`) : new Map<string, Field>();
    if (!rf) continue;
    let peers: Peer[] | 'all' = 'all';
    const pf = rf.get(peersField);
    if (pf && pf.value !== null) {
      const pl = ctx.items(pf, [...rp, peersField], 'peers');
      const out: Peer[] = [];
      for (const { node: pn, index: pi } of pl ?? []) {
        const peer = parsePeer(ctx, pn, pn ? ctx.pos(pn) : ctx.valuePos(pf), [...rp, peersField, pi], namespace);
        if (peer) out.push(peer);
      }
      if (pl && pl.length) peers = out;
    }
    let ports: PortSpec[] | undefined;
    const portsField = rf.get('ports');
    if (portsField && portsField.value !== null) {
      const pl = ctx.items(portsField, [...rp, 'ports'], 'ports');
      const out: PortSpec[] = [];
      for (const { node: pn, index: pi } of pl ?? []) {
        const port = parsePort(ctx, pn, pn ? ctx.pos(pn) : ctx.valuePos(portsField), [...rp, 'ports', pi]);
        if (port) out.push(port);
      }
      if (pl && pl.length) ports = out;
    }
    const rule: Rule = { action: 'allow', peers, pos: rulePos, text: formatPath(rp) };
    if (ports) rule.ports = ports;
    rules.push(rule);
  }
  return rules;
}

function parsePeer(ctx: Ctx, node: Node | null, at: SourcePos, path: Path, namespace: string): Peer | undefined {
  const f = node ? ctx.fields(node, path, PEER_FIELDS, 'a peer') : new Map<string, Field>();
  if (!f) return undefined;
  const present = (name: string): Field | undefined => {
    const x = f.get(name);
    if (x && x.value === null) {
      ctx.warn(ctx.pos(x.key), 'netpol.null-selector', `${formatPath([...path, name])} is empty (null), which Kubernetes treats as absent`, name === 'ipBlock' ? 'remove it or give it a cidr' : `write ${name}: {} to match everything, or remove the key`);
      return undefined;
    }
    return x;
  };
  const ps = present('podSelector');
  const ns = present('namespaceSelector');
  const ib = present('ipBlock');
  if (!ps && !ns && !ib) {
    ctx.error(at, 'netpol.peer', `${formatPath(path)}: must specify a peer (podSelector, namespaceSelector or ipBlock)`, 'add podSelector, namespaceSelector or ipBlock; an empty from/to list allows every peer');
    return undefined;
  }
  if (ib && (ps || ns)) {
    ctx.error(at, 'netpol.peer', `${formatPath(path)}: may not specify both ipBlock and another peer`, 'split them into two list items (two peers, ORed)');
  }
  if (ib) {
    const ipPath = [...path, 'ipBlock'];
    const bf = ctx.fields(ib.value!, ipPath, IPBLOCK_FIELDS, 'an ipBlock');
    if (!bf) return undefined;
    const cf = bf.get('cidr');
    if (!cf || cf.value === null || (isScalar(cf.value) && cf.value.value === '')) {
      ctx.error(cf ? ctx.valuePos(cf) : ctx.pos(ib.value), 'netpol.cidr', `${formatPath([...ipPath, 'cidr'])}: required`, 'add cidr: <network>/<prefix>, for example 10.0.0.0/24');
      return undefined;
    }
    const text = ctx.string(cf, [...ipPath, 'cidr'], 'write the CIDR as a string like 10.0.0.0/24');
    if (text === undefined) return undefined;
    const parsed = parseStrictCidr(text);
    if ('error' in parsed) {
      ctx.error(ctx.valuePos(cf), 'netpol.cidr', `${formatPath([...ipPath, 'cidr'])}: invalid value "${text}": ${parsed.error}`, parsed.canonical ? `write ${parsed.canonical}` : 'write a CIDR like 10.0.0.0/24 or fd00::/64');
      return undefined;
    }
    const cidr: Cidr = parsed.cidr;
    const except: string[] = [];
    const ef = bf.get('except');
    if (ef && ef.value !== null) {
      for (const { node: en, index: ei } of ctx.items(ef, [...ipPath, 'except'], 'CIDRs') ?? []) {
        const ep = [...ipPath, 'except', ei];
        const et = ctx.stringNode(en, ctx.valuePos(ef), ep, 'write the CIDR as a string like 10.0.0.0/24');
        if (et === undefined) continue;
        const ex = parseStrictCidr(et);
        if ('error' in ex) {
          ctx.error(ctx.pos(en), 'netpol.cidr', `${formatPath(ep)}: invalid value "${et}": ${ex.error}`, ex.canonical ? `write ${ex.canonical}` : 'write a CIDR like 10.0.0.0/24 or fd00::/64');
          continue;
        }
        if (ex.cidr.family !== cidr.family || ex.cidr.prefix <= cidr.prefix || !cidrContains(cidr, ex.cidr.addr.toString())) {
          ctx.error(ctx.pos(en), 'netpol.cidr', `${formatPath(ep)}: invalid value "${et}": must be a strict subset of \`cidr\` (${cidr.text})`, `list only ranges inside ${cidr.text} and smaller than it`);
          continue;
        }
        except.push(ex.cidr.text);
      }
    }
    return { kind: 'cidr', cidr: cidr.text, except };
  }
  let pods: LabelSelector | undefined = {};
  if (ps) pods = parseLabelSelector(ctx, ps, [...path, 'podSelector']);
  let nsSel: LabelSelector | undefined;
  if (ns) {
    nsSel = parseLabelSelector(ctx, ns, [...path, 'namespaceSelector']);
    if (!nsSel) return undefined;
  }
  if (!pods) return undefined;
  const selector: EndpointSelector = {
    namespaces: !nsSel
      ? { kind: 'names', names: [namespace] }
      : Object.keys(nsSel.matchLabels ?? {}).length === 0 && (nsSel.matchExpressions ?? []).length === 0
        ? { kind: 'all' }
        : { kind: 'selector', selector: nsSel },
    labels: pods,
  };
  return { kind: 'endpoints', selector };
}

function parsePort(ctx: Ctx, node: Node | null, at: SourcePos, path: Path): PortSpec | undefined {
  // A null port decodes to the empty port: every port of TCP.
  const f = node ? ctx.fields(node, path, PORT_FIELDS, 'a port') : new Map<string, Field>();
  if (!f) return undefined;
  const before = ctx.errorCount;
  let protocol: Protocol = 'TCP';
  const pf = f.get('protocol');
  if (pf && pf.value !== null) {
    const v = ctx.string(pf, [...path, 'protocol'], 'write TCP, UDP or SCTP');
    if (v !== undefined) {
      if ((PROTOCOLS as string[]).includes(v)) protocol = v as Protocol;
      else {
        const upper = v.toUpperCase();
        ctx.error(ctx.valuePos(pf), 'netpol.protocol', `${formatPath([...path, 'protocol'])}: unsupported value "${v}": supported values: "TCP", "UDP", "SCTP"`, (PROTOCOLS as string[]).includes(upper) ? `write ${upper} (protocols are upper-case)` : 'write TCP, UDP or SCTP');
      }
    }
  }
  const portF = f.get('port');
  const endF = f.get('endPort');
  let endPort: number | undefined;
  if (endF && endF.value !== null) endPort = ctx.int(endF, [...path, 'endPort'], 'write endPort as a number');
  if (!portF || portF.value === null) {
    if (endF && endF.value !== null) {
      ctx.error(ctx.valuePos(endF), 'netpol.port', `${formatPath([...path, 'endPort'])}: may not be specified when \`port\` is not specified`, 'add port: <first port of the range>');
    }
    return ctx.errorCount > before ? undefined : { protocol };
  }
  const pv = portF.value;
  if (isScalar(pv) && typeof pv.value === 'string') {
    const name = pv.value;
    const errs = isValidPortName(name);
    if (errs.length) {
      const numeric = /^[0-9]+$/.test(name);
      ctx.error(ctx.valuePos(portF), 'netpol.port', `${formatPath([...path, 'port'])}: invalid value "${name}": ${errs.join('; ')}`, numeric ? `write the number without quotes: port: ${name}` : 'a port name is up to 15 of a-z 0-9 - with at least one letter, like http');
    }
    if (endF && endF.value !== null) {
      ctx.error(ctx.valuePos(endF), 'netpol.port', `${formatPath([...path, 'endPort'])}: may not be specified when \`port\` is non-numeric`, 'use a numeric port with endPort, or remove endPort');
    }
    return ctx.errorCount > before ? undefined : { protocol, name };
  }
  const port = ctx.int(portF, [...path, 'port'], 'write a port number (1-65535) or a port name');
  if (port === undefined) return undefined;
  for (const m of isValidPortNum(port)) ctx.error(ctx.valuePos(portF), 'netpol.port', `${formatPath([...path, 'port'])}: invalid value ${port}: ${m}`, 'use a port between 1 and 65535');
  if (endPort !== undefined) {
    if (endPort < port) ctx.error(ctx.valuePos(endF!), 'netpol.port', `${formatPath([...path, 'endPort'])}: invalid value ${endPort}: must be greater than or equal to \`port\` (${port})`, `write an endPort of at least ${port}`);
    for (const m of isValidPortNum(endPort)) ctx.error(ctx.valuePos(endF!), 'netpol.port', `${formatPath([...path, 'endPort'])}: invalid value ${endPort}: ${m}`, 'use an endPort between 1 and 65535');
  }
  if (ctx.errorCount > before) return undefined;
  return endPort !== undefined && endPort !== port ? { protocol, port, endPort } : { protocol, port };
}

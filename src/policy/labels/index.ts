// The seed's security labels -> Policy IR (docs/labels.md).
//
//   security.group=web[,other]        membership in groups (scoped to the container's namespace)
//   security.allow.inbound=...        isolates ingress; allows what it lists
//   security.allow.outbound=...       isolates egress; allows what it lists
//   security.deny.inbound=...         denies what it lists (wins over every allow); does not isolate
//   security.deny.outbound=...
//
// A label that fails the grammar is an error, and the endpoint is compiled fail-closed: the direction
// the bad label speaks of is isolated with nothing allowed (both directions for an unknown key).
import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import {
  emptyPolicySet,
  groupLabel,
  type EndpointSelector,
  type GroupDefinition,
  type LabelSelectorRequirement,
  type Peer,
  type Policy,
  type PolicySet,
  type Rule,
  SYNTHETIC,
} from '../../model/ir.js';
import { endpointDisplayName, type Endpoint, type World } from '../../model/world.js';
import { LABEL_KEYS, parseGroupValue, parseRuleValue, RULE_KEYS, type LabelItem, type RuleKey } from './grammar.js';

export { LABEL_KEYS, parseRuleValue, parseGroupValue } from './grammar.js';

/** Where a label of an endpoint is written (Compose file position), when known. */
export type LabelPositions = (endpoint: Endpoint, key: string) => SourcePos | undefined;

export interface LabelCompileResult {
  policySet: PolicySet;
  diagnostics: Diagnostic[];
}

const KEY_PREFIXES = ['security.allow', 'security.deny', 'security.group'];

function closestKey(key: string): string {
  const all: string[] = [LABEL_KEYS.group, ...RULE_KEYS];
  let best = all[0];
  let bestScore = Infinity;
  for (const k of all) {
    const d = editDistance(key, k);
    if (d < bestScore) {
      best = k;
      bestScore = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

function itemToPeer(item: LabelItem, namespace: string): Peer {
  const p = item.peer;
  switch (p.kind) {
    case 'group': {
      const ns = p.namespace ?? namespace;
      const selector: EndpointSelector = {
        namespaces: { kind: 'names', names: [ns] },
        labels: { matchLabels: { [groupLabel(p.group)]: 'true' } },
        describes: p.namespace ? `group ${ns}/${p.group}` : `group ${p.group}`,
      };
      return { kind: 'endpoints', selector };
    }
    case 'cidr':
      return { kind: 'cidr', cidr: p.cidr, except: [] };
    default:
      return { kind: p.kind };
  }
}

function itemToRule(item: LabelItem, key: RuleKey, namespace: string, pos: SourcePos | undefined): Rule {
  const action = key.startsWith('security.deny') ? 'deny' : 'allow';
  const peer = itemToPeer(item, namespace);
  return {
    action,
    peers: peer.kind === 'any' ? 'all' : [peer],
    ports: item.port ? [{ protocol: item.port.protocol, port: item.port.from, endPort: item.port.to === item.port.from ? undefined : item.port.to }] : undefined,
    pos,
    text: `${key}=${item.text}`,
  };
}

/** What one endpoint's labels contribute; the keys deduplicate across endpoints. */
interface EndpointLabels {
  groups: { key: string; def: GroupDefinition }[];
  policy?: { key: string; policy: Policy };
  diagnostics: Diagnostic[];
}

function compileEndpoint(endpoint: Endpoint, positions?: LabelPositions): EndpointLabels | undefined {
  const securityKeys = Object.keys(endpoint.labels).filter((k) => KEY_PREFIXES.some((p) => k.startsWith(p)));
  if (securityKeys.length === 0) return undefined;
  const who = endpointDisplayName(endpoint);
  const out: EndpointLabels = { groups: [], diagnostics: [] };
  const failClosed = { ingress: false, egress: false };
  const report = (key: string, message: string, fix: string) => {
    out.diagnostics.push({
      severity: 'error',
      code: 'label.invalid',
      message: `${key}: ${message}`,
      fix,
      pos: positions?.(endpoint, key),
      context: `container ${who}`,
    });
  };

  // Groups.
  const groupValue = endpoint.labels[LABEL_KEYS.group];
  if (groupValue !== undefined) {
    const parsed = parseGroupValue(groupValue);
    if (!parsed.ok) report(LABEL_KEYS.group, parsed.error.message, parsed.error.fix);
    else {
      for (const g of parsed.value) {
        out.groups.push({
          key: `${endpoint.namespace}\u0000${groupValue}\u0000${g}`,
          def: {
            name: g,
            selector: { namespaces: { kind: 'names', names: [endpoint.namespace] }, labels: { matchLabels: { [LABEL_KEYS.group]: groupValue } } },
            pos: positions?.(endpoint, LABEL_KEYS.group),
          },
        });
      }
    }
  }

  // Unknown keys that look like ours: an error, and fail closed both ways.
  for (const key of securityKeys) {
    if (key === LABEL_KEYS.group || (RULE_KEYS as readonly string[]).includes(key)) continue;
    report(key, 'unknown security label', `did you mean ${closestKey(key)}?`);
    failClosed.ingress = true;
    failClosed.egress = true;
  }

  const ingress: Rule[] = [];
  const egress: Rule[] = [];
  const isolates = { ingress: false, egress: false };
  for (const key of RULE_KEYS) {
    const value = endpoint.labels[key];
    if (value === undefined) continue;
    const inbound = key.endsWith('inbound');
    const pos = positions?.(endpoint, key);
    const parsed = parseRuleValue(value);
    if (!parsed.ok) {
      report(key, parsed.error.message, parsed.error.fix);
      if (inbound) failClosed.ingress = true;
      else failClosed.egress = true;
      continue;
    }
    if (key.startsWith('security.allow')) {
      if (inbound) isolates.ingress = true;
      else isolates.egress = true;
    }
    for (const item of parsed.value) (inbound ? ingress : egress).push(itemToRule(item, key, endpoint.namespace, pos));
  }

  // The subject: endpoints of this namespace with exactly these rule labels (and no others).
  const requirements: LabelSelectorRequirement[] = RULE_KEYS.filter((k) => endpoint.labels[k] === undefined).map((k) => ({
    key: k,
    operator: 'DoesNotExist' as const,
  }));
  const matchLabels: Record<string, string> = {};
  for (const k of RULE_KEYS) if (endpoint.labels[k] !== undefined) matchLabels[k] = endpoint.labels[k];
  const hasRules = Object.keys(matchLabels).length > 0;
  if (!hasRules && !failClosed.ingress && !failClosed.egress) return out;

  // One policy per container name (replicas of a service share it), restricted to exactly these rule labels.
  const subject: EndpointSelector = failClosed.ingress || failClosed.egress
    ? { namespaces: { kind: 'names', names: [endpoint.namespace] }, labels: { matchLabels: { [SYNTHETIC.name]: endpoint.name } } }
    : { namespaces: { kind: 'names', names: [endpoint.namespace] }, labels: { matchLabels: { ...matchLabels, [SYNTHETIC.name]: endpoint.name }, matchExpressions: requirements } };
  const policy: Policy = {
    id: `label:${who}`,
    name: `labels of ${who}`,
    kind: 'label',
    pos: positions?.(endpoint, RULE_KEYS.find((k) => endpoint.labels[k] !== undefined) ?? LABEL_KEYS.group),
    subject,
    isolates: { ingress: isolates.ingress || failClosed.ingress, egress: isolates.egress || failClosed.egress },
    ingress: failClosed.ingress ? ingress.filter((r) => r.action === 'deny') : ingress,
    egress: failClosed.egress ? egress.filter((r) => r.action === 'deny') : egress,
  };
  out.policy = { key: `${endpoint.namespace}\u0000${JSON.stringify(subject)}\u0000${failClosed.ingress}${failClosed.egress}`, policy };
  return out;
}

/** The endpoints' contributions, deduplicated in world order (the first endpoint names a shared policy). */
function assemble(world: World, of: (e: Endpoint) => EndpointLabels | undefined, content?: (p: Policy) => string): LabelCompileResult & { keys: string[] } {
  const set = emptyPolicySet();
  const diagnostics: Diagnostic[] = [];
  const groupKeys = new Set<string>();
  const policyKeys = new Set<string>();
  const keys: string[] = [];
  for (const endpoint of world.endpoints) {
    const r = of(endpoint);
    if (!r) continue;
    if (r.diagnostics.length) diagnostics.push(...r.diagnostics);
    for (const g of r.groups) {
      if (groupKeys.has(g.key)) continue;
      groupKeys.add(g.key);
      set.groups.push(g.def);
      if (content) keys.push(g.key);
    }
    if (r.policy && !policyKeys.has(r.policy.key)) {
      policyKeys.add(r.policy.key);
      set.policies.push(r.policy.policy);
      if (content) keys.push(r.policy.key, r.policy.policy.id, content(r.policy.policy));
    }
  }
  return { policySet: set, diagnostics, keys };
}

/** Compiles the security labels of every endpoint of the world. */
export function compileLabels(world: World, positions?: LabelPositions): LabelCompileResult {
  const { policySet, diagnostics } = assemble(world, (e) => compileEndpoint(e, positions));
  return { policySet, diagnostics };
}

/**
 * compileLabels for a long-running caller (the controller): each endpoint's labels are compiled once
 * (endpoints are compared by identity: the live world hands unchanged containers over as the same
 * objects), so a container event costs a walk over cached results instead of parsing every label again.
 * `version` changes exactly when the resulting policy set does (its groups and policies, in order, by
 * content and policy id), so callers can key compiled plans on it without serialising the set.
 */
export class LabelCompiler {
  private cache = new WeakMap<Endpoint, EndpointLabels | null>();
  /** A fingerprint of each policy's rules (the dedup key does not cover them when a container fails closed). */
  private contents = new WeakMap<Policy, string>();
  private lastKeys: string[] = [];
  private current = 0;

  compile(world: World): LabelCompileResult & { version: number } {
    const r = assemble(world, (e) => {
      let c = this.cache.get(e);
      if (c === undefined) {
        c = compileEndpoint(e) ?? null;
        this.cache.set(e, c);
      }
      return c ?? undefined;
    }, (p) => {
      let f = this.contents.get(p);
      if (f === undefined) this.contents.set(p, (f = JSON.stringify([p.isolates, p.ingress, p.egress])));
      return f;
    });
    const same = r.keys.length === this.lastKeys.length && r.keys.every((k, i) => k === this.lastKeys[i]);
    if (!same) {
      this.current++;
      this.lastKeys = r.keys;
    }
    return { policySet: r.policySet, diagnostics: r.diagnostics, version: this.current };
  }
}

// The conformance model, after the upstream e2e NetworkPolicy tests (kubernetes
// test/e2e/network/netpol): namespaces x, y, z (labels ns=<name> and kubernetes.io/metadata.name),
// pods a, b, c in each (label pod=<name>, Compose service <name>), each with one address
// 10.0.<ns>.<pod> (x=1, y=2, z=3; a=1, b=2, c=3) on one network, and the declared ports TCP/UDP/SCTP
// 80 and 81 named serve-<port>-<proto>.
//
// Expected truth tables are written in a small DSL, read top to bottom, starting from "everything
// allowed" (Kubernetes' default):
//
//   deny * -> x/a                  every pod to x/a, on every probe (upstream ExpectAllIngress)
//   allow y/*,z/b -> x/a on TCP/80 pods of y and z/b to x/a, on TCP port 80 only
//   deny x/a -> *  on UDP          x/a to every pod (upstream ExpectAllEgress), UDP 80 and 81
//   allow */b -> x/* on 81         pod b of every namespace to every pod of x, port 81 of every protocol
//
// Patterns: `*`, `ns/pod` with `*` for either part, comma-separated lists. Probes: `PROTO/PORT`,
// `PROTO` (every probed port), `PORT` (every protocol), `ICMP` (protocols without ports).
// Self-connections (a pod to itself) are not part of the table: they never cross a policy.
import assert from 'node:assert/strict';
import { analyze } from '../../../src/analysis/reachability.js';
import type { Diagnostic } from '../../../src/model/diagnostics.js';
import { emptyPolicySet, type PolicySet } from '../../../src/model/ir.js';
import type { Endpoint, Protocol, World } from '../../../src/model/world.js';
import { parseNetworkPolicies } from '../../../src/policy/netpol/index.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;
export const NETWORK = 'netpol-model';

export type Probe = { protocol: Protocol; port: number } | { protocol: 'ICMP' };
export const DEFAULT_PROBES: Probe[] = [
  { protocol: 'TCP', port: 80 },
  { protocol: 'TCP', port: 81 },
  { protocol: 'UDP', port: 80 },
  { protocol: 'UDP', port: 81 },
  { protocol: 'SCTP', port: 80 },
  { protocol: 'SCTP', port: 81 },
  { protocol: 'ICMP' },
];

export function probeName(p: Probe): string {
  return p.protocol === 'ICMP' ? 'ICMP' : `${p.protocol}/${p.port}`;
}

export function parseProbe(text: string): Probe {
  const m = /^(TCP|UDP|SCTP)\/(\d+)$/.exec(text);
  if (m) return { protocol: m[1] as Protocol, port: Number(m[2]) };
  if (text === 'ICMP') return { protocol: 'ICMP' };
  throw new Error(`bad probe ${text}`);
}

export function podAddress(ns: string, pod: string): string {
  return `10.0.${NAMESPACES.indexOf(ns as never) + 1}.${PODS.indexOf(pod as never) + 1}`;
}

export function podIds(): string[] {
  return NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}`));
}

/** The model world; `mutate` may change endpoints (e.g. port names) before use. */
export function buildWorld(mutate?: (e: Endpoint) => void): World {
  const endpoints: Endpoint[] = [];
  for (const ns of NAMESPACES) {
    for (const pod of PODS) {
      const e: Endpoint = {
        id: `${ns}/${pod}`,
        name: pod,
        namespace: ns,
        containerName: `${ns}-${pod}-1`,
        composeService: pod,
        labels: { pod },
        networkMode: { kind: 'bridge' },
        attachments: [{ network: NETWORK, ipv4: podAddress(ns, pod) }],
        declaredPorts: (['TCP', 'UDP', 'SCTP'] as Protocol[]).flatMap((protocol) =>
          [80, 81].map((port) => ({ port, protocol, name: `serve-${port}-${protocol.toLowerCase()}` })),
        ),
        publishedPorts: [],
      };
      mutate?.(e);
      endpoints.push(e);
    }
  }
  return {
    origin: 'test:netpol-model',
    namespaces: NAMESPACES.map((ns) => ({ name: ns, labels: { ns, 'kubernetes.io/metadata.name': ns } })),
    endpoints,
    networks: [
      {
        name: NETWORK,
        driver: 'bridge',
        subnets: ['10.0.0.0/16'],
        internal: false,
        options: {},
        icc: true,
        enableIPv6: false,
      },
    ],
    externals: [],
    host: { addresses: [] },
    warnings: [],
  };
}

/** A NetworkPolicy document with the spec given as YAML lines (indented by the helper). */
export function np(namespace: string | undefined, name: string, spec: string): string {
  const body = spec
    .replace(/^\n+|\s+$/g, '')
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return [
    'apiVersion: networking.k8s.io/v1',
    'kind: NetworkPolicy',
    'metadata:',
    `  name: ${name}`,
    ...(namespace === undefined ? [] : [`  namespace: "${namespace}"`]),
    'spec:',
    body,
  ].join('\n');
}

export function docs(...parts: string[]): string {
  return parts.join('\n---\n') + '\n';
}

function expandPattern(list: string, pods: string[]): Set<number> {
  const out = new Set<number>();
  for (const raw of list.split(',')) {
    const pat = raw.trim();
    const [ns, pod] = pat === '*' ? ['*', '*'] : pat.split('/');
    if (pod === undefined) throw new Error(`bad pattern ${pat}`);
    let hit = false;
    pods.forEach((id, i) => {
      const [n, p] = id.split('/');
      if ((ns === '*' || ns === n) && (pod === '*' || pod === p)) {
        out.add(i);
        hit = true;
      }
    });
    if (!hit) throw new Error(`pattern ${pat} matches no pod`);
  }
  return out;
}

function expandProbes(list: string | undefined, probes: Probe[]): Set<number> {
  if (list === undefined) return new Set(probes.map((_, i) => i));
  const out = new Set<number>();
  for (const raw of list.split(',')) {
    const t = raw.trim();
    let hit = false;
    probes.forEach((p, i) => {
      const name = probeName(p);
      if (name === t || p.protocol === t || (p.protocol !== 'ICMP' && String(p.port) === t)) {
        out.add(i);
        hit = true;
      }
    });
    if (!hit) throw new Error(`probe ${t} matches no probe`);
  }
  return out;
}

/** expected[probe][from][to] */
export function expectedTable(dsl: string, probes: Probe[] = DEFAULT_PROBES): boolean[][][] {
  const pods = podIds();
  const table = probes.map(() => pods.map(() => pods.map(() => true)));
  for (const rawLine of dsl.split('\n')) {
    const line = rawLine.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(allow|deny)\s+(\S+)\s*->\s*(\S+)(?:\s+on\s+(\S+))?$/.exec(line);
    if (!m) throw new Error(`bad expectation line: ${line}`);
    const value = m[1] === 'allow';
    const from = expandPattern(m[2], pods);
    const to = expandPattern(m[3], pods);
    const ps = expandProbes(m[4], probes);
    for (const p of ps) for (const f of from) for (const t of to) table[p][f][t] = value;
  }
  return table;
}

export interface Scenario {
  name: string;
  /** YAML text of the policy file. */
  yaml: string;
  expect: string;
  probes?: string[];
  /** Changes to the model's endpoints. */
  mutate?: (e: Endpoint) => void;
  /** Namespace labels from a moat policy file's `namespaces:` section. */
  namespaceLabels?: PolicySet['namespaceLabels'];
  /** Warnings the parser must report (each regexp must match one); by default none are allowed. */
  warnings?: RegExp[];
  /** Number of policies the file must produce (default: number of NetworkPolicy documents is not checked). */
  policies?: number;
}

function grid(pods: string[], cell: (f: number, t: number) => string): string {
  const w = 5;
  const head = ' '.repeat(w) + pods.map((p) => p.padEnd(w)).join('');
  const rows = pods.map((p, f) => p.padEnd(w) + pods.map((_, t) => (f === t ? '-' : cell(f, t)).padEnd(w)).join(''));
  return [head, ...rows].join('\n');
}

export function runScenario(s: Scenario): void {
  const { policies, diagnostics } = parseNetworkPolicies(s.yaml, `${s.name}.yaml`);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors.map(fmt), [], 'the policies must parse without errors');
  const warnings = diagnostics.filter((d) => d.severity === 'warning');
  const expectedWarnings = s.warnings ?? [];
  assert.equal(warnings.length, expectedWarnings.length, `warnings: ${warnings.map(fmt).join('; ')}`);
  for (const re of expectedWarnings) assert.ok(warnings.some((w) => re.test(w.message)), `expected a warning matching ${re}: ${warnings.map(fmt).join('; ')}`);
  if (s.policies !== undefined) assert.equal(policies.length, s.policies, 'number of policies');

  const set = emptyPolicySet();
  set.policies.push(...policies);
  if (s.namespaceLabels) set.namespaceLabels = s.namespaceLabels;
  const world = buildWorld(s.mutate);
  const analysis = analyze(world, set, { flat: true });
  const probes = s.probes ? s.probes.map(parseProbe) : DEFAULT_PROBES;
  const expected = expectedTable(s.expect, probes);
  const pods = podIds();
  const idx = pods.map((id) => {
    const i = analysis.nodeIndex(id);
    assert.ok(i !== undefined, `node ${id}`);
    return i;
  });
  const report: string[] = [];
  let wrong = 0;
  probes.forEach((probe, pi) => {
    const actual = pods.map((_, f) =>
      pods.map((__, t) => {
        if (f === t) return true;
        const c = analysis.connections(idx[f], idx[t]);
        return probe.protocol === 'ICMP' ? c.contains('other') : c.contains(probe.protocol, probe.port);
      }),
    );
    let bad = 0;
    for (let f = 0; f < pods.length; f++) for (let t = 0; t < pods.length; t++) if (f !== t && actual[f][t] !== expected[pi][f][t]) bad++;
    if (bad) {
      wrong += bad;
      report.push(
        `${probeName(probe)}: ${bad} wrong (rows: from, columns: to; . allowed, X denied, ! wrong)`,
        grid(pods, (f, t) => (actual[f][t] !== expected[pi][f][t] ? `!${actual[f][t] ? '.' : 'X'}` : actual[f][t] ? '.' : 'X')),
      );
    }
  });
  assert.equal(wrong, 0, `truth table mismatch in "${s.name}" (!. = allowed but expected denied, !X = denied but expected allowed)\n${report.join('\n')}`);
}

function fmt(d: Diagnostic): string {
  return `${d.pos?.line}:${d.pos?.col} ${d.message}`;
}

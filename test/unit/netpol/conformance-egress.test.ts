// Conformance: egress, and ingress and egress together. Model and DSL: harness.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docs, np, runScenario, type Scenario } from './harness.js';

const aEgress = (name: string, egress: string, ns = 'x') =>
  np(ns, name, `
podSelector:
  matchLabels: {pod: a}
policyTypes: [Egress]
egress:
${egress.replace(/^\n+|\s+$/g, '')}
`);

const scenarios: Scenario[] = [
  {
    name: 'default-deny-egress',
    yaml: docs(np('x', 'deny-egress', 'podSelector: {}\npolicyTypes: [Egress]')),
    expect: 'deny x/* -> *',
  },
  {
    name: 'default-deny-all (Ingress and Egress)',
    yaml: docs(np('x', 'deny-all', 'podSelector: {}\npolicyTypes: [Ingress, Egress]')),
    expect: 'deny * -> x/*\ndeny x/* -> *',
  },
  {
    name: 'policyTypes order does not matter (Egress, Ingress)',
    yaml: docs(np('y', 'deny-all', 'podSelector: {}\npolicyTypes: [Egress, Ingress]')),
    expect: 'deny * -> y/*\ndeny y/* -> *',
  },
  {
    name: 'allow-all egress: one empty rule',
    yaml: docs(np('x', 'allow-all', 'podSelector: {}\npolicyTypes: [Egress]\negress:\n- {}')),
    expect: '',
  },
  {
    name: 'an empty egress list without policyTypes does not isolate egress',
    yaml: docs(np('x', 'ingress-only', 'podSelector: {}\negress: []')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'egress rules without policyTypes isolate egress too (defaulting)',
    yaml: docs(np('x', 'both', 'podSelector:\n  matchLabels: {pod: a}\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}')),
    expect: 'deny * -> x/a\ndeny x/a -> *\nallow x/a -> y/*',
  },
  {
    name: 'policyTypes [Egress] ignores ingress rules (with a warning)',
    yaml: docs(
      np('x', 'egress-only', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]\ningress:\n- {}\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}'),
    ),
    warnings: [/spec\.ingress: ignored, because policyTypes does not list Ingress/],
    expect: 'deny x/a -> *\nallow x/a -> y/*',
  },
  {
    name: 'policyTypes [Ingress] ignores egress rules (with a warning)',
    yaml: docs(
      np('x', 'ingress-only', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Ingress]\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\negress:\n- to:\n  - podSelector: {}'),
    ),
    warnings: [/spec\.egress: ignored, because policyTypes does not list Egress/],
    expect: 'deny * -> x/a\nallow y/* -> x/a',
  },
  {
    name: 'deny egress from one pod',
    yaml: docs(np('x', 'deny-a', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]')),
    expect: 'deny x/a -> *',
  },
  {
    name: 'egress to namespace y on TCP 80',
    yaml: docs(aEgress('y-80', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80')),
    expect: 'deny x/a -> *\nallow x/a -> y/* on TCP/80',
  },
  {
    name: 'egress named port resolves against each destination',
    yaml: docs(aEgress('http', '- ports:\n  - port: http')),
    mutate: (e) => {
      if (e.id === 'y/b') e.declaredPorts = e.declaredPorts.map((p) => (p.name === 'serve-81-tcp' ? { ...p, name: 'http' } : p));
      if (e.id === 'z/c') e.declaredPorts = e.declaredPorts.map((p) => (p.name === 'serve-80-tcp' ? { ...p, name: 'http' } : p));
    },
    expect: 'deny x/a -> *\nallow x/a -> y/b on TCP/81\nallow x/a -> z/c on TCP/80',
  },
  {
    name: 'egress named port serve-81-udp to everyone',
    yaml: docs(aEgress('udp', '- ports:\n  - {protocol: UDP, port: serve-81-udp}')),
    expect: 'deny x/a -> *\nallow x/a -> * on UDP/81',
  },
  {
    name: 'egress to a port name that no destination declares allows nothing',
    yaml: docs(aEgress('none', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: http')),
    expect: 'deny x/a -> *',
  },
  {
    name: 'client-side egress deny wins over a server that allows all',
    yaml: docs(
      np('x', 'deny-a', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]'),
      np('y', 'allow-all', 'podSelector: {}\ningress:\n- {}'),
    ),
    expect: 'deny x/a -> *',
  },
  {
    name: 'a connection needs the egress side and the ingress side',
    yaml: docs(
      aEgress('to-yb', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n    podSelector:\n      matchLabels: {pod: b}'),
      np('y', 'b-from-z', 'podSelector:\n  matchLabels: {pod: b}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: z}'),
    ),
    expect: 'deny x/a -> *\ndeny * -> y/b\nallow z/* -> y/b',
  },
  {
    name: 'egress to a pod of another namespace (namespaceSelector AND podSelector)',
    yaml: docs(aEgress('to-yb', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n    podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny x/a -> *\nallow x/a -> y/b',
  },
  {
    name: 'egress by namespaceSelector only (matchExpressions)',
    yaml: docs(aEgress('to-z', '- to:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: In, values: [z]}')),
    expect: 'deny x/a -> *\nallow x/a -> z/*',
  },
  {
    name: 'egress to pod c of every namespace',
    yaml: docs(aEgress('to-c', '- to:\n  - namespaceSelector: {}\n    podSelector:\n      matchLabels: {pod: c}')),
    expect: 'deny x/a -> *\nallow x/a -> */c',
  },
  {
    name: 'an egress podSelector peer is the policy namespace only',
    yaml: docs(aEgress('to-b', '- to:\n  - podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny x/a -> *\nallow x/a -> x/b',
  },
  {
    name: 'egress to podSelector OR namespaceSelector',
    yaml: docs(aEgress('or', '- to:\n  - podSelector:\n      matchLabels: {pod: b}\n  - namespaceSelector:\n      matchLabels: {ns: z}')),
    expect: 'deny x/a -> *\nallow x/a -> x/b,z/*',
  },
  {
    name: 'egress to a CIDR (/32 of y/b)',
    yaml: docs(aEgress('cidr', '- to:\n  - ipBlock:\n      cidr: 10.0.2.2/32')),
    expect: 'deny x/a -> *\nallow x/a -> y/b',
  },
  {
    name: 'egress to a CIDR with except',
    yaml: docs(aEgress('cidr', '- to:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.2.2/32]')),
    expect: 'deny x/a -> y/b',
  },
  {
    name: 'egress: an address in an except is allowed by a second policy',
    yaml: docs(
      aEgress('wide', '- to:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.2.2/32]'),
      aEgress('narrow', '- to:\n  - ipBlock:\n      cidr: 10.0.2.2/32'),
    ),
    expect: '',
  },
  {
    name: 'egress to 0.0.0.0/0 except 10.0.0.0/8 reaches no pod',
    yaml: docs(aEgress('internet-only', '- to:\n  - ipBlock:\n      cidr: 0.0.0.0/0\n      except: [10.0.0.0/8]')),
    expect: 'deny x/a -> *',
  },
  {
    name: 'egress to an ipBlock or a pod, on UDP 81',
    yaml: docs(aEgress('mix', '- to:\n  - ipBlock:\n      cidr: 10.0.3.0/24\n  - podSelector:\n      matchLabels: {pod: b}\n  ports:\n  - {port: 81, protocol: UDP}')),
    expect: 'deny x/a -> *\nallow x/a -> z/*,x/b on UDP/81',
  },
  {
    name: 'egress with ports only (no to): any destination on UDP',
    yaml: docs(aEgress('udp', '- ports:\n  - protocol: UDP')),
    expect: 'deny x/a -> *\nallow x/a -> * on UDP',
  },
  {
    name: 'egress with to: [] and a port',
    yaml: docs(aEgress('p81', '- to: []\n  ports:\n  - port: 81')),
    expect: 'deny x/a -> *\nallow x/a -> * on TCP/81',
  },
  {
    name: 'egress with ports: [] allows every port (ICMP included)',
    yaml: docs(aEgress('all-ports', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports: []')),
    expect: 'deny x/a -> *\nallow x/a -> y/*',
  },
  {
    name: 'egress endPort range with SCTP',
    yaml: docs(aEgress('sctp', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: z}\n  ports:\n  - {protocol: SCTP, port: 80, endPort: 81}')),
    expect: 'deny x/a -> *\nallow x/a -> z/* on SCTP',
  },
  {
    name: 'egress SCTP 81 is not TCP 81',
    yaml: docs(aEgress('sctp81', '- ports:\n  - {protocol: SCTP, port: 81}')),
    expect: 'deny x/a -> *\nallow x/a -> * on SCTP/81',
  },
  {
    name: 'egress endPort range 79-80 with probes around it',
    yaml: docs(aEgress('range', '- ports:\n  - {port: 79, endPort: 80}')),
    probes: ['TCP/78', 'TCP/79', 'TCP/80', 'TCP/81', 'UDP/80'],
    expect: 'deny x/a -> *\nallow x/a -> * on TCP/79,TCP/80',
  },
  {
    name: 'multiple egress policies: allow-all takes precedence',
    yaml: docs(aEgress('y-80', '- to:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80'), aEgress('all', '- {}')),
    expect: '',
  },
  {
    name: 'ingress and egress controlled independently by podSelector',
    yaml: docs(
      np('x', 'a', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Ingress, Egress]\ningress:\n- from:\n  - podSelector:\n      matchLabels: {pod: b}\negress:\n- to:\n  - podSelector:\n      matchLabels: {pod: c}'),
    ),
    expect: 'deny * -> x/a\nallow x/b -> x/a\ndeny x/a -> *\nallow x/a -> x/c',
  },
  {
    name: 'Ingress and Egress in one policy, across namespaces',
    yaml: docs(
      np('x', 'both', 'podSelector: {}\npolicyTypes: [Ingress, Egress]\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: z}'),
    ),
    expect: 'deny * -> x/*\nallow y/* -> x/* on TCP/80\ndeny x/* -> *\nallow x/* -> z/*',
  },
  {
    name: 'deny all egress in x except to namespace z (default namespace label)',
    yaml: docs(np('x', 'to-z', 'podSelector: {}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {kubernetes.io/metadata.name: z}')),
    expect: 'deny x/* -> *\nallow x/* -> z/*',
  },
  {
    name: 'default-deny-egress in every namespace: nobody can send',
    yaml: docs(...['x', 'y', 'z'].map((ns) => np(ns, 'deny-egress', 'podSelector: {}\npolicyTypes: [Egress]'))),
    expect: 'deny * -> *',
  },
  {
    name: 'egress within the namespace only, in every namespace',
    yaml: docs(...['x', 'y', 'z'].map((ns) => np(ns, 'same-ns', 'podSelector: {}\npolicyTypes: [Egress]\negress:\n- to:\n  - podSelector: {}'))),
    expect: 'deny * -> *\nallow x/* -> x/*\nallow y/* -> y/*\nallow z/* -> z/*',
  },
  {
    name: 'egress from y/b to x and ingress to x/a from y/b',
    yaml: docs(
      np('y', 'b-to-x', 'podSelector:\n  matchLabels: {pod: b}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: x}'),
      np('x', 'a-from-yb', 'podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n    podSelector:\n      matchLabels: {pod: b}'),
    ),
    expect: 'deny y/b -> *\nallow y/b -> x/*\ndeny * -> x/a\nallow y/b -> x/a',
  },
  {
    name: 'egress port rules and ingress port rules intersect',
    yaml: docs(
      aEgress('tcp', '- ports:\n  - {port: 80, endPort: 81}'),
      np('y', 'only-81', 'podSelector: {}\ningress:\n- ports:\n  - port: 81\n  - {protocol: UDP, port: 80}'),
    ),
    expect: 'deny x/a -> *\nallow x/a -> * on TCP\ndeny * -> y/*\nallow * -> y/* on TCP/81,UDP/80\ndeny x/a -> y/* on UDP/80',
  },
];

for (const s of scenarios) test(`egress: ${s.name}`, () => runScenario(s));

test('the egress scenarios are many and distinct', () => {
  assert.ok(scenarios.length >= 35, `${scenarios.length}`);
  assert.equal(new Set(scenarios.map((s) => s.name)).size, scenarios.length);
});

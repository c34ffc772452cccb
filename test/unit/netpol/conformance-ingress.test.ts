// Conformance: ingress semantics of NetworkPolicy, after the Kubernetes documentation and the
// upstream e2e suite (test/e2e/network/netpol/network_policy.go). Model and DSL: harness.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docs, np, runScenario, type Scenario } from './harness.js';

const denyAllX = np('x', 'deny-all-ingress', `
podSelector: {}
policyTypes: [Ingress]
`);

const onlyA = (name: string, ingress: string, ns = 'x') =>
  np(ns, name, `
podSelector:
  matchLabels: {pod: a}
policyTypes: [Ingress]
ingress:
${ingress.replace(/^\n+|\s+$/g, '')}
`);

const scenarios: Scenario[] = [
  // --- default deny / allow all -----------------------------------------------------------
  { name: 'default-deny-ingress (policyTypes: [Ingress])', yaml: docs(denyAllX), expect: 'deny * -> x/*' },
  {
    name: 'default-deny-ingress without policyTypes (defaulted to Ingress)',
    yaml: docs(np('x', 'deny', 'podSelector: {}')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'default-deny-ingress with an empty ingress list',
    yaml: docs(np('x', 'deny', 'podSelector: {}\ningress: []')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'policyTypes: [] is defaulted like an absent list',
    yaml: docs(np('x', 'deny', 'podSelector: {}\npolicyTypes: []')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'ingress: null with policyTypes Ingress denies all ingress',
    yaml: docs(np('x', 'deny', 'podSelector: {}\npolicyTypes: [Ingress]\ningress:')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'allow-all ingress: one empty rule',
    yaml: docs(np('x', 'allow-all', 'podSelector: {}\ningress:\n- {}')),
    expect: '',
  },
  {
    name: 'allow-all ingress: from: [] and ports: [] mean all',
    yaml: docs(np('x', 'allow-all', 'podSelector: {}\ningress:\n- from: []\n  ports: []')),
    expect: '',
  },
  {
    name: 'allow-all ingress: a null rule decodes to the empty rule',
    yaml: docs(np('x', 'allow-all', 'podSelector: {}\npolicyTypes: [Ingress]\ningress:\n-')),
    expect: '',
  },
  {
    name: 'allow-all stacked on default-deny: policies are additive',
    yaml: docs(denyAllX, np('x', 'allow-all', 'podSelector: {}\ningress:\n- {}')),
    expect: '',
  },
  {
    name: 'null subject podSelector selects every pod of the namespace',
    yaml: docs(np('x', 'deny', 'podSelector:\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'a policy in y isolates y only',
    yaml: docs(np('y', 'deny', 'podSelector: {}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> y/*',
  },
  {
    name: 'a policy without metadata.namespace lives in default (no pods there)',
    yaml: docs(np(undefined, 'deny', 'podSelector: {}\npolicyTypes: [Ingress]')),
    expect: '',
  },
  {
    name: 'default-deny-ingress in every namespace',
    yaml: docs(...['x', 'y', 'z'].map((ns) => np(ns, 'deny', 'podSelector: {}\npolicyTypes: [Ingress]'))),
    expect: 'deny * -> *',
  },
  {
    name: 'allow within the namespace only, in every namespace',
    yaml: docs(...['x', 'y', 'z'].map((ns) => np(ns, 'same-ns', 'podSelector: {}\ningress:\n- from:\n  - podSelector: {}'))),
    expect: 'deny * -> *\nallow x/* -> x/*\nallow y/* -> y/*\nallow z/* -> z/*',
  },

  // --- subject selection -------------------------------------------------------------------
  {
    name: 'deny ingress to one pod (podSelector pod=a)',
    yaml: docs(np('x', 'deny-a', 'podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'subject podSelector that matches no pod isolates nothing',
    yaml: docs(np('x', 'deny-d', 'podSelector:\n  matchLabels: {pod: d}\npolicyTypes: [Ingress]')),
    expect: '',
  },
  {
    name: 'subject matchExpressions In [a, b]',
    yaml: docs(np('x', 'deny-ab', 'podSelector:\n  matchExpressions:\n  - {key: pod, operator: In, values: [a, b]}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/a,x/b',
  },
  {
    name: 'subject matchExpressions NotIn [a]',
    yaml: docs(np('x', 'deny-not-a', 'podSelector:\n  matchExpressions:\n  - {key: pod, operator: NotIn, values: [a]}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/b,x/c',
  },
  {
    name: 'subject matchExpressions Exists',
    yaml: docs(np('x', 'deny-pods', 'podSelector:\n  matchExpressions:\n  - {key: pod, operator: Exists}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/*',
  },
  {
    name: 'subject matchExpressions DoesNotExist selects nothing here',
    yaml: docs(np('x', 'deny-unlabelled', 'podSelector:\n  matchExpressions:\n  - {key: pod, operator: DoesNotExist}\npolicyTypes: [Ingress]')),
    expect: '',
  },
  {
    name: 'subject matchLabels AND matchExpressions',
    yaml: docs(np('x', 'deny-b', 'podSelector:\n  matchLabels: {pod: b}\n  matchExpressions:\n  - {key: pod, operator: NotIn, values: [a]}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/b',
  },
  {
    name: 'subject matchLabels AND a contradicting matchExpression selects nothing',
    yaml: docs(np('x', 'deny-none', 'podSelector:\n  matchLabels: {pod: a}\n  matchExpressions:\n  - {key: pod, operator: In, values: [b]}\npolicyTypes: [Ingress]')),
    expect: '',
  },
  {
    name: 'Compose service label (com.docker.compose.service) selects a container',
    yaml: docs(np('x', 'deny-svc-b', 'podSelector:\n  matchLabels: {com.docker.compose.service: b}\npolicyTypes: [Ingress]')),
    expect: 'deny * -> x/b',
  },

  // --- peers: podSelector / namespaceSelector -------------------------------------------------
  {
    name: 'allow from pod b of the same namespace (podSelector peer)',
    yaml: docs(onlyA('from-b', '- from:\n  - podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny * -> x/a\nallow x/b -> x/a',
  },
  {
    name: 'allow from every pod of the policy namespace (podSelector: {})',
    yaml: docs(onlyA('from-ns', '- from:\n  - podSelector: {}')),
    expect: 'deny * -> x/a\nallow x/* -> x/a',
  },
  {
    name: 'allow from every namespace (namespaceSelector: {})',
    yaml: docs(onlyA('from-all-ns', '- from:\n  - namespaceSelector: {}')),
    expect: '',
  },
  {
    name: 'allow from namespace y (namespaceSelector ns=y)',
    yaml: docs(onlyA('from-y', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}')),
    expect: 'deny * -> x/a\nallow y/* -> x/a',
  },
  {
    name: 'namespaceSelector on the default label kubernetes.io/metadata.name',
    yaml: docs(onlyA('from-y', '- from:\n  - namespaceSelector:\n      matchLabels: {kubernetes.io/metadata.name: "y"}')),
    expect: 'deny * -> x/a\nallow y/* -> x/a',
  },
  {
    name: 'namespaceSelector matchExpressions In on the default label',
    yaml: docs(onlyA('from-yz', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: kubernetes.io/metadata.name, operator: In, values: ["y", z]}')),
    expect: 'deny * -> x/a\nallow y/*,z/* -> x/a',
  },
  {
    name: 'namespaceSelector matchExpressions NotIn [x]',
    yaml: docs(onlyA('not-x', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: NotIn, values: [x]}')),
    expect: 'deny * -> x/a\nallow y/*,z/* -> x/a',
  },
  {
    name: 'namespaceSelector DoesNotExist ns matches no namespace',
    yaml: docs(onlyA('none', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: DoesNotExist}')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'podSelector peer with matchExpressions In [b]',
    yaml: docs(onlyA('in-b', '- from:\n  - podSelector:\n      matchExpressions:\n      - {key: pod, operator: In, values: [b]}')),
    expect: 'deny * -> x/a\nallow x/b -> x/a',
  },
  {
    name: 'podSelector peer with matchExpressions NotIn [b]',
    yaml: docs(onlyA('not-b', '- from:\n  - podSelector:\n      matchExpressions:\n      - {key: pod, operator: NotIn, values: [b]}')),
    expect: 'deny * -> x/a\nallow x/c -> x/a',
  },
  {
    name: 'podSelector peer DoesNotExist matches no pod',
    yaml: docs(onlyA('none', '- from:\n  - podSelector:\n      matchExpressions:\n      - {key: pod, operator: DoesNotExist}')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'podSelector OR namespaceSelector (two peers)',
    yaml: docs(onlyA('or', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  - podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny * -> x/a\nallow y/*,x/b -> x/a',
  },
  {
    name: 'podSelector AND namespaceSelector (one peer)',
    yaml: docs(onlyA('and', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: In, values: ["y", z]}\n    podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny * -> x/a\nallow y/b,z/b -> x/a',
  },
  {
    name: 'multiple podSelector and namespaceSelector expressions (AND of both)',
    yaml: docs(onlyA('multi', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: NotIn, values: [x]}\n    podSelector:\n      matchExpressions:\n      - {key: pod, operator: In, values: [b, c]}')),
    expect: 'deny * -> x/a\nallow y/b,y/c,z/b,z/c -> x/a',
  },
  {
    name: 'any pod of namespace y (namespaceSelector + podSelector: {})',
    yaml: docs(onlyA('any-y', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n    podSelector: {}')),
    expect: 'deny * -> x/a\nallow y/* -> x/a',
  },
  {
    name: 'pod a of namespace y only (namespaceSelector AND podSelector)',
    yaml: docs(onlyA('ya', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n    podSelector:\n      matchLabels: {pod: a}')),
    expect: 'deny * -> x/a\nallow y/a -> x/a',
  },
  {
    name: 'pod b of every namespace (namespaceSelector: {} AND podSelector)',
    yaml: docs(onlyA('all-b', '- from:\n  - namespaceSelector: {}\n    podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny * -> x/a\nallow */b -> x/a',
  },
  {
    name: 'a podSelector peer does not reach pods with the same labels in other namespaces',
    yaml: docs(onlyA('same-ns-c', '- from:\n  - podSelector:\n      matchLabels: {pod: c}')),
    expect: 'deny * -> x/a\nallow x/c -> x/a',
  },
  {
    name: 'a peer selecting by the synthetic label moat.io/name',
    yaml: docs(onlyA('by-name', '- from:\n  - namespaceSelector: {}\n    podSelector:\n      matchLabels: {moat.io/name: c}')),
    expect: 'deny * -> x/a\nallow */c -> x/a',
  },
  {
    name: 'namespace labels from the moat policy file (namespaces:)',
    yaml: docs(onlyA('team', '- from:\n  - namespaceSelector:\n      matchLabels: {team: blue}')),
    namespaceLabels: { y: { team: 'blue' }, z: { team: 'blue' } },
    expect: 'deny * -> x/a\nallow y/*,z/* -> x/a',
  },
  {
    name: 'NotIn also matches namespaces without the label',
    yaml: docs(onlyA('not-blue', '- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: team, operator: NotIn, values: [blue]}')),
    namespaceLabels: { y: { team: 'blue' } },
    expect: 'deny * -> x/a\nallow x/*,z/* -> x/a',
  },
  {
    name: 'policies in two namespaces allowing each other',
    yaml: docs(
      np('x', 'from-y', 'podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}'),
      np('y', 'from-x', 'podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: x}'),
    ),
    expect: 'deny * -> x/*,y/*\nallow y/* -> x/*\nallow x/* -> y/*',
  },

  // --- ports -------------------------------------------------------------------------------
  {
    name: 'TCP 81 from namespace y',
    yaml: docs(onlyA('y-81', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 81')),
    expect: 'deny * -> x/a\nallow y/* -> x/a on TCP/81',
  },
  {
    name: 'ports only, no from: TCP 80 from everyone (ICMP denied)',
    yaml: docs(onlyA('p80', '- ports:\n  - port: 80')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/80',
  },
  {
    name: 'explicit protocol TCP equals the default',
    yaml: docs(onlyA('tcp80', '- ports:\n  - {protocol: TCP, port: 80}')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/80',
  },
  {
    name: 'SCTP is not TCP',
    yaml: docs(onlyA('sctp80', '- ports:\n  - {protocol: SCTP, port: 80}')),
    expect: 'deny * -> x/a\nallow * -> x/a on SCTP/80',
  },
  {
    name: 'a UDP port does not allow TCP',
    yaml: docs(onlyA('udp81', '- ports:\n  - {protocol: UDP, port: 81}')),
    expect: 'deny * -> x/a\nallow * -> x/a on UDP/81',
  },
  {
    name: 'a protocol without a port allows every port of that protocol',
    yaml: docs(onlyA('udp-any', '- ports:\n  - protocol: UDP')),
    expect: 'deny * -> x/a\nallow * -> x/a on UDP',
  },
  {
    name: 'a port entry with neither port nor protocol is every TCP port',
    yaml: docs(onlyA('tcp-any', '- ports:\n  - {}')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP',
  },
  {
    name: 'several ports in one rule are ORed',
    yaml: docs(onlyA('multi-port', '- ports:\n  - port: 80\n  - {port: 81, protocol: UDP}')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/80,UDP/81',
  },
  {
    name: 'from and ports in one rule are ANDed',
    yaml: docs(onlyA('b-80', '- from:\n  - podSelector:\n      matchLabels: {pod: b}\n  ports:\n  - port: 80')),
    expect: 'deny * -> x/a\nallow x/b -> x/a on TCP/80',
  },
  {
    name: 'two rules: peers and ports are per rule',
    yaml: docs(onlyA('two-rules', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: z}\n  ports:\n  - port: 81')),
    expect: 'deny * -> x/a\nallow y/* -> x/a on TCP/80\nallow z/* -> x/a on TCP/81',
  },
  {
    name: 'endPort: TCP 80-81',
    yaml: docs(onlyA('range', '- ports:\n  - {port: 80, endPort: 81}')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP',
  },
  {
    name: 'endPort: TCP 81-90 covers 81, 82 and 90, not 80 or 91',
    yaml: docs(onlyA('range', '- ports:\n  - {port: 81, endPort: 90}')),
    probes: ['TCP/80', 'TCP/81', 'TCP/82', 'TCP/90', 'TCP/91', 'UDP/81', 'ICMP'],
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/81,TCP/82,TCP/90',
  },
  {
    name: 'endPort equal to port is that one port',
    yaml: docs(onlyA('range', '- ports:\n  - {port: 81, endPort: 81}')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/81',
  },
  {
    name: 'endPort with UDP',
    yaml: docs(onlyA('range', '- ports:\n  - {port: 80, endPort: 81, protocol: UDP}')),
    expect: 'deny * -> x/a\nallow * -> x/a on UDP',
  },
  {
    name: 'named port serve-80-tcp',
    yaml: docs(onlyA('named', '- ports:\n  - port: serve-80-tcp')),
    expect: 'deny * -> x/a\nallow * -> x/a on TCP/80',
  },
  {
    name: 'named port from namespace y (serve-81-tcp)',
    yaml: docs(onlyA('named', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: serve-81-tcp')),
    expect: 'deny * -> x/a\nallow y/* -> x/a on TCP/81',
  },
  {
    name: 'named UDP port serve-80-udp',
    yaml: docs(onlyA('named', '- ports:\n  - {protocol: UDP, port: serve-80-udp}')),
    expect: 'deny * -> x/a\nallow * -> x/a on UDP/80',
  },
  {
    name: 'named port with the wrong protocol matches nothing',
    yaml: docs(onlyA('named', '- ports:\n  - {protocol: UDP, port: serve-80-tcp}')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'a port name no container declares matches nothing',
    yaml: docs(onlyA('named', '- ports:\n  - port: nosuchport')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'named port resolves per destination pod',
    yaml: docs(np('x', 'http', 'podSelector: {}\ningress:\n- ports:\n  - port: http')),
    mutate: (e) => {
      if (e.id === 'x/a') e.declaredPorts = e.declaredPorts.map((p) => (p.name === 'serve-80-tcp' ? { ...p, name: 'http' } : p));
      if (e.id === 'x/b') e.declaredPorts = e.declaredPorts.map((p) => (p.name === 'serve-81-tcp' ? { ...p, name: 'http' } : p));
    },
    expect: 'deny * -> x/*\nallow * -> x/a on TCP/80\nallow * -> x/b on TCP/81',
  },
  {
    name: 'stacked policies with overlapping podSelectors add up',
    yaml: docs(
      np('x', 'y-80', 'podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80'),
      onlyA('z-81', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: z}\n  ports:\n  - port: 81'),
    ),
    expect: 'deny * -> x/*\nallow y/* -> x/* on TCP/80\nallow z/* -> x/a on TCP/81',
  },
  {
    name: 'multiple ingress policies: allow-all takes precedence',
    yaml: docs(
      onlyA('y-80', '- from:\n  - namespaceSelector:\n      matchLabels: {ns: "y"}\n  ports:\n  - port: 80'),
      onlyA('all', '- {}'),
    ),
    expect: '',
  },

  // --- ipBlock -----------------------------------------------------------------------------
  {
    name: 'ipBlock: namespace y by its addresses',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.2.0/24')),
    expect: 'deny * -> x/a\nallow y/* -> x/a',
  },
  {
    name: 'ipBlock with except',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.2.0/24\n      except: [10.0.2.1/32]')),
    expect: 'deny * -> x/a\nallow y/b,y/c -> x/a',
  },
  {
    name: 'ipBlock with several excepts',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.1.0/24, 10.0.2.2/32]')),
    expect: 'deny * -> x/a\nallow y/a,y/c,z/* -> x/a',
  },
  {
    name: 'ipBlock 0.0.0.0/0 allows every pod',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 0.0.0.0/0')),
    expect: '',
  },
  {
    name: 'ipBlock 0.0.0.0/0 except the pod range allows no pod',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 0.0.0.0/0\n      except: [10.0.0.0/16]')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'ipBlock for one pod (/32)',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.3.3/32')),
    expect: 'deny * -> x/a\nallow z/c -> x/a',
  },
  {
    name: 'an IPv6 ipBlock does not match IPv4 pods',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: ::/0')),
    expect: 'deny * -> x/a',
  },
  {
    name: 'ipBlock OR podSelector peers',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.3.0/24\n  - podSelector:\n      matchLabels: {pod: b}')),
    expect: 'deny * -> x/a\nallow z/*,x/b -> x/a',
  },
  {
    name: 'an address in an except is allowed by another policy (additive)',
    yaml: docs(
      onlyA('wide', '- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.2.0/24]'),
      onlyA('narrow', '- from:\n  - ipBlock:\n      cidr: 10.0.2.2/32'),
    ),
    expect: 'deny * -> x/a\nallow x/*,z/*,y/b -> x/a',
  },
  {
    name: 'ipBlock with ports',
    yaml: docs(onlyA('cidr', '- from:\n  - ipBlock:\n      cidr: 10.0.2.0/24\n  ports:\n  - port: 80')),
    expect: 'deny * -> x/a\nallow y/* -> x/a on TCP/80',
  },

  // --- file forms --------------------------------------------------------------------------
  {
    name: 'kind: List with two policies',
    yaml: `apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny, namespace: x}
  spec:
    podSelector: {}
    policyTypes: [Ingress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: from-y, namespace: x}
  spec:
    podSelector: {}
    ingress:
    - from:
      - namespaceSelector:
          matchLabels: {ns: "y"}
`,
    policies: 2,
    expect: 'deny * -> x/*\nallow y/* -> x/*',
  },
  {
    name: 'NetworkPolicyList whose items omit apiVersion and kind',
    yaml: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata: {name: deny, namespace: z}
  spec:
    podSelector:
      matchLabels: {pod: c}
`,
    policies: 1,
    expect: 'deny * -> z/c',
  },
  {
    name: 'other kinds in the file are skipped with a warning',
    yaml: docs('apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec:\n  ports: [{port: 80}]', denyAllX),
    warnings: [/skipping a Service \(v1\): not a NetworkPolicy/],
    policies: 1,
    expect: 'deny * -> x/*',
  },
];

for (const s of scenarios) test(`ingress: ${s.name}`, () => runScenario(s));

test('the ingress scenarios are many and distinct', () => {
  assert.ok(scenarios.length >= 60, `${scenarios.length}`);
  assert.equal(new Set(scenarios.map((s) => s.name)).size, scenarios.length);
});

test('the harness fails on a wrong expectation (it can fail)', () => {
  assert.throws(() => runScenario({ name: 'wrong', yaml: docs(denyAllX), expect: '' }), /truth table mismatch/);
  assert.throws(() => runScenario({ name: 'wrong2', yaml: docs(denyAllX), expect: 'deny * -> x/a' }), /truth table mismatch/);
  assert.throws(() => runScenario({ name: 'bad-yaml', yaml: 'kind: NetworkPolicy\napiVersion: v2\n', expect: '' }), /without errors/);
});

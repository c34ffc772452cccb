// The NetworkPolicy -> IR mapping itself (shapes, defaults, positions, warnings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetworkPolicies } from '../../../src/policy/netpol/index.js';
import { isQualifiedName, isValidPortName, parseStrictCidr } from '../../../src/policy/netpol/k8s-validation.js';

const file = 'p.yaml';

test('maps subject, isolation, peers and ports to the IR', () => {
  const text = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: lb}}
    - namespaceSelector: {matchLabels: {team: ops}}
      podSelector: {matchExpressions: [{key: role, operator: In, values: [probe]}]}
    - namespaceSelector: {}
    - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}
    ports:
    - port: 8080
    - {protocol: UDP, port: 5000, endPort: 5010}
    - {protocol: SCTP}
    - {port: metrics}
`;
  const { policies, diagnostics } = parseNetworkPolicies(text, file);
  assert.deepEqual(diagnostics, []);
  assert.equal(policies.length, 1);
  const p = policies[0];
  assert.equal(p.id, 'netpol:shop/web');
  assert.equal(p.name, 'shop/web');
  assert.equal(p.kind, 'netpol');
  assert.deepEqual(p.pos, { file, line: 1, col: 1 });
  assert.deepEqual(p.subject, { namespaces: { kind: 'names', names: ['shop'] }, labels: { matchLabels: { app: 'web' } } });
  assert.deepEqual(p.isolates, { ingress: true, egress: false });
  assert.deepEqual(p.egress, []);
  assert.equal(p.ingress.length, 1);
  const r = p.ingress[0];
  assert.equal(r.action, 'allow');
  assert.equal(r.text, 'spec.ingress[0]');
  assert.deepEqual(r.pos, { file, line: 10, col: 5 });
  assert.deepEqual(r.peers, [
    { kind: 'endpoints', selector: { namespaces: { kind: 'names', names: ['shop'] }, labels: { matchLabels: { app: 'lb' } } } },
    {
      kind: 'endpoints',
      selector: {
        namespaces: { kind: 'selector', selector: { matchLabels: { team: 'ops' } } },
        labels: { matchExpressions: [{ key: 'role', operator: 'In', values: ['probe'] }] },
      },
    },
    { kind: 'endpoints', selector: { namespaces: { kind: 'all' }, labels: {} } },
    { kind: 'cidr', cidr: '192.168.0.0/16', except: ['192.168.1.0/24'] },
  ]);
  assert.deepEqual(r.ports, [
    { protocol: 'TCP', port: 8080 },
    { protocol: 'UDP', port: 5000, endPort: 5010 },
    { protocol: 'SCTP' },
    { protocol: 'TCP', name: 'metrics' },
  ]);
});

test('policyTypes defaulting and empty versus absent fields', () => {
  const mk = (spec: string) => parseNetworkPolicies(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n${spec}\n`, file);
  const iso = (spec: string) => mk(spec).policies[0]?.isolates;
  assert.deepEqual(iso('  podSelector: {}'), { ingress: true, egress: false });
  assert.deepEqual(iso('  podSelector: {}\n  egress: []'), { ingress: true, egress: false });
  assert.deepEqual(iso('  podSelector: {}\n  egress: [{}]'), { ingress: true, egress: true });
  assert.deepEqual(iso('  podSelector: {}\n  policyTypes: [Egress]'), { ingress: false, egress: true });
  assert.deepEqual(iso('  podSelector: {}\n  policyTypes: []\n  egress: [{}]'), { ingress: true, egress: true });
  const noNs = mk('  podSelector: {}').policies[0];
  assert.deepEqual(noNs.subject.namespaces, { kind: 'names', names: ['default'] });
  const allowAll = mk('  podSelector: {}\n  ingress:\n  - from: []\n    ports: []').policies[0];
  assert.equal(allowAll.ingress[0].peers, 'all');
  assert.equal(allowAll.ingress[0].ports, undefined);
  const ignored = mk('  podSelector: {}\n  policyTypes: [Ingress]\n  egress: [{}]');
  assert.deepEqual(ignored.policies[0].egress, []);
  assert.equal(ignored.diagnostics[0].code, 'netpol.ignored-rules');
  assert.deepEqual(ignored.diagnostics[0].pos, { file, line: 7, col: 3 });
});

test('warnings: other kinds, missing spec, null selectors, YAML 1.1 booleans', () => {
  const text = `apiVersion: moat/v1
kind: Policy
metadata: {name: m}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: nospec, namespace: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: nulls, namespace: shop}
spec:
  podSelector:
    matchLabels: {enabled: yes}
  ingress:
  - from:
    - podSelector:
      namespaceSelector: {}
---
- just
- a list
`;
  const { policies, diagnostics } = parseNetworkPolicies(text, file);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  const w = diagnostics.map((d) => `${d.code} ${d.pos?.line}:${d.pos?.col}`);
  assert.deepEqual(w, [
    'netpol.skipped 2:7',
    'netpol.no-spec 5:1',
    'netpol.yaml11-bool 14:28',
    'netpol.null-selector 17:7',
    'netpol.skipped 20:1',
  ]);
  // No spec: the zero spec (every pod of the namespace, ingress isolated, no rules).
  assert.deepEqual(policies[0].isolates, { ingress: true, egress: false });
  assert.deepEqual(policies[0].subject.labels, {});
  // A null podSelector in a peer is absent: the peer is namespaceSelector {} alone (all pods everywhere).
  assert.deepEqual(policies[1].ingress[0].peers, [{ kind: 'endpoints', selector: { namespaces: { kind: 'all' }, labels: {} } }]);
  assert.ok(diagnostics.every((d) => d.fix && d.fix.length > 0));
});

test('aliases and merge keys are resolved', () => {
  const text = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: &sel
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector: *sel
    ports:
    - &p80 {port: 80}
    - <<: *p80
      protocol: UDP
`;
  const { policies, diagnostics } = parseNetworkPolicies(text, file);
  assert.deepEqual(diagnostics, []);
  const r = policies[0].ingress[0];
  assert.deepEqual(r.peers, [{ kind: 'endpoints', selector: { namespaces: { kind: 'names', names: ['x'] }, labels: { matchLabels: { app: 'web' } } } }]);
  assert.deepEqual(r.ports, [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 80 }]);
});

test('YAML syntax errors are positioned diagnostics, not exceptions', () => {
  const { policies, diagnostics } = parseNetworkPolicies('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p\n', file);
  assert.equal(policies.length, 0);
  assert.equal(diagnostics[0].code, 'yaml.syntax');
  assert.equal(diagnostics[0].pos?.file, file);
  assert.ok((diagnostics[0].pos?.line ?? 0) >= 3);
});

test('validators: qualified names, port names, strict CIDRs', () => {
  assert.deepEqual(isQualifiedName('app'), []);
  assert.deepEqual(isQualifiedName('example.com/App_1.x-y'), []);
  assert.notDeepEqual(isQualifiedName('/app'), []);
  assert.notDeepEqual(isQualifiedName('app/'), []);
  assert.notDeepEqual(isQualifiedName('a_b.com/app'), []);
  assert.deepEqual(isValidPortName('serve-80-tcp'), []);
  assert.notDeepEqual(isValidPortName('80'), []);
  assert.notDeepEqual(isValidPortName('-http'), []);
  const ok = parseStrictCidr('fd00::/64');
  assert.ok('cidr' in ok && ok.cidr.text === 'fd00::/64');
  assert.ok('error' in parseStrictCidr('fd00::1/64'));
  assert.ok('error' in parseStrictCidr('10.0.0.0/08'));
});

test('the documented example (test/fixtures/netpol/shop.yaml) loads with moat/v1 documents beside it', async () => {
  const { readFileSync } = await import('node:fs');
  const { loadPolicyFile } = await import('../../../src/policy/load.js');
  const path = new URL('../../fixtures/netpol/shop.yaml', import.meta.url).pathname;
  const text = readFileSync(path, 'utf8');
  const direct = parseNetworkPolicies(text, path);
  assert.deepEqual(direct.policies.map((p) => p.id), ['netpol:shop/default-deny', 'netpol:shop/web', 'netpol:shop/api']);
  assert.deepEqual(direct.diagnostics.map((d) => d.code), ['netpol.skipped']);
  const loaded = loadPolicyFile(path, text);
  assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
  assert.deepEqual(loaded.policySet.policies.map((p) => p.id).filter((id) => id.startsWith('netpol:')).sort(), ['netpol:shop/api', 'netpol:shop/default-deny', 'netpol:shop/web']);
  assert.deepEqual(loaded.policySet.namespaceLabels.shop, { env: 'prod' });
  const api = direct.policies[2];
  assert.deepEqual(api.egress[0].peers, [{ kind: 'cidr', cidr: '10.20.0.0/16', except: ['10.20.9.0/24'] }]);
  assert.deepEqual(api.ingress[0].ports, [{ protocol: 'TCP', port: 8000, endPort: 8010 }]);
});

test('a repeated policyType is accepted with a warning, as the API server accepts it', () => {
  const text = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n';
  const r = parseNetworkPolicies(text, 'dup.yaml');
  assert.equal(r.policies.length, 1);
  assert.deepEqual(r.policies[0].isolates, { ingress: true, egress: false });
  const w = r.diagnostics.find((d) => d.code === 'netpol.policy-types');
  assert.equal(w?.severity, 'warning');
  assert.deepEqual([w?.pos?.line, w?.pos?.col], [6, 26]);
});

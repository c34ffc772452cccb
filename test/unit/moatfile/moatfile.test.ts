import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { compileMoatDocuments } from '../../../src/policy/moatfile/index.js';
import { parseYamlDocuments } from '../../../src/util/yaml.js';
import { analyze } from '../../../src/analysis/reachability.js';
import type { Endpoint, World } from '../../../src/model/world.js';

const FIXTURE = fileURLToPath(new URL('../../fixtures/policies/shop.yaml', import.meta.url));

function compile(text: string) {
  const { docs, diagnostics } = parseYamlDocuments(text, 'p.yaml');
  if (diagnostics.length) return { policySet: undefined, diagnostics };
  return compileMoatDocuments(docs);
}

function ep(name: string, ip: string, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    id: `shop/${name}`, name, namespace: 'shop', composeService: name, labels: {}, networkMode: { kind: 'bridge' },
    attachments: [{ network: 'shop_default', ipv4: ip }], declaredPorts: [], publishedPorts: [], ...extra,
  };
}

function shopWorld(): World {
  return {
    origin: 'test', namespaces: [], externals: [], host: { addresses: ['172.20.0.1'] }, warnings: [],
    networks: [{ name: 'shop_default', driver: 'bridge', subnets: ['172.20.0.0/16'], internal: false, options: {}, icc: true, enableIPv6: false }],
    endpoints: [
      ep('web', '172.20.0.2', { publishedPorts: [{ hostIp: '', hostPort: 80, containerPort: 80, protocol: 'TCP' }] }),
      ep('api', '172.20.0.3', { declaredPorts: [{ port: 8080, protocol: 'TCP', name: 'http' }] }),
      ep('db', '172.20.0.4', { labels: { tier: 'db' }, publishedPorts: [{ hostIp: '0.0.0.0', hostPort: 5432, containerPort: 5432, protocol: 'TCP' }] }),
    ],
  };
}

test('policy file: groups, named ports, cidr sets, deny, published-port allowlist', () => {
  const r = compile(readFileSync(FIXTURE, 'utf8'));
  assert.deepEqual(r.diagnostics, []);
  const a = analyze(shopWorld(), r.policySet!);
  const c = (x: string, y: string) => a.connections(a.nodeIndex(x)!, a.nodeIndex(y)!).toString();
  assert.equal(c('internet', 'shop/web'), 'TCP 80');
  assert.equal(c('shop/web', 'shop/api'), 'TCP 8080', 'named port http resolved on the destination');
  assert.equal(c('shop/db', 'shop/api'), 'None');
  assert.equal(c('external:office', 'shop/api'), 'None', 'office has no published path to api');
  assert.equal(c('shop/api', 'shop/db'), 'TCP 5432');
  assert.equal(c('shop/web', 'shop/db'), 'None');
  assert.equal(c('internet', 'shop/db'), 'None', 'the allowlist admits only 192.168.1.100');
  assert.equal(c('external:office', 'shop/db'), 'None', 'office is a /24, wider than the allowlisted address');
  assert.equal(c('shop/db', 'internet'), 'None');
  assert.equal(c('shop/db', 'host'), 'All');
  const flat = analyze(shopWorld(), r.policySet!, { flat: true });
  assert.equal(flat.connections(flat.nodeIndex('external:office')!, flat.nodeIndex('shop/api')!).toString(), 'All');
});

test('the allowlisted source passes the published port even though db ingress would not admit it', () => {
  const r = compile(readFileSync(FIXTURE, 'utf8'));
  const w = shopWorld();
  w.externals.push({ name: 'dba', cidrs: ['192.168.1.100/32'] });
  const a = analyze(w, r.policySet!);
  assert.equal(a.connections(a.nodeIndex('dba')!, a.nodeIndex('shop/db')!).toString(), 'TCP 5432');
});

test('errors carry file, line, column and a fix', () => {
  const cases: [string, RegExp, number, number][] = [
    ['apiVersion: moat/v2\nkind: Policy\nmetadata: {name: a}\n', /apiVersion must be moat\/v1/, 1, 13],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingres: []\n', /unknown key "ingres"/, 6, 5],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingress:\n      - ports: [70000]\n', /port 70000 is out of range/, 7, 17],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingress:\n      - from: ["10.0.0.0/33"]\n', /not a valid address/, 7, 16],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingress:\n      - from: ["web; rm -rf /"]\n', /unexpected character ";"/, 7, 16],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingress:\n      - from: [{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}]\n', /not strictly inside/, 7, 44],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web: [\n', /YAML syntax error/, 6, 1],
    ['apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    select: {matchExpressions: [{key: a, operator: In}]}\n', /needs values/, 6, 33],
  ];
  for (const [text, re, line, col] of cases) {
    const r = compile(text);
    const d = r.diagnostics.find((x) => x.severity === 'error');
    assert.ok(d, `expected an error for ${JSON.stringify(text)}`);
    assert.match(d!.message, re);
    assert.ok(d!.fix, 'has a fix');
    assert.deepEqual([d!.pos?.line, d!.pos?.col], [line, col], `${d!.message} at ${JSON.stringify(d!.pos)}`);
  }
});

test('a file with errors contributes nothing', () => {
  const r = compile('apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    select: {service: web}\n    ingress:\n      - ports: [0]\n');
  assert.ok(r.policySet);
  assert.equal(r.policySet!.policies.length, 0);
  assert.equal(r.policySet!.groups.length, 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze } from '../../../src/analysis/reachability.js';
import { emptyPolicySet, type Policy } from '../../../src/model/ir.js';
import type { Endpoint, Network, World } from '../../../src/model/world.js';

function ep(name: string, nets: [string, string][], extra: Partial<Endpoint> = {}): Endpoint {
  return {
    id: `shop/${name}`, name, namespace: 'shop', labels: {}, networkMode: { kind: 'bridge' },
    attachments: nets.map(([network, ipv4]) => ({ network, ipv4 })), declaredPorts: [], publishedPorts: [], ...extra,
  };
}
function net(name: string, internal = false, icc = true): Network {
  return { name, driver: 'bridge', subnets: [], internal, options: {}, icc, enableIPv6: false };
}
function world(endpoints: Endpoint[], networks: Network[]): World {
  return { origin: 'test', namespaces: [], endpoints, networks, externals: [], host: { addresses: [] }, warnings: [] };
}

test('topology: shared network, separate networks, internal, published ports', () => {
  const w = world(
    [
      ep('web', [['front', '10.1.0.2']], { publishedPorts: [{ hostIp: '', hostPort: 80, containerPort: 80, protocol: 'TCP' }] }),
      ep('api', [['front', '10.1.0.3'], ['back', '10.2.0.3']]),
      ep('db', [['back', '10.2.0.4']], { publishedPorts: [{ hostIp: '127.0.0.1', hostPort: 5432, containerPort: 5432, protocol: 'TCP' }] }),
    ],
    [net('front'), net('back', true)],
  );
  const a = analyze(w, emptyPolicySet());
  const c = (x: string, y: string) => a.connections(a.nodeIndex(x)!, a.nodeIndex(y)!).toString();
  assert.equal(c('shop/web', 'shop/api'), 'All');
  assert.equal(c('shop/api', 'shop/db'), 'All');
  assert.equal(c('shop/db', 'shop/web'), 'None', 'db is only on an internal network: no way to the host-published port');
  assert.equal(c('shop/web', 'shop/db'), 'None', 'no shared network, db publishes on loopback only');
  assert.equal(c('internet', 'shop/web'), 'TCP 80');
  assert.equal(c('internet', 'shop/db'), 'None');
  assert.equal(c('shop/web', 'internet'), 'All');
  assert.equal(c('shop/db', 'internet'), 'None');
  assert.equal(c('host', 'shop/db'), 'All');
  assert.equal(c('shop/db', 'host'), 'All');
  const flat = analyze(w, emptyPolicySet(), { flat: true });
  assert.equal(flat.connections(flat.nodeIndex('shop/db')!, flat.nodeIndex('internet')!).toString(), 'All');
});

test('container to a published port: through docker-proxy the destination sees the host', async () => {
  const { compileLabels } = await import('../../../src/policy/labels/index.js');
  const build = (proxy: boolean | undefined, aLabels: Record<string, string>, bLabels: Record<string, string>) => {
    const w = world(
      [
        ep('a', [['one', '10.1.0.2']], { labels: aLabels }),
        ep('b', [['two', '10.2.0.2']], { labels: bLabels, publishedPorts: [{ hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'TCP' }] }),
      ],
      [net('one'), net('two')],
    );
    w.host.userlandProxy = proxy;
    const a = analyze(w, compileLabels(w).policySet);
    return a.connections(a.nodeIndex('shop/a')!, a.nodeIndex('shop/b')!).toString();
  };
  // b admits only the host: through the proxy a gets in (as the host); with kernel DNAT a keeps its address.
  assert.equal(build(undefined, {}, { 'security.allow.inbound': 'host:80' }), 'TCP 80');
  assert.equal(build(true, {}, { 'security.allow.inbound': 'host:80' }), 'TCP 80');
  assert.equal(build(false, {}, { 'security.allow.inbound': 'host:80' }), 'None');
  // a may only talk to the host on 8080: the proxy path uses the host port; DNAT sends it to b (a container).
  assert.equal(build(true, { 'security.allow.outbound': 'host:8080' }, {}), 'TCP 80');
  assert.equal(build(false, { 'security.allow.outbound': 'host:8080' }, {}), 'None');
  assert.equal(build(true, { 'security.allow.outbound': 'host:9999' }, {}), 'None');
});

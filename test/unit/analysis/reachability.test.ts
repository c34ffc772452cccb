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

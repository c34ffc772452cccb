import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { formatSnapshot, jsonErrorOffset, parseSnapshot, readSnapshot, worldToSnapshot } from '../../../src/sources/snapshot/index.js';
import { UserError, type Diagnostic } from '../../../src/model/diagnostics.js';
import { completeNamespaces, type World } from '../../../src/model/world.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'snapshot');

function richWorld(): World {
  return completeNamespaces({
    origin: 'docker:///var/run/docker.sock',
    namespaces: [{ name: 'shop', labels: { env: 'prod', team: 'a' } }],
    networks: [
      {
        name: 'shop_back',
        id: 'abc123',
        namespace: 'shop',
        driver: 'bridge',
        subnets: ['10.1.0.0/24', 'fd00:1::/64'],
        gateways: ['10.1.0.1', 'fd00:1::1'],
        internal: true,
        options: { 'com.docker.network.bridge.enable_icc': 'false' },
        icc: false,
        enableIPv6: true,
        labels: { 'com.docker.compose.project': 'shop' },
      },
      { name: 'ext', driver: 'bridge', subnets: [], internal: false, options: {}, icc: true, enableIPv6: false, external: true },
    ],
    endpoints: [
      {
        id: 'c0ffee',
        name: 'web',
        namespace: 'shop',
        containerName: 'shop-web-1',
        composeService: 'web',
        labels: { 'security.group': 'web', 'security.allow.inbound': '80,443' },
        networkMode: { kind: 'bridge' },
        attachments: [
          { network: 'shop_back', ipv4: '10.1.0.5', ipv6: 'fd00:1::5', aliases: ['web', 'www'] },
          { network: 'ext' },
        ],
        declaredPorts: [
          { port: 80, protocol: 'TCP', name: 'http' },
          { port: 53, protocol: 'UDP' },
          { port: 9999, protocol: 'SCTP' },
        ],
        publishedPorts: [
          { hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'TCP' },
          { hostIp: '', containerPort: 53, protocol: 'UDP' },
          { hostIp: '::', hostPort: 8053, containerPort: 53, protocol: 'UDP' },
        ],
        running: true,
        pid: 4242,
        image: 'moat-busybox:1',
      },
      { id: 'side', name: 'side', namespace: 'shop', labels: {}, networkMode: { kind: 'container', of: 'c0ffee' }, attachments: [], declaredPorts: [], publishedPorts: [], running: false },
      { id: 'h', name: 'h', namespace: 'default', labels: {}, networkMode: { kind: 'host' }, attachments: [], declaredPorts: [], publishedPorts: [] },
      { id: 'n', name: 'n', namespace: 'default', labels: {}, networkMode: { kind: 'none' }, attachments: [], declaredPorts: [], publishedPorts: [] },
    ],
    externals: [{ name: 'office', cidrs: ['192.168.1.0/24', '2001:db8::/32'] }],
    host: { addresses: ['10.1.0.1', 'fd00:1::1'], userlandProxy: false },
    warnings: ['something odd'],
  });
}

function diagnosticsOf(fn: () => unknown): Diagnostic[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err.diagnostics;
    throw err;
  }
  assert.fail('expected a UserError');
}

test('round trip: World -> snapshot text -> World is the identity (but for the origin)', () => {
  const world = richWorld();
  const text = formatSnapshot(world);
  const back = parseSnapshot(text, 'snap.json');
  assert.equal(back.origin, 'snapshot:snap.json');
  assert.deepEqual({ ...back, origin: world.origin }, world);
  // and snapshot -> World -> snapshot is stable
  assert.equal(formatSnapshot({ ...back, origin: world.origin }), text);
  const snap = worldToSnapshot(world);
  assert.equal(snap.moatSnapshot, 1);
  assert.deepEqual(snap.namespaces?.find((n) => n.name === 'shop')?.labels, { env: 'prod', team: 'a' });
  assert.equal(snap.endpoints?.[1].networkMode, 'container:c0ffee');
});

test('a hand-written snapshot gets the documented defaults', () => {
  const w = readSnapshot(join(FIXTURES, 'three-tier.json'));
  assert.equal(w.origin, `snapshot:${join(FIXTURES, 'three-tier.json')}`);
  const nginx = w.endpoints.find((e) => e.name === 'nginx')!;
  assert.equal(nginx.id, 'shop/nginx');
  assert.deepEqual(nginx.declaredPorts, [
    { port: 80, protocol: 'TCP' },
    { port: 443, protocol: 'TCP', name: 'https' },
  ]);
  assert.deepEqual(nginx.publishedPorts, [{ hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'TCP' }]);
  assert.deepEqual(nginx.networkMode, { kind: 'bridge' });
  assert.equal(nginx.running, undefined);
  const side = w.endpoints.find((e) => e.name === 'sidecar')!;
  assert.deepEqual(side.networkMode, { kind: 'container', of: 'shop/api-server' });
  const tool = w.endpoints.find((e) => e.name === 'tool')!;
  assert.equal(tool.namespace, 'default');
  assert.deepEqual(tool.networkMode, { kind: 'host' });
  const back = w.networks.find((n) => n.name === 'shop_backend')!;
  assert.equal(back.icc, false);
  assert.equal(back.internal, true);
  assert.equal(back.driver, 'bridge');
  assert.equal(w.networks.find((n) => n.name === 'shop_frontend')!.icc, true);
  assert.deepEqual(
    w.namespaces.map((n) => [n.name, n.labels]),
    [
      ['shop', { env: 'prod', 'kubernetes.io/metadata.name': 'shop' }],
      ['default', { 'kubernetes.io/metadata.name': 'default' }],
    ],
  );
  assert.deepEqual(w.externals, [{ name: 'office', cidrs: ['192.168.1.0/24'] }]);
});

test('unknown keys are errors at the key', () => {
  const d = diagnosticsOf(() => readSnapshot(join(FIXTURES, 'unknown-key.json')));
  assert.equal(d.length, 1);
  assert.equal(d[0].code, 'snapshot.unknown-key');
  assert.match(d[0].message, /endpoints\[0\]: unknown key "lables"/);
  assert.deepEqual([d[0].pos?.line, d[0].pos?.col], [6, 7]);
});

test('schema errors carry the position of the value', () => {
  const d = diagnosticsOf(() => readSnapshot(join(FIXTURES, 'bad-port.json')));
  assert.equal(d.length, 1);
  assert.equal(d[0].code, 'snapshot.schema');
  assert.match(d[0].message, /^endpoints\[0\]\.declaredPorts\[1\]\.port: /);
  assert.deepEqual([d[0].pos?.line, d[0].pos?.col], [4, 67]);
});

test('JSON syntax errors carry line and column', () => {
  const d = diagnosticsOf(() => readSnapshot(join(FIXTURES, 'syntax.json')));
  assert.equal(d[0].code, 'snapshot.syntax');
  assert.deepEqual([d[0].pos?.line, d[0].pos?.col], [4, 22]);
  assert.equal(jsonErrorOffset('{"a": tru}'), 6);
  assert.equal(jsonErrorOffset('{"a": [1, 2]}'), 13);
  assert.equal(jsonErrorOffset('[1, 2'), 5);
  const d2 = diagnosticsOf(() => parseSnapshot('{\n  "moatSnapshot": 1,\n  "x": tru\n}', 'f.json'));
  assert.deepEqual([d2[0].pos?.line, d2[0].pos?.col], [3, 8]);
});

test('version: missing, other versions and non-objects are rejected with a fix', () => {
  const missing = diagnosticsOf(() => parseSnapshot('{"endpoints": []}', 'f.json'));
  assert.equal(missing[0].code, 'snapshot.not-snapshot');
  assert.ok(missing[0].fix);
  const v2 = diagnosticsOf(() => parseSnapshot('{\n  "moatSnapshot": 2\n}', 'f.json'));
  assert.equal(v2[0].code, 'snapshot.version');
  assert.deepEqual([v2[0].pos?.line, v2[0].pos?.col], [2, 19]);
  assert.equal(diagnosticsOf(() => parseSnapshot('[1]', 'f.json'))[0].code, 'snapshot.not-snapshot');
  assert.equal(diagnosticsOf(() => readSnapshot(join(FIXTURES, 'does-not-exist.json')))[0].code, 'snapshot.unreadable');
});

test('meaning: references, addresses, duplicates', () => {
  const snap = (body: object) => JSON.stringify({ moatSnapshot: 1, ...body }, null, 2);
  const codes = (text: string) => diagnosticsOf(() => parseSnapshot(text, 'f.json')).map((d) => d.code);
  const net = { name: 'n', subnets: ['10.0.0.0/24'] };
  assert.deepEqual(codes(snap({ endpoints: [{ name: 'a', attachments: [{ network: 'nope' }] }] })), ['snapshot.unknown-network']);
  assert.deepEqual(codes(snap({ networks: [net], endpoints: [{ name: 'a', attachments: [{ network: 'n', ipv4: '10.0.0.300' }] }] })), ['snapshot.invalid-address']);
  assert.deepEqual(codes(snap({ networks: [net], endpoints: [{ name: 'a', attachments: [{ network: 'n', ipv4: '10.0.1.3' }] }] })), ['snapshot.address-outside']);
  assert.deepEqual(codes(snap({ networks: [net], endpoints: [{ name: 'a', attachments: [{ network: 'n', ipv6: '10.0.0.3' }] }] })), ['snapshot.invalid-address']);
  assert.deepEqual(codes(snap({ endpoints: [{ name: 'a' }, { name: 'a' }] })), ['snapshot.duplicate']);
  assert.deepEqual(codes(snap({ endpoints: [{ name: 'a', networkMode: 'container:zzz' }] })), ['snapshot.unknown-endpoint']);
  assert.deepEqual(codes(snap({ endpoints: [{ name: 'a', networkMode: 'bridged' }] })), ['snapshot.schema']);
  assert.deepEqual(codes(snap({ networks: [{ name: 'n', subnets: ['10.0.0.0'] }] })), ['snapshot.invalid-cidr']);
  assert.deepEqual(codes(snap({ externals: [{ name: 'x', cidrs: ['nope/8'] }] })), ['snapshot.invalid-cidr']);
  assert.deepEqual(codes(snap({ host: { addresses: ['localhost'] } })), ['snapshot.invalid-address']);
  assert.deepEqual(codes('{"moatSnapshot": 1, "endpoints": [], "endpoints": []}'), ['snapshot.syntax']);
  // and a valid one passes
  const ok = parseSnapshot(snap({ networks: [net], endpoints: [{ name: 'a', attachments: [{ network: 'n', ipv4: '10.0.0.3' }] }] }), 'f.json');
  assert.equal(ok.endpoints[0].attachments[0].ipv4, '10.0.0.3');
});

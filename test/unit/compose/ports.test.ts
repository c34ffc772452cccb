import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExpose, parseLongPort, parseShortPort } from '../../../src/sources/compose/ports.js';
import { UserError } from '../../../src/model/diagnostics.js';

const brief = (s: string | number) => parseShortPort(s).map((p) => [p.hostIp, p.published ?? null, p.target, p.protocol]);

test('short syntax: container port only, host:container, ip:host:container', () => {
  assert.deepEqual(brief('80'), [['', null, 80, 'tcp']]);
  assert.deepEqual(brief(80), [['', null, 80, 'tcp']]);
  assert.deepEqual(brief('8080:80'), [['', '8080', 80, 'tcp']]);
  assert.deepEqual(brief('127.0.0.1:8080:80'), [['127.0.0.1', '8080', 80, 'tcp']]);
  assert.deepEqual(brief('127.0.0.1::80'), [['127.0.0.1', null, 80, 'tcp']]);
  assert.deepEqual(brief(':443:443'), [['', '443', 443, 'tcp']]);
  const p = parseShortPort('8080:80')[0];
  assert.equal(p.hostPort, 8080);
  assert.equal(p.mode, 'ingress');
});

test('short syntax: IPv6 host addresses', () => {
  assert.deepEqual(brief('[::1]:8080:80'), [['::1', '8080', 80, 'tcp']]);
  // Docker's nat.ParsePortSpec: the last two parts are ports, the rest is the IP.
  assert.deepEqual(brief('::1:8080:80'), [['::1', '8080', 80, 'tcp']]);
  assert.deepEqual(brief('[fd00::1]:53:53/udp'), [['fd00::1', '53', 53, 'udp']]);
});

test('short syntax: protocols', () => {
  assert.deepEqual(brief('53:53/udp'), [['', '53', 53, 'udp']]);
  assert.deepEqual(brief('9000:9000/SCTP'), [['', '9000', 9000, 'sctp']]);
  assert.deepEqual(brief('80/tcp'), [['', null, 80, 'tcp']]);
});

test('short syntax: ranges expand one entry per container port', () => {
  const r = parseShortPort('8000-8010:8000-8010');
  assert.equal(r.length, 11);
  r.forEach((p, i) => {
    assert.equal(p.target, 8000 + i);
    assert.equal(p.hostPort, 8000 + i);
  });
  assert.deepEqual(brief('9090-9091:8080-8081'), [['', '9090', 8080, 'tcp'], ['', '9091', 8081, 'tcp']]);
  assert.deepEqual(brief('3000-3002'), [['', null, 3000, 'tcp'], ['', null, 3001, 'tcp'], ['', null, 3002, 'tcp']]);
  // A host range for one container port: Docker picks one host port from the range.
  const dyn = parseShortPort('8000-8010:80');
  assert.equal(dyn.length, 1);
  assert.equal(dyn[0].hostPort, undefined);
  assert.deepEqual(dyn[0].hostPortRange, [8000, 8010]);
  assert.equal(dyn[0].published, '8000-8010');
});

test('short syntax: errors', () => {
  for (const bad of ['0', '70000', '8080:0', '70000:80', 'abc', '80/icmp', '1.2.3:80:80', '8000-8002:80-81', '', '90-80', 'x.y::80:80']) {
    assert.throws(() => parseShortPort(bad, { file: 'c.yml', line: 4, col: 9 }), (e: unknown) => {
      assert.ok(e instanceof UserError, bad);
      assert.deepEqual(e.diagnostics[0].pos, { file: 'c.yml', line: 4, col: 9 });
      assert.ok(e.diagnostics[0].fix);
      return true;
    }, bad);
  }
});

test('long syntax', () => {
  const [a] = parseLongPort({ target: 80, published: 8080, host_ip: '127.0.0.1', protocol: 'udp', mode: 'host' });
  assert.deepEqual([a.target, a.hostPort, a.hostIp, a.protocol, a.mode], [80, 8080, '127.0.0.1', 'udp', 'host']);
  const [b] = parseLongPort({ target: '443', published: '8443' });
  assert.deepEqual([b.target, b.hostPort, b.hostIp, b.protocol, b.mode], [443, 8443, '', 'tcp', 'ingress']);
  const [c] = parseLongPort({ target: 80, published: '8000-8005' });
  assert.equal(c.hostPort, undefined);
  assert.deepEqual(c.hostPortRange, [8000, 8005]);
  const [d] = parseLongPort({ target: 80 });
  assert.equal(d.published, undefined);
  assert.throws(() => parseLongPort({ published: 80 }), UserError);
  assert.throws(() => parseLongPort({ target: 0 }), UserError);
  assert.throws(() => parseLongPort({ target: 80, published: 70000 }), UserError);
  assert.throws(() => parseLongPort({ target: 80, host_ip: 'localhost' }), UserError);
  assert.throws(() => parseLongPort({ target: 80, mode: 'bridge' }), UserError);
});

test('expose', () => {
  assert.deepEqual(parseExpose('3306').map((e) => [e.port, e.protocol]), [[3306, 'tcp']]);
  assert.deepEqual(parseExpose(53).map((e) => [e.port, e.protocol]), [[53, 'tcp']]);
  assert.deepEqual(parseExpose('53/udp').map((e) => [e.port, e.protocol]), [[53, 'udp']]);
  assert.deepEqual(parseExpose('8000-8002').map((e) => e.port), [8000, 8001, 8002]);
  assert.throws(() => parseExpose('0'), UserError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer, parseListen, request, tokenMatches, isLoopbackListen } from '../../../src/controller/server.js';
import { DockerEventStream, type DockerEvent } from '../../../src/controller/events.js';
import { UserError } from '../../../src/model/diagnostics.js';
import { sleep } from '../../../src/controller/timing.js';

const handlers = {
  healthz: () => ({ ok: true, detail: { docker: 'connected' } }),
  readyz: () => ({ ok: false, detail: { synced: false } }),
  metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'moat_up 1\n' }),
  status: () => ({ hello: 'world' }),
};

test('listen addresses: unix and loopback need no token; anything else does', () => {
  assert.deepEqual(parseListen('unix:///run/moat/moat.sock'), { kind: 'unix', path: '/run/moat/moat.sock' });
  assert.deepEqual(parseListen('127.0.0.1:9469'), { kind: 'tcp', host: '127.0.0.1', port: 9469 });
  assert.deepEqual(parseListen('[::1]:9469'), { kind: 'tcp', host: '::1', port: 9469 });
  assert.throws(() => parseListen('unix://relative'), UserError);
  assert.throws(() => parseListen('example.com:80'), UserError);
  assert.throws(() => parseListen('0.0.0.0:99999'), UserError);
  assert.equal(isLoopbackListen(parseListen('127.0.0.1:1')), true);
  assert.equal(isLoopbackListen(parseListen('0.0.0.0:9469')), false);
  assert.throws(() => new ControlServer(parseListen('0.0.0.0:9469'), handlers), /needs a token/);
  assert.throws(() => new ControlServer(parseListen('0.0.0.0:9469'), handlers, 'short'), /shorter than 16/);
  assert.equal(tokenMatches('a-long-enough-secret', 'Bearer a-long-enough-secret'), true);
  assert.equal(tokenMatches('a-long-enough-secret', 'Bearer a-long-enough-secreT'), false);
  assert.equal(tokenMatches('a-long-enough-secret', undefined), false);
});

test('HTTP door on a unix socket: healthz 200, readyz 503 when not ready, metrics, status, 404, 405', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-srv-'));
  const addr = parseListen(`unix://${join(dir, 'm.sock')}`);
  const s = new ControlServer(addr, handlers);
  try {
    await s.listen();
    assert.equal(statSync(join(dir, 'm.sock')).mode & 0o777, 0o660);
    assert.equal((await request(addr, '/healthz')).status, 200);
    const r = await request(addr, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body).detail, { synced: false });
    assert.equal((await request(addr, '/metrics')).body, 'moat_up 1\n');
    assert.deepEqual(JSON.parse((await request(addr, '/status')).body), { hello: 'world' });
    assert.equal((await request(addr, '/nope')).status, 404);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HTTP door with a token: 401 without it, 200 with it', async () => {
  const token = 'x'.repeat(32);
  const s = new ControlServer({ kind: 'tcp', host: '127.0.0.1', port: 0 }, handlers, token);
  const where = await s.listen();
  const port = Number(where.split(':').pop());
  const addr = { kind: 'tcp' as const, host: '127.0.0.1', port };
  try {
    assert.equal((await request(addr, '/status')).status, 401);
    assert.equal((await request(addr, '/status', 'y'.repeat(32))).status, 401);
    assert.equal((await request(addr, '/status', token)).status, 200);
  } finally {
    await s.close();
  }
});

test('event stream: parses events, reconnects after the server drops it, and asks for `since`', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-ev-'));
  const sock = join(dir, 'docker.sock');
  const paths: string[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    n++;
    const ev = (id: string, t: number) => `${JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: id, Attributes: {} }, time: t, timeNano: t * 1e9 })}\n`;
    // First connection: two events split mid-object, then the "daemon" goes away.
    if (n === 1) {
      const text = ev('a', 1700000000) + ev('b', 1700000005);
      res.write(text.slice(0, 30));
      setTimeout(() => {
        res.write(text.slice(30));
        setTimeout(() => res.destroy(), 20);
      }, 20);
    } else {
      res.write(ev('c', 1700000010));
    }
  });
  await new Promise<void>((r) => server.listen(sock, () => r()));
  const got: DockerEvent[] = [];
  const connects: boolean[] = [];
  let disconnects = 0;
  const stream = new DockerEventStream({ socketPath: sock }, { event: (e) => got.push(e), connected: (r) => connects.push(r), disconnected: () => disconnects++ }, { initialMs: 20, maxMs: 50 });
  try {
    stream.start();
    for (let i = 0; i < 100 && got.length < 3; i++) await sleep(20);
    assert.deepEqual(got.map((e) => e.Actor.ID), ['a', 'b', 'c']);
    assert.deepEqual(connects, [false, true]);
    assert.ok(disconnects >= 1);
    assert.doesNotMatch(paths[0], /since=/);
    assert.match(paths[1], /since=1700000004/);
    assert.match(decodeURIComponent(paths[0]), /"type":\["container","network"\]/);
  } finally {
    stream.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

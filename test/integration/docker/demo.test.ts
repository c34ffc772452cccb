// The demo bring-up on a real engine: the seed's three-tier Compose example, under a unique project name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { cleanup, listeningTcpPorts, requireDocker, uniqueName } from '../../helpers/docker.js';
import { bringUpWorld, loadDemoWorld, tearDownProject } from '../../../src/demo/index.js';
import type { World } from '../../../src/model/world.js';

function httpGet(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('bringUpWorld brings the three-tier demo up, replaces leftovers, and tears down', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const project = uniqueName('moatdemo');
  cleanup.add(`project ${project}`, () => tearDownProject(project));
  const composeWorld = await loadDemoWorld({ projectName: project });
  // Docker picks the host ports here so that the test never clashes with a demo already running on 18080/18443.
  const world: World = {
    ...composeWorld,
    endpoints: composeWorld.endpoints.map((e) => ({ ...e, publishedPorts: e.publishedPorts.map(({ hostPort: _h, ...p }) => p) })),
  };

  const first = await bringUpWorld(world);
  const live = first.world;
  assert.deepEqual(live.endpoints.map((e) => e.name).sort(), ['api-server', 'mysql', 'nginx', 'redis']);
  assert.ok(live.endpoints.every((e) => e.namespace === project && e.running && e.pid));
  assert.deepEqual(live.warnings, []);

  const net = (key: string) => live.networks.find((n) => n.name === `${project}_${key}`)!;
  assert.equal(net('frontend').internal, false);
  assert.equal(net('backend').internal, true);
  assert.equal(net('database').internal, true);
  assert.deepEqual(live.networks.map((n) => n.name).sort(), ['backend', 'database', 'frontend'].map((k) => `${project}_${k}`));

  const ep = (name: string) => live.endpoints.find((e) => e.name === name)!;
  const nets = (name: string) => ep(name).attachments.map((a) => a.network.slice(project.length + 1)).sort();
  assert.deepEqual(nets('nginx'), ['frontend']);
  assert.deepEqual(nets('api-server'), ['backend', 'database', 'frontend']);
  assert.deepEqual(nets('mysql'), ['database']);
  assert.deepEqual(nets('redis'), ['database']);
  assert.ok(ep('mysql').attachments[0].ipv4, 'mysql has a live address');

  // The seed's labels, verbatim, plus Compose's project/service labels.
  for (const e of composeWorld.endpoints) {
    for (const [k, v] of Object.entries(e.labels)) assert.equal(ep(e.name).labels[k], v, `${e.name} label ${k}`);
    assert.equal(ep(e.name).composeService, e.name);
    assert.deepEqual(ep(e.name).declaredPorts, e.declaredPorts);
  }
  assert.equal(ep('nginx').labels['security.allow.inbound'], '80,443');
  assert.equal(ep('mysql').labels['security.deny.outbound'], 'internet');

  // Published on loopback, on ports Docker chose; the listener answers through them.
  const published = ep('nginx').publishedPorts;
  assert.deepEqual(published.map((p) => [p.hostIp, p.containerPort, p.protocol]), [['127.0.0.1', 80, 'TCP'], ['127.0.0.1', 443, 'TCP']]);
  assert.ok(published.every((p) => p.hostPort && p.hostPort > 0));
  assert.equal(await httpGet(published[0].hostPort!), 200);
  // Every declared port listens in its container.
  for (const name of ['nginx', 'api-server', 'mysql', 'redis']) {
    const open = listeningTcpPorts(ep(name).pid!);
    for (const p of ep(name).declaredPorts) assert.ok(open.has(p.port), `${name} listens on ${p.port}`);
  }

  // Idempotent: a second bring-up replaces the first.
  const second = await bringUpWorld(world);
  assert.deepEqual(second.world.endpoints.map((e) => e.name).sort(), ['api-server', 'mysql', 'nginx', 'redis']);
  const oldIds = new Set(live.endpoints.map((e) => e.id));
  assert.ok(second.world.endpoints.every((e) => !oldIds.has(e.id)));
  const filters = { label: [`com.docker.compose.project=${project}`] };
  assert.equal((await docker.listContainers({ all: true, filters })).length, 4);

  await second.teardown();
  assert.equal((await docker.listContainers({ all: true, filters })).length, 0);
  assert.equal((await docker.listNetworks({ filters })).length, 0);
});

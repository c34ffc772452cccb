import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { composeToWorld, loadComposeProject } from '../../../src/sources/compose/index.js';
import { cleanupProjects, writeProject } from './helpers.js';

after(cleanupProjects);

test('composeToWorld: endpoints, networks, ports, network modes', async () => {
  const compose = `services:
  web:
    image: nginx
    labels: {tier: front}
    ports:
      - "8080:80"
      - "127.0.0.1:8443:443"
      - "9000"
      - "53:53/udp"
      - "7000-7001:7000-7001"
    expose: ["81"]
    networks:
      front:
        ipv4_address: 10.5.0.10
        aliases: [www]
  db:
    image: postgres
    container_name: pg
    expose: ["5432"]
  side:
    image: busybox
    network_mode: service:web
  sidecar2:
    image: busybox
    network_mode: container:pg
  hostnet:
    image: busybox
    network_mode: host
  nonet:
    image: busybox
    network_mode: none
networks:
  front:
    driver_opts:
      com.docker.network.bridge.enable_icc: "false"
    ipam:
      config:
        - subnet: 10.5.0.0/24
          gateway: 10.5.0.1
`;
  const dir = writeProject({ 'compose.yaml': compose }, 'world');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {}, projectName: 'shop' });
  const w = composeToWorld(p);
  assert.deepEqual(w.namespaces.map((n) => n.name), ['shop']);
  const ep = (n: string) => {
    const e = w.endpoints.find((x) => x.name === n);
    assert.ok(e, n);
    return e;
  };
  const web = ep('web');
  assert.equal(web.id, 'shop/web');
  assert.equal(web.namespace, 'shop');
  assert.equal(web.containerName, 'shop-web-1');
  assert.equal(web.composeService, 'web');
  assert.deepEqual(web.labels, { tier: 'front', 'com.docker.compose.project': 'shop', 'com.docker.compose.service': 'web' });
  assert.deepEqual(web.networkMode, { kind: 'bridge' });
  assert.deepEqual(web.attachments, [{ network: 'shop_front', ipv4: '10.5.0.10', aliases: ['web', 'www'] }]);
  assert.deepEqual(web.publishedPorts, [
    { hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'TCP' },
    { hostIp: '127.0.0.1', hostPort: 8443, containerPort: 443, protocol: 'TCP' },
    { hostIp: '', containerPort: 9000, protocol: 'TCP' },
    { hostIp: '', hostPort: 53, containerPort: 53, protocol: 'UDP' },
    { hostIp: '', hostPort: 7000, containerPort: 7000, protocol: 'TCP' },
    { hostIp: '', hostPort: 7001, containerPort: 7001, protocol: 'TCP' },
  ]);
  assert.deepEqual(
    web.declaredPorts.map((d) => `${d.port}/${d.protocol}`).sort(),
    ['443/TCP', '53/UDP', '7000/TCP', '7001/TCP', '80/TCP', '81/TCP', '9000/TCP'].sort(),
  );
  const db = ep('db');
  assert.equal(db.containerName, 'pg');
  assert.deepEqual(db.attachments.map((a) => [a.network, a.ipv4]), [['shop_default', undefined]]);
  assert.deepEqual(db.declaredPorts, [{ port: 5432, protocol: 'TCP' }]);
  assert.deepEqual(db.publishedPorts, []);
  assert.deepEqual(ep('side').networkMode, { kind: 'container', of: 'shop/web' });
  assert.deepEqual(ep('sidecar2').networkMode, { kind: 'container', of: 'shop/db' });
  assert.deepEqual(ep('hostnet').networkMode, { kind: 'host' });
  assert.deepEqual(ep('nonet').networkMode, { kind: 'none' });
  assert.deepEqual(ep('nonet').attachments, []);

  const front = w.networks.find((n) => n.name === 'shop_front');
  assert.ok(front);
  assert.equal(front.icc, false);
  assert.deepEqual(front.subnets, ['10.5.0.0/24']);
  assert.deepEqual(front.gateways, ['10.5.0.1']);
  assert.equal(front.namespace, 'shop');
  const def = w.networks.find((n) => n.name === 'shop_default');
  assert.ok(def);
  assert.equal(def.icc, true);
  assert.deepEqual(def.subnets, []);
  assert.equal(w.origin, `compose:${join(dir, 'compose.yaml')}`);
});

test('composeToWorld: external networks keep their name and are marked external', async () => {
  const dir = writeProject({ 'compose.yaml': 'services:\n  a:\n    image: a\n    networks: [proxy]\nnetworks:\n  proxy:\n    external: true\n' }, 'world-ext');
  const w = composeToWorld(await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {}, projectName: 'p' }));
  assert.deepEqual(w.endpoints[0].attachments.map((a) => a.network), ['proxy']);
  const n = w.networks.find((x) => x.name === 'proxy');
  assert.equal(n?.external, true);
  assert.equal(n?.namespace, undefined);
});

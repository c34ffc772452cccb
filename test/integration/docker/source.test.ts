// The live source against a real engine: a network and two containers with labels and published ports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNetwork, requireDocker, runContainer, uniqueName } from '../../helpers/docker.js';
import { loadDockerWorld, parseDockerHost } from '../../../src/sources/docker/index.js';
import { UserError } from '../../../src/model/diagnostics.js';

test('loadDockerWorld maps a network and two containers exactly', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const project = uniqueName('moatsrc');
  // A /24 from 10.213.0.0/16 with a random third byte; retried when another test holds it.
  let net: { name: string; id: string } | undefined;
  let subnet = '';
  for (let i = 0; i < 5 && !net; i++) {
    subnet = `10.213.${Math.floor(Math.random() * 250) + 1}.0/24`;
    try {
      net = await createNetwork(docker, {
        name: `${project}_back`,
        subnet,
        internal: true,
        labels: { 'com.docker.compose.project': project, 'com.docker.compose.network': 'back' },
        options: { 'com.docker.network.bridge.enable_icc': 'false' },
      });
    } catch (err) {
      if (!/overlap|pool/i.test(String(err))) throw err;
    }
  }
  assert.ok(net, 'could not create a test network');
  const prefix = subnet.slice(0, subnet.lastIndexOf('.'));
  // Published ports need a network that is not internal: web is also on the default bridge (its first network).
  const web = await runContainer(docker, {
    name: `${project}-web-1`,
    networks: ['bridge', net.name],
    ipv4: { [net.name]: `${prefix}.10` },
    tcpPorts: [80, 443],
    publish: [{ hostIp: '127.0.0.1', containerPort: 80 }, { hostIp: '127.0.0.1', containerPort: 443 }],
    labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': 'web', 'security.group': 'web' },
  });
  const db = await runContainer(docker, {
    name: `${project}-loose`,
    networks: [net.name],
    ipv4: { [net.name]: `${prefix}.20` },
    tcpPorts: [5432],
    expose: ['53/udp'],
    labels: { 'com.docker.compose.project': project, tier: 'data' },
    start: false,
  });

  const world = await loadDockerWorld({ project });
  // The project's network, plus the default bridge its container is attached to.
  assert.deepEqual(world.networks.map((x) => x.name).sort(), ['bridge', net.name].sort());
  const n = world.networks.find((x) => x.name === net.name)!;
  assert.deepEqual(
    { name: n.name, id: n.id, driver: n.driver, subnets: n.subnets, internal: n.internal, icc: n.icc, enableIPv6: n.enableIPv6, namespace: n.namespace },
    { name: net.name, id: net.id, driver: 'bridge', subnets: [subnet], internal: true, icc: false, enableIPv6: false, namespace: project },
  );
  assert.equal(n.options['com.docker.network.bridge.enable_icc'], 'false');
  assert.equal(n.labels?.['com.docker.compose.network'], 'back');

  assert.deepEqual(world.endpoints.map((e) => e.name).sort(), [`${project}-loose`, 'web']);
  const w = world.endpoints.find((e) => e.id === web.id);
  assert.ok(w);
  assert.equal(w.namespace, project);
  assert.equal(w.name, 'web');
  assert.equal(w.composeService, 'web');
  assert.equal(w.containerName, `${project}-web-1`);
  assert.equal(w.labels['security.group'], 'web');
  assert.deepEqual(w.networkMode, { kind: 'bridge' });
  assert.deepEqual(w.attachments.map((a) => a.network), ['bridge', net.name]);
  assert.equal(w.attachments[1].ipv4, `${prefix}.10`);
  assert.equal(w.attachments[0].ipv4, web.ipv4.bridge);
  assert.match(w.attachments[0].ipv4 ?? '', /^\d+\.\d+\.\d+\.\d+$/);
  assert.deepEqual(w.declaredPorts, [
    { port: 80, protocol: 'TCP' },
    { port: 443, protocol: 'TCP' },
  ]);
  // Docker picked the host ports: they must be concrete numbers bound on 127.0.0.1 and match the engine's view.
  const live = await docker.getContainer(web.id).inspect();
  const expected = ['80/tcp', '443/tcp'].map((k) => ({
    hostIp: '127.0.0.1',
    hostPort: Number(live.NetworkSettings.Ports[k]![0].HostPort),
    containerPort: Number(k.split('/')[0]),
    protocol: 'TCP',
  }));
  assert.deepEqual(w.publishedPorts, expected);
  assert.ok(expected.every((p) => p.hostPort > 0));
  assert.equal(w.running, true);
  assert.equal(w.pid, web.pid);
  assert.ok(w.pid && w.pid > 0);
  assert.equal(w.image, 'moat-busybox:1');

  const d = world.endpoints.find((e) => e.id === db.id);
  assert.ok(d);
  assert.equal(d.namespace, project);
  assert.equal(d.name, `${project}-loose`);
  assert.equal(d.composeService, undefined);
  assert.equal(d.running, false);
  assert.equal(d.pid, undefined);
  assert.deepEqual(d.labels, { 'com.docker.compose.project': project, tier: 'data' });
  assert.deepEqual(d.declaredPorts, [
    { port: 53, protocol: 'UDP' },
    { port: 5432, protocol: 'TCP' },
  ]);
  assert.deepEqual(d.publishedPorts, []);

  assert.ok(world.namespaces.some((ns) => ns.name === project));
  assert.ok(world.host.addresses.includes(`${prefix}.1`), `host addresses ${world.host.addresses} lack the gateway`);
});

test('loadDockerWorld maps host, none and container network modes', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const project = uniqueName('moatmode');
  const labels = { 'com.docker.compose.project': project };
  const base = await runContainer(docker, { labels: { ...labels, 'com.docker.compose.service': 'base' } });
  await runContainer(docker, { labels: { ...labels, 'com.docker.compose.service': 'side' }, networkMode: `container:${base.id}` });
  await runContainer(docker, { labels: { ...labels, 'com.docker.compose.service': 'hosty' }, networkMode: 'host', start: false });
  await runContainer(docker, { labels: { ...labels, 'com.docker.compose.service': 'lonely' }, networkMode: 'none' });
  const world = await loadDockerWorld({ project });
  const by = (name: string) => world.endpoints.find((e) => e.name === name)!;
  assert.deepEqual(by('base').networkMode, { kind: 'bridge' });
  assert.equal(by('base').attachments[0].network, 'bridge');
  assert.deepEqual(by('side').networkMode, { kind: 'container', of: base.id });
  assert.deepEqual(by('side').attachments, []);
  assert.deepEqual(by('hosty').networkMode, { kind: 'host' });
  assert.deepEqual(by('lonely').networkMode, { kind: 'none' });
  assert.deepEqual(world.warnings, []);
});

test('an unreachable engine is a UserError with a fix', async () => {
  await assert.rejects(
    loadDockerWorld({ dockerHost: 'unix:///nonexistent/moat-test.sock' }),
    (err: unknown) => err instanceof UserError && err.diagnostics[0].code === 'docker.unreachable' && /--docker-host/.test(err.diagnostics[0].fix ?? ''),
  );
  assert.throws(() => parseDockerHost('ftp://x'), (err: unknown) => err instanceof UserError && err.diagnostics[0].code === 'docker.bad-host');
  assert.throws(() => parseDockerHost('tcp://host:70000'), UserError);
  assert.equal(parseDockerHost('tcp://127.0.0.1:2375').display, 'tcp://127.0.0.1:2375');
  assert.equal(parseDockerHost('/run/x.sock').display, 'unix:///run/x.sock');
});

test('loadDockerWorld maps dual-stack attachments', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const project = uniqueName('moatv6');
  let net: { name: string; id: string } | undefined;
  let v4 = '';
  let v6 = '';
  for (let i = 0; i < 5 && !net; i++) {
    const r = Math.floor(Math.random() * 250) + 1;
    v4 = `10.214.${r}.0/24`;
    v6 = `fd00:214:${r.toString(16)}::/64`;
    try {
      net = await createNetwork(docker, { name: `${project}_dual`, subnets: [v4, v6], labels: { 'com.docker.compose.project': project } });
    } catch (err) {
      if (!/overlap|pool/i.test(String(err))) throw err;
    }
  }
  assert.ok(net, 'could not create a dual-stack network');
  const c = await runContainer(docker, { networks: [net.name], labels: { 'com.docker.compose.project': project } });
  const world = await loadDockerWorld({ project });
  const n = world.networks.find((x) => x.name === net!.name)!;
  assert.equal(n.enableIPv6, true);
  assert.deepEqual(n.subnets, [v4, v6]);
  const e = world.endpoints.find((x) => x.id === c.id)!;
  assert.equal(e.attachments.length, 1);
  assert.equal(e.attachments[0].ipv4, c.ipv4[net.name]);
  assert.equal(e.attachments[0].ipv6, c.ipv6[net.name]);
  assert.ok(e.attachments[0].ipv6?.startsWith(v6.split('::')[0]), `ipv6 ${e.attachments[0].ipv6} in ${v6}`);
  assert.ok(n.gateways?.some((g) => g.includes(':')), `an IPv6 gateway among ${n.gateways}`);
});

// The live checks against the real dockerd: containers this test creates (not started) (labelled as one Compose
// project, so the audit sees only them), inspected through the Engine API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import { auditLive } from '../../../src/audit/live.js';
import { BUSYBOX_IMAGE } from '../../../src/demo/images.js';
import { cleanup, requireDocker, uniqueName } from '../../helpers/docker.js';

const IDLE = ['sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'];

async function create(docker: Docker, project: string, service: string, extra: { Config?: Partial<Docker.ContainerCreateOptions>; HostConfig?: Docker.HostConfig }) {
  const name = uniqueName(`moat-aud-${service}`);
  const c = await docker.createContainer({
    name,
    Image: BUSYBOX_IMAGE,
    Cmd: IDLE,
    StopTimeout: 1,
    Labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service },
    ...(extra.Config ?? {}),
    HostConfig: { NetworkMode: 'bridge', ...(extra.HostConfig ?? {}) },
  });
  cleanup.container(docker, c.id);
  // Left created, not started: the audit reads created containers too (what `up` is about to run), and a
  // privileged container cannot start in every test sandbox.
  return name;
}

test('live audit: privileged, socket, risky and publish-all ports, host network; a hardened container passes', async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const project = uniqueName('moataudit');
  const exposed = await create(docker, project, 'exposed', {
    Config: { ExposedPorts: { '5432/tcp': {} } },
    HostConfig: {
      Privileged: true,
      Binds: ['/var/run/docker.sock:/var/run/docker.sock:ro'],
      PortBindings: { '5432/tcp': [{ HostIp: '', HostPort: '' }] },
      CapAdd: ['NET_ADMIN'],
    },
  });
  const publishAll = await create(docker, project, 'publishall', {
    Config: { ExposedPorts: { '8080/tcp': {} }, User: '1000:1000' },
    HostConfig: { PublishAllPorts: true, ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges:true'] },
  });
  const hostNet = await create(docker, project, 'hostnet', {
    Config: { User: '1000' },
    HostConfig: { NetworkMode: 'host', ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  const hardened = await create(docker, project, 'hardened', {
    Config: { User: '1000:1000', ExposedPorts: { '8081/tcp': {} } },
    HostConfig: {
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      PortBindings: { '8081/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });

  await docker.getContainer(hardened).start(); // one running container among the created ones
  assert.equal((await docker.getContainer(hardened).inspect()).State.Running, true);

  const r = await auditLive({ project });
  const by = (name: string) => r.findings.filter((f) => f.service === name).map((f) => f.checkId).sort();
  assert.deepEqual(by(hardened), []);
  assert.deepEqual(by(exposed), ['cap-add-dangerous', 'docker-socket', 'no-new-privileges', 'no-read-only', 'port-high-risk', 'privileged', 'root-user']);
  assert.match(r.findings.find((f) => f.service === exposed && f.checkId === 'docker-socket')!.message, /read-only/);
  assert.match(r.findings.find((f) => f.service === exposed && f.checkId === 'port-high-risk')!.message, /PostgreSQL/);
  assert.deepEqual(by(publishAll), ['port-publish-all']);
  assert.deepEqual(by(hostNet), ['network-mode-host']);
  for (const f of r.findings) {
    assert.equal(f.source, 'live');
    assert.equal(f.pos, undefined, 'live findings have no file position');
  }
  // Daemon settings the engine reveals: the default bridge's icc and live-restore are reported as they are.
  const info = (await docker.info()) as { LiveRestoreEnabled?: boolean };
  const bridge = await docker.getNetwork('bridge').inspect();
  const iccOn = (bridge.Options?.['com.docker.network.bridge.enable_icc'] ?? 'true') !== 'false';
  assert.equal(r.findings.some((f) => f.checkId === 'daemon-icc'), iccOn);
  assert.equal(r.findings.some((f) => f.checkId === 'daemon-no-live-restore'), info.LiveRestoreEnabled !== true);
});

test('live audit: an engine that does not answer is a user error', async () => {
  await assert.rejects(() => auditLive({ dockerHost: 'unix:///nonexistent/moat-audit.sock' }), (e: unknown) => (e as Error).name === 'UserError');
});

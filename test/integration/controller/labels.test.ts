// The controller on security labels alone (no policy file), as the seed's Compose files use them: the
// database group takes the backend group only. A replica of the backend service joins the allowed peers
// without a full recompile (the label compiler keeps the policy set's version), a container of another
// group stays out, and the controller's metrics say which compile it did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireDocker, runContainer } from '../../helpers/docker.js';
import { createProjectNetwork, get, makeHarness, reachable, startController, stopController, waitExit, waitFor, waitReady } from './harness.js';

const labels = (project: string, service: string, extra: Record<string, string>) => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': service, ...extra });

async function compiles(h: ReturnType<typeof makeHarness>): Promise<Record<string, number>> {
  const r = await get(h, '/metrics');
  const out: Record<string, number> = {};
  for (const m of (r?.body ?? '').matchAll(/^moat_compiles_total\{mode="(\w+)"\} (\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

test('controller on security labels: the db takes only the backend group; a backend replica is a delta compile', { timeout: 180_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  // Resyncs every 3 s: one after events re-reads the whole world, which must stay a delta compile.
  const h = makeHarness('moatlbl', ['--drift-interval', '5s', '--resync-interval', '3s']);
  const net = await createProjectNetwork(docker, h.project);
  const db = await runContainer(docker, { name: `${h.project}-db`, networks: [net.name], tcpPorts: [80], labels: labels(h.project, 'db', { 'security.group': 'database', 'security.allow.inbound': 'backend', 'security.deny.outbound': 'internet' }) });
  const api = await runContainer(docker, { name: `${h.project}-api-1`, networks: [net.name], labels: labels(h.project, 'api', { 'security.group': 'backend', 'security.allow.outbound': 'database' }) });
  const web = await runContainer(docker, { name: `${h.project}-web`, networks: [net.name], labels: labels(h.project, 'web', { 'security.group': 'web' }) });
  const dbTarget = `${db.ipv4[net.name]}:80`;
  assert.ok((await reachable(web.pid, [dbTarget])).has(dbTarget), 'web reaches the db before moat runs');

  startController(h, []);
  await waitReady(h);
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'backend reaches the db');
  assert.equal((await reachable(web.pid, [dbTarget])).has(dbTarget), false, 'web does not');
  const before = await compiles(h);

  // A replica of the api service (same labels): allowed once enforced, by a delta compile.
  const api2 = await runContainer(docker, { name: `${h.project}-api-2`, networks: [net.name], labels: labels(h.project, 'api', { 'security.group': 'backend', 'security.allow.outbound': 'database' }) });
  await waitFor('the replica reaches the db', async () => (await reachable(api2.pid, [dbTarget], 300)).has(dbTarget), 20_000, 100);
  const after = await compiles(h);
  t.diagnostic(`compiles before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  assert.ok((after.delta ?? 0) > (before.delta ?? 0), 'the replica was compiled as a delta');
  assert.equal(after.full ?? 0, before.full ?? 0, 'no full recompile for a replica (nor for its network connect event)');

  // Another web container: still out.
  const web2 = await runContainer(docker, { name: `${h.project}-web-2`, networks: [net.name], labels: labels(h.project, 'web', { 'security.group': 'web' }) });
  await waitFor('web-2 enforced', async () => ((await get(h, '/status'))?.body ?? '').includes(web2.id) || undefined, 20_000, 100).catch(() => undefined);
  assert.equal((await reachable(web2.pid, [dbTarget])).has(dbTarget), false, 'the second web container does not reach the db');

  // Periodic resyncs after those events re-read every container and network: what reads back the
  // same keeps its object, so they are no full recompile either.
  await new Promise((r) => setTimeout(r, 7000));
  const later = await compiles(h);
  t.diagnostic(`compiles after two resync periods ${JSON.stringify(later)}`);
  assert.equal(later.full ?? 0, before.full ?? 0, 'a resync that found nothing new is no full recompile');

  stopController(h, 'SIGTERM');
  await waitExit(h);
});

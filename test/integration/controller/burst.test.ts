// 100 containers started at once while a probe loop hammers their (fixed) addresses from a container
// the policy does not allow: no connection may succeed, from before they exist to after they are all
// enforced; then the allowed peer reaches every one of them. Then SIGKILL of the controller in the
// middle of an apply: the kernel keeps a whole ruleset, and a restart converges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { requireDocker, runContainer, removeContainer } from '../../helpers/docker.js';
import { createProjectNetwork, dbPolicy, labelsFor, log, makeHarness, probeLoop, reachable, sleep, startController, status, stopController, waitExit, waitFor, writePolicy } from './harness.js';

const N = Number(process.env.MOAT_BURST ?? 100);

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

test(`controller: ${N} containers at once, no forbidden connection; SIGKILL mid-apply converges`, { timeout: 600_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const h = makeHarness('moatburst', ['--drift-interval', '2s', '--resync-interval', '20s']);
  writePolicy(h, dbPolicy(h.project));
  const net = await createProjectNetwork(docker, h.project);
  const api = await runContainer(docker, { name: `${h.project}-api`, networks: [net.name], labels: labelsFor(h.project, 'api', 'api') });
  const intruder = await runContainer(docker, { name: `${h.project}-intruder`, networks: [net.name], labels: labelsFor(h.project, 'intruder', 'other') });
  startController(h, ['--policy', h.policyFile]);
  await waitFor('controller ready', async () => (await status(h))?.ready, 60_000, 200);

  const ips = Array.from({ length: N }, (_, i) => `${net.prefix}.${20 + i}`);
  const targets = ips.map((ip) => `${ip}:80`);
  // The probe loop starts before the containers exist and runs through the whole burst.
  const probeMs = 150_000;
  const probe = probeLoop(intruder.pid, targets, probeMs, 200);
  const t0 = Date.now();
  const started: string[] = [];
  await pool(ips, 12, async (ip) => {
    const c = await runContainer(docker, { name: `${h.project}-db-${ip.split('.').pop()}`, networks: [net.name], ipv4: { [net.name]: ip }, tcpPorts: [80], labels: labelsFor(h.project, `db${ip.split('.').pop()}`, 'db') });
    started.push(c.id);
  });
  const burstMs = Date.now() - t0;
  const s = await waitFor(`all ${N} enforced`, async () => {
    const st = await status(h);
    const n = (st?.endpoints ?? []).filter((e: { enforced: boolean; name: string }) => e.enforced && /\/db\d+$/.test(e.name)).length;
    return n === N ? st : undefined;
  }, 60_000, 250);
  t.diagnostic(`${N} containers started in ${burstMs} ms; all enforced ${Date.now() - t0} ms after the burst began`);
  // Allowed traffic flows to every one of them.
  const ok = await waitFor('api reaches all', async () => { const r = await reachable(api.pid, targets, 1000); return r.size === N ? r : undefined; }, 30_000, 500);
  assert.equal(ok.size, N);
  probe.child.kill('SIGTERM');
  const result = await probe.done;
  assert.ok(result.tries > 2 * N, `the probe loop ran (${result.tries} tries)`);
  t.diagnostic(`probe loop: ${result.tries} tries, ${result.successes.length} got through`);
  assert.deepEqual(result.successes, [], 'no forbidden connection got through during the burst');
  assert.ok(s.ruleset.setElements >= N);

  // A second, bounded probe loop (the first was interrupted): still nothing gets through.
  const after = await probeLoop(intruder.pid, targets, 3000, 200).done;
  assert.ok(after.tries > N, `probe ran (${after.tries} tries)`);
  assert.deepEqual(after.successes, []);

  // SIGKILL in the middle of applies: remove and add containers, kill the controller while it works.
  const nft = new NftBackend({ table: h.table });
  const victims = started.slice(0, 10);
  const churn = (async () => {
    for (const id of victims) await removeContainer(docker, id);
  })();
  await waitFor('an apply in progress', () => /"trigger":"events"/.test(log(h).split('\n').slice(-20).join('\n')), 20_000, 5).catch(() => undefined);
  stopController(h, 'SIGKILL');
  await waitExit(h);
  await churn;
  // The kernel holds a whole ruleset: the table, its base chains, the fail-closed rules.
  const back = await nft.readBack();
  assert.equal(back.present, true);
  assert.ok(back.chains.egress.includes('moat:fail-closed-src'), JSON.stringify(back.chains.egress));
  const blocked = await probeLoop(intruder.pid, targets.slice(10), 1500, 200).done;
  assert.deepEqual(blocked.successes, [], 'nothing forbidden while the controller is dead');
  // New containers while it is dead are fail-closed, even for the allowed peer.
  const late = await runContainer(docker, { name: `${h.project}-late`, networks: [net.name], ipv4: { [net.name]: `${net.prefix}.200` }, tcpPorts: [80], labels: labelsFor(h.project, 'late', 'db') });
  const lateT = `${late.ipv4[net.name]}:80`;
  assert.equal((await reachable(api.pid, [lateT])).has(lateT), false, 'a container started while the controller is down is closed');
  assert.equal((await reachable(intruder.pid, [lateT])).has(lateT), false);
  // Restart: converges.
  startController(h, ['--policy', h.policyFile]);
  const s2 = await waitFor('ready and converged', async () => {
    const st = await status(h);
    if (!st?.ready) return undefined;
    const dbs = st.endpoints.filter((e: { name: string }) => /\/(db\d+|late)$/.test(e.name));
    return dbs.length === N - 10 + 1 && dbs.every((e: { enforced: boolean }) => e.enforced) ? st : undefined;
  }, 60_000, 250);
  assert.equal(s2.drift.lastCheck?.drifted ?? false, false);
  await waitFor('late container reachable by api', async () => (await reachable(api.pid, [lateT])).has(lateT), 10_000, 200);
  assert.equal((await reachable(intruder.pid, [lateT])).has(lateT), false);
  stopController(h, 'SIGTERM');
  await waitExit(h);
  await sleep(10);
});

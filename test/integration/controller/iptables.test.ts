// The controller with the iptables backend (hosts run with ufw or iptables tooling) against a real
// dockerd: enforcement follows containers, a flushed moat chain and a removed DOCKER-USER -> moat jump
// are restored by the drift check, and the rules stay after the controller is gone. Chain and ipset
// prefixes are unique per run; everything is removed afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IptablesBackend } from '../../../src/enforce/backends/iptables/backend.js';
import { run } from '../../../src/enforce/exec.js';
import { cleanup, requireDocker, runContainer } from '../../helpers/docker.js';
import { dbScene, labelsFor, log, makeHarness, reachable, sleep, startController, status, stopController, waitExit, waitFor, waitReady } from './harness.js';

test('controller, iptables backend: follows containers, restores a flushed chain and its jump, rules stay', { timeout: 240_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  if ((await run('ipset', ['version'])).code !== 0) return t.skip('ipset is not installed');
  const tag = randomBytes(3).toString('hex');
  const chainPrefix = `MI${tag.toUpperCase()}`;
  const setPrefix = `mi${tag}`;
  const h = makeHarness('moatipt', ['--backend', 'iptables', '--chain-prefix', chainPrefix, '--set-prefix', setPrefix, '--drift-interval', '1s', '--resync-interval', '30s']);
  const ipt = new IptablesBackend({ chainPrefix, setPrefix });
  cleanup.add(`iptables ${chainPrefix}`, () => ipt.remove().catch(() => undefined));
  const { net, api, intruder, dbTarget } = await dbScene(docker, h);
  assert.ok((await reachable(intruder.pid, [dbTarget])).has(dbTarget), 'intruder reaches db before moat runs');

  startController(h, ['--policy', h.policyFile]);
  const s0 = await waitReady(h);
  assert.equal(s0.backend, 'iptables');
  assert.equal(s0.endpoints.filter((e: { enforced: boolean }) => e.enforced).length, 3, JSON.stringify(s0.endpoints));
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder is blocked');
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'api gets through');
  // Steady state: drift checks every second find nothing to repair (the reference is what was applied).
  await sleep(3000);
  const quiet = await status(h);
  assert.equal(quiet?.drift?.repairs, 0, `no repair without a change: ${JSON.stringify(quiet?.drift)}`);
  const save = (await run('iptables-save', ['-t', 'filter'])).stdout;
  assert.match(save, new RegExp(`^-A DOCKER-USER -j ${chainPrefix}$`, 'm'), 'moat chain jumped from DOCKER-USER');

  // A new container: enforced, its allowed traffic flows, the intruder stays out.
  const db2 = await runContainer(docker, { name: `${h.project}-db2`, networks: [net.name], tcpPorts: [80], labels: labelsFor(h.project, 'db2', 'db') });
  const db2Target = `${db2.ipv4[net.name]}:80`;
  await waitFor('api reaches the new db', async () => (await reachable(api.pid, [db2Target], 300)).has(db2Target), 15_000, 100);
  assert.equal((await reachable(intruder.pid, [db2Target])).has(db2Target), false);

  // moat's main chain flushed behind its back: restored by the drift check.
  assert.equal((await run('iptables', ['-w', '5', '-F', chainPrefix])).code, 0);
  await waitFor('flushed chain restored', async () => { const s = await status(h); return s && s.drift?.repairs >= 1 && s.drift.lastCheck?.drifted === false; }, 15_000, 100).catch(async (e) => {
    t.diagnostic(JSON.stringify((await status(h))?.drift));
    t.diagnostic(log(h).slice(-3000));
    throw e;
  });
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked again');

  // The DOCKER-USER -> moat jump removed: put back.
  assert.equal((await run('iptables', ['-w', '5', '-D', 'DOCKER-USER', '-j', chainPrefix])).code, 0);
  await waitFor('jump restored', async () => new RegExp(`^-A DOCKER-USER -j ${chainPrefix}$`, 'm').test((await run('iptables-save', ['-t', 'filter'])).stdout), 15_000, 100);
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked with the jump back');
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'api still allowed');

  // Gone controller, rules stay.
  stopController(h, 'SIGTERM');
  await waitExit(h);
  assert.match((await run('iptables-save', ['-t', 'filter'])).stdout, new RegExp(`^:${chainPrefix} `, 'm'));
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'still blocked with the controller gone');
  await ipt.remove();
  assert.doesNotMatch((await run('iptables-save', ['-t', 'filter'])).stdout, new RegExp(chainPrefix));
});

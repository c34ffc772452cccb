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

test('controller, iptables backend: follows containers, restores a flushed chain, tampered ipset members, a rule edited in place and its jump; rules stay', { timeout: 240_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  if ((await run('ipset', ['version'])).code !== 0) return t.skip('ipset is not installed');
  const tag = randomBytes(3).toString('hex');
  const chainPrefix = `MI${tag.toUpperCase()}`;
  const setPrefix = `mi${tag}`;
  const h = makeHarness('moatipt', ['--backend', 'iptables', '--chain-prefix', chainPrefix, '--set-prefix', setPrefix, '--drift-interval', '1s', '--resync-interval', '30s']);
  const ipt = new IptablesBackend({ chainPrefix, setPrefix });
  // Clean-ups run newest first: stop the controller before removing its chains and ipsets, or a repair
  // it has under way (a failing test leaves it running) could put some back.
  cleanup.add(`iptables ${chainPrefix}`, async () => {
    stopController(h, 'SIGKILL');
    await waitExit(h).catch(() => undefined);
    await ipt.remove().catch(() => undefined);
  });
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
  // With iptables-nft and no nf_tables commit since, a check reads only the ipsets.
  t.diagnostic(`steady-state drift check: ${JSON.stringify(quiet?.drift?.lastCheck)}`);
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

  // The intruder's address slipped into the ipset that lets api reach the db (`ipset add`): the
  // members' digest changes, the drift check gives the set its members back.
  const apiIp = api.ipv4[net.name];
  const intruderIp = intruder.ipv4[net.name];
  const sets = [...(await ipt.ipsetMembers())].filter(([, m]) => m.includes(apiIp) && !m.includes(intruderIp)).sort((a, b) => a[1].length - b[1].length);
  assert.ok(sets.length > 0, 'an ipset holds api but not the intruder');
  const [allowSet] = sets[0];
  const repairsBefore = (await status(h))?.drift?.repairs ?? 0;
  assert.equal((await run('ipset', ['add', allowSet, intruderIp])).code, 0);
  await waitFor('ipset members restored', async () => {
    const m = (await ipt.ipsetMembers()).get(allowSet);
    return m && !m.includes(intruderIp) && ((await status(h))?.drift?.repairs ?? 0) > repairsBefore;
  }, 15_000, 100).catch(async (e) => {
    t.diagnostic(JSON.stringify((await status(h))?.drift));
    throw e;
  });
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked once the set is repaired');
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'api still allowed');

  // A DROP rule turned into ACCEPT in place, its comment kept (`iptables -R`): caught by the rules'
  // digest, and rewritten.
  const saved = (await run('iptables-save', ['-t', 'filter'])).stdout.split('\n');
  const chainOf = (l: string) => /^-A (\S+) /.exec(l)?.[1] ?? '';
  const drops = saved.filter((l) => l.startsWith(`-A ${chainPrefix}`) && / -j DROP$/.test(l));
  const dropLine = drops.find((l) => l.includes('--comment')) ?? drops[0];
  assert.ok(dropLine, `a DROP rule in moat's chains:\n${saved.filter((l) => l.includes(chainPrefix)).join('\n')}`);
  const chain = chainOf(dropLine);
  const index = saved.filter((l) => chainOf(l) === chain).indexOf(dropLine) + 1;
  const spec = dropLine.replace(/^-A \S+ /, '').replace(/-j DROP$/, '-j ACCEPT');
  const repairsMid = (await status(h))?.drift?.repairs ?? 0;
  // iptables-save quotes words with spaces in double quotes: split it back into arguments.
  const args = [...spec.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]));
  const replaced = await run('iptables', ['-w', '5', '-R', chain, String(index), ...args]);
  assert.equal(replaced.code, 0, `iptables -R ${chain} ${index} ${spec}: ${replaced.stderr}`);
  await waitFor('edited rule rewritten', async () => {
    const now = (await run('iptables-save', ['-t', 'filter'])).stdout;
    return now.includes(dropLine) && ((await status(h))?.drift?.repairs ?? 0) > repairsMid;
  }, 15_000, 100).catch(async (e) => {
    t.diagnostic(JSON.stringify((await status(h))?.drift));
    t.diagnostic(`edited: ${dropLine}\nnow:\n${(await run('iptables-save', ['-t', 'filter'])).stdout.split('\n').filter((l) => chainOf(l) === chain).join('\n')}`);
    throw e;
  });
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked after the rewrite');

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

// The controller against a real dockerd: enforcement follows containers, `nft flush table` behind its
// back is restored within one drift check, an invalid policy edit keeps the previous policy (logs,
// metrics, status), and a restart with the broken file still enforces the last good policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { run } from '../../../src/enforce/exec.js';
import { loadApplied } from '../../../src/enforce/state.js';
import { requireDocker, runContainer } from '../../helpers/docker.js';
import { dbPolicy, dbScene, get, labelsFor, log, makeHarness, reachable, sleep, startController, status, stopController, waitExit, waitFor, waitReady, writePolicy } from './harness.js';

test('controller: follows containers, repairs a flushed table, keeps the last good policy', { timeout: 240_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const h = makeHarness('moatctl', ['--drift-interval', '1s', '--resync-interval', '30s']);
  const { net, api, intruder, dbTarget } = await dbScene(docker, h);

  // Without moat the intruder gets in (so the assertions below can fail).
  assert.ok((await reachable(intruder.pid, [dbTarget])).has(dbTarget), 'intruder reaches db before moat runs');

  startController(h, ['--policy', h.policyFile]);
  const s0 = await waitReady(h);
  assert.equal(s0.policy.valid, true);
  assert.equal(s0.endpoints.filter((e: { enforced: boolean }) => e.enforced).length, 3, JSON.stringify(s0.endpoints));
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder is blocked');
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'api gets through');
  // Steady state: drift checks every second find nothing to repair.
  await sleep(2500);
  assert.equal((await status(h))?.drift?.repairs, 0, 'no repair without a change');

  // A new container appears: enforced within a second, its allowed traffic flows.
  const db2 = await runContainer(docker, { name: `${h.project}-db2`, networks: [net.name], tcpPorts: [80], labels: labelsFor(h.project, 'db2', 'db') });
  const db2Target = `${db2.ipv4[net.name]}:80`;
  await waitFor('api reaches the new db', async () => (await reachable(api.pid, [db2Target], 300)).has(db2Target), 10_000, 50);
  assert.equal((await reachable(intruder.pid, [db2Target])).has(db2Target), false);

  // Someone flushes moat's table: restored within one drift check.
  const nft = new NftBackend({ table: h.table });
  const r = await run('nft', ['flush', 'table', 'inet', h.table]);
  assert.equal(r.code, 0, r.stderr);
  const flushedAt = Date.now();
  await waitFor('drift repaired', async () => { const s = await status(h); return s && s.drift?.repairs >= 1 && s.drift.lastCheck?.drifted === false; }, 10_000, 100);
  const repairMs = Date.now() - flushedAt;
  t.diagnostic(`flush repaired after ${repairMs} ms`);
  assert.ok((await nft.readBack()).chains.egress.length > 0, 'egress chain has its rules again');
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked again');
  const metrics = (await get(h, '/metrics'))!.body;
  assert.match(metrics, /moat_drift_repairs_total\{kind="ruleset"\} [1-9]/);
  // A rule edited in place, its comment kept (the summary of comments alone would not tell): the
  // isolating drop of db's ingress chain turned into an accept. Restored at the next drift check.
  const listed = await run('nft', ['-a', 'list', 'table', 'inet', h.table]);
  let chain = '';
  let edit: { chain: string; handle: string; comment: string } | undefined;
  for (const line of listed.stdout.split('\n')) {
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) chain = c[1];
    const m = /drop comment "(isolated-by:[^"]*)" # handle (\d+)/.exec(line);
    if (m && chain.startsWith('in_') && !edit) edit = { chain, handle: m[2], comment: m[1] };
  }
  assert.ok(edit, `an isolating drop rule in an ingress chain:\n${listed.stdout}`);
  const e = edit!;
  const repairsBefore = (await status(h))!.drift.repairs;
  const rep = await run('nft', ['replace', 'rule', 'inet', h.table, e.chain, 'handle', e.handle, 'accept', 'comment', `"${e.comment}"`]);
  assert.equal(rep.code, 0, rep.stderr);
  await waitFor('in-place edit repaired', async () => { const s = await status(h); return s && s.drift?.repairs > repairsBefore && s.drift.lastCheck?.drifted === false; }, 10_000, 100);
  assert.match(log(h), /edited in place/);
  assert.doesNotMatch((await run('nft', ['list', 'chain', 'inet', h.table, e.chain])).stdout, new RegExp(`accept comment "${e.comment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked after the in-place edit is repaired');

  // The table deleted outright: also restored.
  assert.equal((await run('nft', ['delete', 'table', 'inet', h.table])).code, 0);
  await waitFor('table back', () => nft.exists(), 10_000, 100);

  // Invalid policy edit: rejected, previous policy stays.
  writePolicy(h, `${dbPolicy(h.project)}    bogus: [\n`);
  const bad = await waitFor('policy marked invalid', async () => { const s = await status(h); return s && s.policy.valid === false ? s : undefined; }, 10_000, 100);
  assert.ok(bad.policy.errors.length >= 1);
  assert.match(bad.policy.errors.join('\n'), /p\.yaml:\d+:\d+/);
  assert.match((await get(h, '/metrics'))!.body, /moat_policy_valid 0/);
  assert.match(JSON.parse((await get(h, '/healthz'))!.body).detail.policy.errors.join('\n'), /p\.yaml/);
  assert.match(log(h), /policy reload rejected: the previous policy stays in force/);
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'still blocked with the broken file');
  assert.equal((await reachable(api.pid, [dbTarget])).has(dbTarget), true, 'still allowed with the broken file');

  // Restart with the broken file on disk: the last good policy comes from the state database.
  stopController(h, 'SIGTERM');
  await waitExit(h);
  // Its whole-table replace (at start) left a record in the state directory for `moat rollback`,
  // written off the event path (saveApplied), and it holds the plan the kernel got.
  const rec = loadApplied(h.stateDir, 'nft');
  assert.equal(rec?.target, h.table, 'a record of the applied table');
  assert.ok(rec!.plan.chains.some((c) => c.name === 'ingress' && c.hook), 'the record holds the plan');
  startController(h, ['--policy', h.policyFile]);
  const s2 = await waitFor('ready after restart', async () => { const s = await status(h); return s?.ready ? s : undefined; }, 60_000, 200);
  assert.equal(s2.policy.valid, false);
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'blocked after restart with a broken file');
  if (!(await reachable(api.pid, [dbTarget])).has(dbTarget)) {
    t.diagnostic(JSON.stringify(s2, null, 1).slice(0, 6000));
    t.diagnostic((await run('nft', ['list', 'table', 'inet', h.table])).stdout);
    t.diagnostic(log(h).slice(-5000));
    assert.fail('api blocked after restart');
  }

  // A valid edit (SIGHUP too): accepted; now nothing may reach db.
  writePolicy(h, dbPolicy(h.project).replace('      - from: [api]\n        ports: [80]\n', '      - from: [api]\n        ports: [81]\n'));
  process.kill(h.child!.pid!, 'SIGHUP');
  await waitFor('policy valid again', async () => (await status(h))?.policy?.valid === true, 10_000, 100);
  await waitFor('api now blocked', async () => !(await reachable(api.pid, [dbTarget])).has(dbTarget), 10_000, 100);
  // The edit reached the kernel as one change batch (new chains and sets, element changes) over
  // netlink, not as a whole-table replace, and the kernel holds the new plan.
  const applied = log(h).split('\n').filter((l) => l.includes('"ruleset applied"') && l.includes('policy reload')).map((l) => JSON.parse(l) as { mode: string; compile: string; compileReason?: string });
  assert.equal(applied.at(-1)?.mode, 'incremental', log(h).slice(-3000));
  // And it was compiled as a policy delta: only the containers the edited policy selects.
  assert.equal(applied.at(-1)?.compile, 'policy-delta', `${applied.at(-1)?.compileReason ?? ''}\n${log(h).slice(-3000)}`);
  // Drift checks every second find the kernel as the plan says: nothing to repair.
  const repairsAfterEdit = (await status(h))!.drift.repairs;
  await sleep(2500);
  const s3 = (await status(h))!;
  assert.equal(s3.drift.repairs, repairsAfterEdit, JSON.stringify(s3.drift));
  assert.equal(s3.drift.lastCheck?.drifted, false);
  // A chain the change batch added is guarded against edits in place too (its digest was taken by
  // the first drift check after the change): its isolating drop turned into an accept is repaired.
  const now = await run('nft', ['-a', 'list', 'table', 'inet', h.table]);
  let fresh: { chain: string; handle: string; comment: string } | undefined;
  chain = '';
  for (const line of now.stdout.split('\n')) {
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) chain = c[1];
    const m = /drop comment "(isolated-by:[^"]*)" # handle (\d+)/.exec(line);
    if (m && chain.startsWith('in_') && !listed.stdout.includes(`chain ${chain} {`) && !fresh) fresh = { chain, handle: m[2], comment: m[1] };
  }
  assert.ok(fresh, `a new ingress chain with an isolating drop:\n${now.stdout}`);
  const edited = (log(h).match(/edited in place/g) ?? []).length;
  assert.equal((await run('nft', ['replace', 'rule', 'inet', h.table, fresh!.chain, 'handle', fresh!.handle, 'accept', 'comment', `"${fresh!.comment}"`])).code, 0);
  await waitFor('edit of a new chain repaired', async () => { const s = await status(h); return s && s.drift?.repairs > repairsAfterEdit && s.drift.lastCheck?.drifted === false; }, 10_000, 100);
  assert.ok((log(h).match(/edited in place/g) ?? []).length > edited, 'found as an edit in place');
  assert.equal((await reachable(intruder.pid, [dbTarget])).has(dbTarget), false, 'intruder blocked after the repair');
  stopController(h, 'SIGTERM');
  await waitExit(h);
  // The rules stay in the kernel after the controller is gone.
  assert.equal(await nft.exists(), true);
});

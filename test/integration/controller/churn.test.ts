// Container churn with address reuse under load: one static address is handed, round after round,
// alternately to a container of group A (role=api, allowed to reach the db on TCP 80) and to one of
// group B (role=other, forbidden). Each container is removed and its successor started on the SAME
// address at once, so Docker reuses the address while the controller is still processing the removal.
// A probe loop from the container on that address tries the db the whole time it lives: a B
// container never gets through (not even with the rules its A predecessor left behind), and an A
// container gets through within a bounded time after it starts. A second probe loop from an intruder
// hammers the db all along (the "load"), and must never get through either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { removeContainer, requireDocker, runContainer } from '../../helpers/docker.js';
import { createProjectNetwork, dbPolicy, labelsFor, makeHarness, probeLoop, reachable, sleep, startController, status, stopController, waitExit, waitFor, writePolicy } from './harness.js';

const ROUNDS = Number(process.env.MOAT_CHURN_ROUNDS ?? 10);
/** How long the probe loop runs from each container. */
const PROBE_MS = 1500;
/** An allowed container must get through within this time after `start` returned. */
const ALLOWED_WITHIN_MS = 1200;

/**
 * The churning containers' command: from its very first instant (before any probe from outside could
 * be started), PID 1 tries the db over and over (bounded: 400 tries, each with a 1 s timeout) and
 * prints `try N` and, when the connection is made, `ok N`.
 */
function selfProbe(ip: string): string[] {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new Error(`bad address ${ip}`);
  const script = 'trap "exit 0" TERM INT; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo "try $i"; if nc -w 1 "$1" 80 </dev/null >/dev/null 2>&1; then echo "ok $i"; fi; usleep 20000; done; while :; do sleep 3600 & wait $!; done';
  return ['sh', '-c', script, 'moat-selfprobe', ip];
}

test(`controller: ${ROUNDS} rounds of container churn on one reused address, no forbidden connection`, { timeout: 180_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const h = makeHarness('moatchurn', ['--drift-interval', '2s', '--resync-interval', '20s']);
  writePolicy(h, dbPolicy(h.project));
  const net = await createProjectNetwork(docker, h.project);
  const db = await runContainer(docker, { name: `${h.project}-db`, networks: [net.name], ipv4: { [net.name]: `${net.prefix}.10` }, tcpPorts: [80], labels: labelsFor(h.project, 'db', 'db') });
  const intruder = await runContainer(docker, { name: `${h.project}-intruder`, networks: [net.name], labels: labelsFor(h.project, 'intruder', 'other') });
  const dbTarget = `${db.ipv4[net.name]}:80`;
  const reused = `${net.prefix}.77`;

  let seq = 0;
  const start = (group: 'A' | 'B') =>
    runContainer(docker, {
      name: `${h.project}-${group.toLowerCase()}${seq++}`,
      networks: [net.name],
      ipv4: { [net.name]: reused },
      labels: group === 'A' ? labelsFor(h.project, 'api', 'api') : labelsFor(h.project, 'other', 'other'),
      cmd: selfProbe(db.ipv4[net.name]),
    });
  /** What the container's own probe (its PID 1, from its first instant) printed. */
  const selfProbeResults = async (id: string) => {
    const out = (await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    const text = out.toString('latin1');
    return { tries: (text.match(/try \d+/g) ?? []).length, ok: (text.match(/ok \d+/g) ?? []).length };
  };

  // Without moat a B container gets in (so the assertions below can fail).
  const pre = await start('B');
  assert.equal(pre.ipv4[net.name], reused);
  assert.ok((await reachable(pre.pid, [dbTarget], 1000)).has(dbTarget), 'a group B container reaches the db before moat runs');
  await waitFor('the self-probe works without moat', async () => (await selfProbeResults(pre.id)).ok > 0, 10_000, 200);

  startController(h, ['--policy', h.policyFile]);
  await waitFor('controller ready', async () => (await status(h))?.ready, 60_000, 200);
  assert.equal((await reachable(pre.pid, [dbTarget])).has(dbTarget), false, 'group B blocked once moat runs');

  // The load: the intruder hammers the db for the whole churn.
  const load = probeLoop(intruder.pid, [dbTarget], 120_000, 200);
  let current = pre;
  const rounds: { group: string; tries: number; firstMs?: number; forbidden: number; selfTries?: number; selfOk?: number }[] = [];
  const t0 = Date.now();
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate A and B, starting with A (the first container, `pre`, is B): B follows A half of the
    // time, the case where the old rules could leak to the new owner of the address.
    const group: 'A' | 'B' = i % 2 === 0 ? 'A' : 'B';
    if (i > 0) {
      const self = await selfProbeResults(current.id);
      const prev = rounds[rounds.length - 1];
      prev.selfTries = self.tries;
      prev.selfOk = self.ok;
      assert.ok(self.tries >= 1, `round ${i - 1}: the container's own probe ran`);
      if (prev.group === 'B') assert.equal(self.ok, 0, `round ${i - 1}: the forbidden container's own probe got through ${self.ok} times`);
      else assert.ok(self.ok > 0, `round ${i - 1}: the allowed container's own probe never got through`);
    }
    await removeContainer(docker, current.id);
    current = await start(group);
    const startedAt = Date.now();
    assert.equal(current.ipv4[net.name], reused, 'Docker gave the same address again');
    const r = await probeLoop(current.pid, [dbTarget], PROBE_MS, 150).done;
    const first = r.successes[0]?.at;
    rounds.push({ group, tries: r.tries, firstMs: first === undefined ? undefined : first - startedAt, forbidden: group === 'B' ? r.successes.length : 0 });
    assert.ok(r.tries >= 3, `round ${i}: the probe loop ran (${r.tries} tries)`);
    if (group === 'B') {
      assert.deepEqual(r.successes, [], `round ${i}: a forbidden container on the reused address got through`);
    } else {
      assert.ok(first !== undefined, `round ${i}: the allowed container never got through in ${PROBE_MS} ms`);
      assert.ok(first - startedAt <= ALLOWED_WITHIN_MS, `round ${i}: the allowed container got through only after ${first - startedAt} ms`);
    }
  }
  {
    const self = await selfProbeResults(current.id);
    const prev = rounds[rounds.length - 1];
    prev.selfTries = self.tries;
    prev.selfOk = self.ok;
    assert.ok(self.tries >= 1, 'last round: the container\'s own probe ran');
    if (prev.group === 'B') assert.equal(self.ok, 0, `last round: the forbidden container's own probe got through ${self.ok} times`);
    else assert.ok(self.ok > 0, 'last round: the allowed container\'s own probe never got through');
  }
  t.diagnostic(`${ROUNDS} rounds in ${Date.now() - t0} ms: ${JSON.stringify(rounds)}`);

  load.child.kill('SIGTERM');
  const l = await load.done;
  assert.ok(l.tries > ROUNDS, `the load probe ran (${l.tries} tries)`);
  assert.deepEqual(l.successes, [], 'the intruder never got through during the churn');

  // Converged: exactly one endpoint holds the reused address (the last container), enforced; the
  // removed ones left nothing behind.
  const last = current;
  const s = await waitFor('converged', async () => {
    const st = await status(h);
    const holders = (st?.endpoints ?? []).filter((e: { addresses: string[] }) => e.addresses.includes(reused));
    return st?.ready && holders.length === 1 && holders[0].id === last.id && holders[0].enforced ? st : undefined;
  }, 20_000, 200);
  assert.equal(s.lastError, undefined, `no controller error: ${JSON.stringify(s.lastError)}`);
  await removeContainer(docker, current.id);
  stopController(h, 'SIGTERM');
  await waitExit(h);
  await sleep(10);
});

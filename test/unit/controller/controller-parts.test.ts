import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NdjsonSplitter } from '../../../src/controller/ndjson.js';
import { Backoff, Debouncer, parseDuration, sleep } from '../../../src/controller/timing.js';
import { isWatched } from '../../../src/controller/events.js';
import { describeDrift, hasDockerUserJump } from '../../../src/controller/drift.js';
import { subtractCidrs, withFailClosedPools } from '../../../src/controller/pools.js';
import { policyOfComment } from '../../../src/controller/metrics.js';
import { StateStore } from '../../../src/controller/store.js';
import { parseCidr } from '../../../src/model/address.js';
import type { RulesetPlan } from '../../../src/enforce/plan-model.js';
import { planSummary } from '../../../src/enforce/summary.js';

test('NDJSON: objects split across chunks, several per chunk, multi-byte characters cut in half', () => {
  const got: unknown[] = [];
  const bad: string[] = [];
  const s = new NdjsonSplitter((v) => got.push(v), (l) => bad.push(l));
  const text = '{"a":1}\n{"b":"é€"}\n\n{"c":[1,2]}\nnot json\n{"d":';
  const bytes = Buffer.from(text, 'utf8');
  // Feed one byte at a time: every boundary, including inside a UTF-8 sequence.
  for (let i = 0; i < bytes.length; i++) s.push(bytes.subarray(i, i + 1));
  assert.deepEqual(got, [{ a: 1 }, { b: 'é€' }, { c: [1, 2] }]);
  assert.deepEqual(bad, ['not json']);
  s.push('4}');
  s.end();
  assert.deepEqual(got.at(-1), { d: 4 });
});

test('NDJSON: an over-long line is dropped and the stream recovers at the next newline', () => {
  const got: unknown[] = [];
  const bad: string[] = [];
  const s = new NdjsonSplitter((v) => got.push(v), (l) => bad.push(l), 64);
  s.push(`{"x":"${'y'.repeat(100)}`);
  s.push(`${'y'.repeat(10)}"}\n{"ok":true}\n`);
  assert.deepEqual(got, [{ ok: true }]);
  assert.equal(bad.length, 1);
});

test('backoff grows to its ceiling, jitter stays within bounds, reset starts over', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const j = new Backoff({ initialMs: 1000, jitter: 0.5 }, () => 1);
  assert.equal(j.next(), 500);
});

test('debouncer: a burst fires once after the quiet time; a steady stream still fires by max wait', async () => {
  let fired = 0;
  const d = new Debouncer(() => fired++, 30, 1000);
  for (let i = 0; i < 10; i++) d.trigger();
  assert.equal(fired, 0);
  await sleep(80);
  assert.equal(fired, 1);
  let fired2 = 0;
  const d2 = new Debouncer(() => fired2++, 40, 100);
  const start = Date.now();
  while (Date.now() - start < 250) {
    d2.trigger();
    await sleep(10);
  }
  d2.cancel();
  assert.ok(fired2 >= 2, `fired ${fired2} times during a 250 ms stream with max wait 100 ms`);
});

test('parseDuration', () => {
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('15'), 15);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('soon'), undefined);
  assert.equal(parseDuration('-1s'), undefined);
});

test('watched events', () => {
  const ev = (Type: string, Action: string) => ({ Type, Action, Actor: { ID: 'x', Attributes: {} }, time: 0, timeNano: 0 });
  assert.equal(isWatched(ev('container', 'start')), true);
  assert.equal(isWatched(ev('container', 'destroy')), true);
  assert.equal(isWatched(ev('network', 'connect')), true);
  assert.equal(isWatched(ev('container', 'exec_start: sh')), false);
  assert.equal(isWatched(ev('image', 'pull')), false);
});

function plan(): RulesetPlan {
  return {
    sets: [{ name: 'known4', family: 4, purpose: 'k', elements: [{ value: '10.1.0.2', owner: 'ctr:a' }] }],
    maps: [{ name: 'ingress4', family: 4, elements: [{ key: '10.1.0.2', chain: 'in_x', owner: 'ctr:a' }] }],
    chains: [
      { name: 'egress', hook: 'egress', owners: [], rules: [{ matches: [], verdict: { kind: 'accept' }, comment: 'moat:established' }] },
      { name: 'in_x', owners: ['a'], rules: [{ matches: [], verdict: { kind: 'drop' }, comment: 'isolated-by:p' }] },
    ],
    nflogGroup: 100,
    logPrefixes: {},
    managedNetworks: ['n'],
    warnings: [],
  };
}

test('drift: identical summaries are no drift; a flushed chain, a missing element, a missing table are', () => {
  const want = planSummary(plan());
  assert.equal(describeDrift(want, planSummary(plan())).drifted, false);
  const flushed = planSummary(plan());
  flushed.chains.egress = [];
  const d1 = describeDrift(want, flushed);
  assert.equal(d1.drifted, true);
  assert.match(d1.findings.join('\n'), /chain egress: rules differ \(0 in the kernel, 1 expected\)/);
  const noElem = planSummary(plan());
  noElem.sets.known4 = [];
  noElem.maps.ingress4 = {};
  const d2 = describeDrift(want, noElem);
  assert.match(d2.findings.join('\n'), /set known4: 0 unexpected, 1 missing/);
  assert.match(d2.findings.join('\n'), /map ingress4: 0 unexpected, 1 missing/);
  const d3 = describeDrift(want, { present: false, sets: {}, maps: {}, chains: {} });
  assert.deepEqual(d3.findings, ["moat's ruleset is missing from the kernel"]);
});

test('DOCKER-USER jump read from iptables-save', () => {
  const base = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n';
  assert.equal(hasDockerUserJump(`${base}-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\nCOMMIT\n`), true);
  assert.equal(hasDockerUserJump(`${base}-A DOCKER-USER -j RETURN\nCOMMIT\n`), false);
  assert.equal(hasDockerUserJump('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n'), undefined);
});

test('CIDR subtraction and fail-closed pools carve out unmanaged subnets', () => {
  const c = (t: string) => parseCidr(t)!;
  assert.deepEqual(subtractCidrs(c('10.0.0.0/24'), [c('10.0.0.0/25')]).map((x) => x.text), ['10.0.0.128/25']);
  assert.deepEqual(subtractCidrs(c('10.0.0.0/30'), [c('10.0.0.1/32')]).map((x) => x.text), ['10.0.0.0/32', '10.0.0.2/31']);
  assert.deepEqual(subtractCidrs(c('10.0.0.0/24'), [c('10.0.0.0/16')]), []);
  assert.deepEqual(subtractCidrs(c('10.0.0.0/24'), [c('fd00::/64')]).map((x) => x.text), ['10.0.0.0/24']);
  const p = plan();
  p.sets.push({ name: 'managed4', family: 4, purpose: 'm', elements: [{ value: '172.18.0.0/16', owner: 'net:a' }] });
  const out = withFailClosedPools(p, ['172.16.0.0/12'], ['172.20.0.0/16']);
  const managed = out.sets.find((s) => s.name === 'managed4')!.elements.map((e) => e.value);
  assert.ok(!managed.some((v) => v.startsWith('172.20.')), managed.join(' '));
  assert.ok(managed.includes('172.16.0.0/14'), managed.join(' '));
  // Disjoint: 172.18.0.0/16 lies inside a pool piece and is not listed twice.
  assert.ok(!managed.includes('172.18.0.0/16'));
  assert.equal(withFailClosedPools(p, [], []), p);
});

test('drop counters map to policies', () => {
  assert.equal(policyOfComment('policy:label:shop/db'), 'label:shop/db');
  assert.equal(policyOfComment('isolated-by:moat:a.yaml#db'), 'moat:a.yaml#db');
  assert.equal(policyOfComment('moat:fail-closed-src'), 'moat:fail-closed-src');
});

test('state store: last good policy, applied plan, history bounded and newest first, read-only open', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-store-'));
  try {
    const s = new StateStore(dir);
    assert.equal(s.lastGoodPolicy(), undefined);
    s.saveApplied({ at: 't1', backend: 'nft', target: 'moat', plan: plan() });
    s.saveApplied({ at: 't2', backend: 'nft', target: 'moat', plan: plan() });
    assert.equal(s.lastApplied()?.at, 't2');
    for (let i = 0; i < 5; i++) s.recordApply({ at: `a${i}`, reason: 'events', mode: 'incremental', ok: i !== 3, durationMs: i, endpoints: 1, error: i === 3 ? 'boom' : undefined });
    const h = s.applies(3);
    assert.deepEqual(h.map((x) => x.at), ['a4', 'a3', 'a2']);
    assert.equal(h[1].ok, false);
    assert.equal(h[1].error, 'boom');
    s.recordEvent('drift', 'table flushed');
    s.saveStatus({ ready: true });
    s.close();
    const ro = new StateStore(dir, true);
    assert.equal(ro.events(5, 'drift')[0].message, 'table flushed');
    assert.deepEqual(ro.status(), { ready: true });
    ro.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('drift: a rule edited in place changes its chain digest; counters do not', async () => {
  const { summaryFromNftJson } = await import('../../../src/enforce/backends/nft/backend.js');
  const { editedChains } = await import('../../../src/controller/drift.js');
  const rule = (verdict: string, packets: number) => ({
    rule: { family: 'inet', table: 't', chain: 'in_x', handle: 7, comment: 'isolated-by:p', expr: [{ counter: { packets, bytes: packets * 60 } }, { [verdict]: null }] },
  });
  const base = summaryFromNftJson([{ chain: { name: 'in_x' } }, rule('drop', 0)]);
  const counted = summaryFromNftJson([{ chain: { name: 'in_x' } }, rule('drop', 42)]);
  const edited = summaryFromNftJson([{ chain: { name: 'in_x' } }, rule('accept', 0)]);
  assert.deepEqual(edited.chains, base.chains, 'same comments: the comment summary cannot tell');
  assert.deepEqual(editedChains(base.ruleDigest, counted), []);
  assert.deepEqual(editedChains(base.ruleDigest, edited), ['in_x']);
  assert.deepEqual(editedChains(undefined, edited), []);
});

test('violations: a database published on all interfaces while its group admits no outside source', async () => {
  const { findViolations } = await import('../../../src/controller/violations.js');
  const { threeTierPolicies, threeTierWorld } = await import('../../fixtures/enforce/three-tier.js');
  const policies = threeTierPolicies();
  const world = threeTierWorld();
  const managed = world.networks.map((n) => n.name);
  // As the fixture is: nginx publishes 80 and its policy admits any source there; nothing to report.
  assert.deepEqual(findViolations(world, policies, managed).map((v) => v.kind), []);
  const mysql = world.endpoints.find((e) => e.name === 'mysql')!;
  mysql.publishedPorts = [{ hostIp: '0.0.0.0', hostPort: 3306, containerPort: 3306, protocol: 'TCP' }];
  // On the fixture's internal backend network Docker publishes nothing: no violation yet.
  assert.deepEqual(findViolations(world, policies, managed), []);
  world.networks.find((n) => n.name === mysql.attachments[0].network)!.internal = false;
  const v = findViolations(world, policies, managed);
  assert.deepEqual(v.map((x) => [x.kind, x.containerId]), [['published-forbidden', mysql.id]]);
  assert.match(v[0].message, /0\.0\.0\.0:3306/);
  // Bound to loopback only: not exposed, nothing to report.
  mysql.publishedPorts = [{ hostIp: '127.0.0.1', hostPort: 3306, containerPort: 3306, protocol: 'TCP' }];
  assert.deepEqual(findViolations(world, policies, managed), []);
  // On a network moat does not manage, an isolated container is reported.
  assert.deepEqual([...new Set(findViolations(world, policies, managed.filter((n) => n !== 'shop_backend')).map((x) => x.kind))], ['unmanaged-network']);
});

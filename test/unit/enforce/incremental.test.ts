import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyIncremental, applyPlan, compilePlan, incrementalScript } from '../../../src/enforce/index.js';
import { portSetName, renderReplace } from '../../../src/enforce/backends/nft/render.js';
import type { PlanRule, RulesetPlan } from '../../../src/enforce/plan-model.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import type { World } from '../../../src/model/world.js';
import { canUseNetns, createNetns, deleteNetns, inNetns } from './netns.js';

const namespaces: string[] = [];
const dirs: string[] = [];
after(() => {
  namespaces.forEach(deleteNetns);
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

/** Two throw-away namespaces (incremental in the first, full replace in the second) and a state directory. */
function twoNamespaces(): { ns1: string; ns2: string; stateDir: string } {
  const ns1 = createNetns();
  const ns2 = createNetns();
  namespaces.push(ns1, ns2);
  const stateDir = mkdtempSync(join(tmpdir(), 'moat-inc-'));
  dirs.push(stateDir);
  return { ns1, ns2, stateDir };
}

/** The three-tier world plus a second api-server (group backend) on the back network. */
function withSecondApi(): World {
  const w = threeTierWorld();
  const api = w.endpoints[1];
  w.endpoints.push({ ...api, id: 'shop/api-2', name: 'api-2', containerName: 'shop-api-2', attachments: [{ network: 'shop_backend', ipv4: '172.28.2.21' }] });
  return w;
}

test('a container joining a group changes elements only: set and chain names stay', () => {
  const p = threeTierPolicies();
  const a = compilePlan(threeTierWorld(), p);
  const b = compilePlan(withSecondApi(), p);
  assert.deepEqual(b.sets.map((s) => s.name).sort(), a.sets.map((s) => s.name).sort());
  assert.deepEqual(b.chains.map((c) => c.name), a.chains.map((c) => c.name));
  const d = incrementalScript(a, b, { table: 'moat' });
  assert.ok(d.incremental);
  assert.doesNotMatch(d.script, /table|chain/);
  // The new address: in both maps (which hold every known address), and in the backend group's peer
  // sets (mysql's and redis's ingress).
  assert.match(d.script, /add element inet moat ingress4 \{ 172\.28\.2\.21 comment "ctr:shop\/api-2" : goto in_/);
  assert.match(d.script, /add element inet moat egress4 \{ 172\.28\.2\.21 comment "ctr:shop\/api-2" : goto eg_/);
  assert.doesNotMatch(d.script, /known/);
  assert.equal(d.changes.chainsAdded.length + d.changes.chainsRemoved.length, 0);
  assert.ok(d.changes.elementsAdded >= 1, d.script);
  assert.equal(d.changes.mapElementsAdded, 2, d.script);
  // And back: deletions by element.
  const back = incrementalScript(b, a, { table: 'moat' });
  assert.ok(back.incremental);
  assert.match(back.script, /delete element inet moat ingress4 \{ 172\.28\.2\.21 \}/);
  assert.match(back.script, /delete element inet moat egress4 \{ 172\.28\.2\.21 \}/);
});

test('a plan recorded by an earlier moat (peer sets with intervals) is replaced whole, not patched', () => {
  const p = threeTierPolicies();
  const now = compilePlan(threeTierWorld(), p);
  const earlier = { ...now, sets: now.sets.map((s) => ({ ...s, exact: undefined })) };
  const d = incrementalScript(earlier, compilePlan(withSecondApi(), p));
  assert.equal(d.incremental, false);
  assert.match(d.incremental ? '' : d.reason, /set p[0-9a-f]+_4 changed type/);
});

test('a plan recorded before the maps held every known address (known sets, fail-closed ahead of the maps) is replaced whole', () => {
  const p = threeTierPolicies();
  const now = compilePlan(threeTierWorld(), p);
  // That plan's shape: known4 beside the maps, and each base chain's fail-closed rule ahead of them.
  const known4 = { name: 'known4', family: 4 as const, purpose: 'addresses of known endpoints', exact: true, size: 64, elements: now.maps.find((m) => m.name === 'ingress4')!.elements.map((e) => ({ value: e.key, owner: e.owner })) };
  const chains = now.chains.map((c) => {
    if (!c.hook) return c;
    const fc = c.rules.filter((r) => r.comment.startsWith('moat:fail-closed-')).map((r) => ({ ...r, matches: [{ kind: 'set' as const, dir: r.matches[0].kind === 'set' ? r.matches[0].dir : ('src' as const), family: 4 as const, set: 'known4', negate: true }, ...r.matches] }));
    const rest = c.rules.filter((r) => !r.comment.startsWith('moat:fail-closed-'));
    return { ...c, rules: [...rest.slice(0, 2), ...fc, ...rest.slice(2)] };
  });
  const earlier = { ...now, sets: [...now.sets, known4], chains };
  const d = incrementalScript(earlier, compilePlan(withSecondApi(), p));
  assert.equal(d.incremental, false);
  assert.match(d.incremental ? '' : d.reason, /chain egress changed/);
});

test('a changed base chain or NFLOG group is not incremental', () => {
  const p = threeTierPolicies();
  const a = compilePlan(threeTierWorld(), p);
  const b = compilePlan(threeTierWorld(), p, { nflogGroup: 7 });
  const d = incrementalScript(a, b);
  assert.equal(d.incremental, false);
});

test('incremental apply in a throw-away netns gives the same kernel ruleset as a full replace', { skip: !canUseNetns() && 'needs root and nft' }, async () => {
  const { ns1, ns2, stateDir } = twoNamespaces();
  const opts = { netns: ns1, stateDir, table: 'moatinc' };
  const p = threeTierPolicies();
  const a = compilePlan(threeTierWorld(), p);
  await applyPlan(a, { ...opts, check: false }); // the whole-table replace without the separate nft -c

  // Add a container, then replace mysql by another container on the same address (address reuse).
  const b = compilePlan(withSecondApi(), p);
  const r1 = await applyIncremental(undefined, b, opts); // previous from the state directory
  assert.equal(r1.mode, 'incremental', r1.reason);
  const reused = withSecondApi();
  reused.endpoints[2] = { ...reused.endpoints[2], id: 'shop/mysql-new', labels: { 'security.group': 'cache' }, composeService: 'redis' };
  const c = compilePlan(reused, p);
  const r2 = await applyIncremental(b, c, opts);
  assert.equal(r2.mode, 'incremental', r2.reason);
  assert.match(r2.script, /delete element inet moatinc ingress4 \{ 172\.28\.2\.30 \}/);
  assert.match(r2.script, /add element inet moatinc ingress4 \{ 172\.28\.2\.30 comment "ctr:shop\/mysql-new" : goto in_/);

  const full = inNetns(ns2, 'nft', ['-f', '-'], renderReplace(c, { table: 'moatinc' }));
  assert.equal(full.status, 0, full.stderr);
  const norm = (t: string) => t.split('\n').map((l) => l.trim()).filter(Boolean).sort().join('\n');
  const got = inNetns(ns1, 'nft', ['list', 'table', 'inet', 'moatinc']).stdout;
  const want = inNetns(ns2, 'nft', ['list', 'table', 'inet', 'moatinc']).stdout;
  assert.ok(got.includes('ctr:shop/mysql-new'));
  assert.equal(norm(got), norm(want));

  // The kernel does not hold the claimed previous plan (an element to delete is absent): the
  // transaction fails as a whole and a full replace follows.
  const ghost = withSecondApi();
  ghost.endpoints.push({ ...ghost.endpoints[4], id: 'shop/ghost', attachments: [{ network: 'shop_backend', ipv4: '172.28.2.99' }] });
  const r3 = await applyIncremental(compilePlan(ghost, p), a, opts);
  assert.equal(r3.mode, 'full');
  assert.match(r3.reason ?? '', /incremental transaction failed/);
  const full2 = inNetns(ns2, 'nft', ['-f', '-'], renderReplace(a, { table: 'moatinc' }));
  assert.equal(full2.status, 0, full2.stderr);
  assert.equal(norm(inNetns(ns1, 'nft', ['list', 'table', 'inet', 'moatinc']).stdout), norm(inNetns(ns2, 'nft', ['list', 'table', 'inet', 'moatinc']).stdout));
});

test('a new chain with a port list brings its shared port set along, and the last chain using it takes it away', { skip: !canUseNetns() && 'needs root and nft' }, async () => {
  const { ns1, ns2, stateDir } = twoNamespaces();
  const opts = { netns: ns1, stateDir, table: 'moatincp' };
  const a = compilePlan(threeTierWorld(), threeTierPolicies());
  await applyPlan(a, { ...opts, check: false });
  const rule: PlanRule = { matches: [{ kind: 'l4', proto: 'tcp', ports: [[8080, 8080], [8443, 8443]] }], verdict: { kind: 'return' }, comment: 'policy:test' };
  const b: RulesetPlan = { ...a, chains: [...a.chains, { name: 'in_porttest', owners: ['x'], rules: [rule] }] };
  const name = portSetName([[8080, 8080], [8443, 8443]]);
  const d = incrementalScript(a, b, { table: 'moatincp' });
  assert.ok(d.incremental);
  const lines = d.script.split('\n');
  const setAt = lines.findIndex((l) => l.startsWith(`add set inet moatincp ${name} `));
  assert.ok(setAt >= 0 && setAt < lines.findIndex((l) => l.startsWith('add chain')), d.script);
  const norm = (t: string) => t.split('\n').map((l) => l.trim()).filter(Boolean).sort().join('\n');
  for (const [from, to] of [[a, b], [b, a]] as const) {
    const r = await applyIncremental(from, to, opts);
    assert.equal(r.mode, 'incremental', r.reason);
    assert.equal(inNetns(ns2, 'nft', ['-f', '-'], renderReplace(to, { table: 'moatincp' })).status, 0);
    const got = inNetns(ns1, 'nft', ['list', 'table', 'inet', 'moatincp']).stdout;
    assert.equal(norm(got), norm(inNetns(ns2, 'nft', ['list', 'table', 'inet', 'moatincp']).stdout));
    assert.equal(got.includes(name), to === b, got);
  }
});

// LabelCompiler (the controller's cached label compile) against compileLabels: the same policy set for
// every world, and a version that changes exactly when that set changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileLabels, LabelCompiler } from '../../../src/policy/labels/index.js';
import type { Endpoint, World } from '../../../src/model/world.js';
import { syntheticWorld } from '../../../bench/enforce-world.js';

const LABELS: Record<string, Record<string, string>> = {
  web: { 'security.group': 'web', 'security.allow.inbound': '80,443', 'security.allow.outbound': 'backend' },
  api: { 'security.group': 'backend', 'security.allow.inbound': 'web', 'security.allow.outbound': 'database,cache' },
  db: { 'security.group': 'database', 'security.allow.inbound': 'backend', 'security.deny.outbound': 'internet' },
  cache: { 'security.group': 'cache', 'security.allow.inbound': 'backend' },
};

function labelledWorld(n: number): World {
  const w = syntheticWorld(n);
  for (const e of w.endpoints) e.labels = { ...e.labels, ...LABELS[e.labels.tier] };
  return w;
}

function check(lc: LabelCompiler, w: World): number {
  const got = lc.compile(w);
  const want = compileLabels(w);
  assert.deepEqual(got.policySet, want.policySet);
  assert.deepEqual(got.diagnostics, want.diagnostics);
  return got.version;
}

test('the cached compile equals compileLabels; its version moves exactly when the policy set does', () => {
  const lc = new LabelCompiler();
  const w = labelledWorld(60);
  const v1 = check(lc, w);
  assert.equal(check(lc, { ...w, endpoints: [...w.endpoints] }), v1, 'same containers in a new list: same version');

  // A replica of a service (same name and labels): the policy set is the same.
  const first = w.endpoints[1];
  const replica: Endpoint = { ...first, id: `${first.id}-2`, attachments: [] };
  const w2 = { ...w, endpoints: [...w.endpoints, replica] };
  assert.equal(check(lc, w2), v1, 'a replica adds no policy');
  const before = JSON.stringify(compileLabels(w).policySet);

  // A container of a new service: a new policy.
  const other: Endpoint = { ...first, id: 'syn0/other', name: 'other', composeService: 'other' };
  const v3 = check(lc, { ...w2, endpoints: [...w2.endpoints, other] });
  assert.notEqual(v3, v1);

  // Back to the first world: the set is as before, under a new version (versions only move forward).
  const v4 = check(lc, w);
  assert.equal(JSON.stringify(lc.compile(w).policySet), before);
  assert.notEqual(v4, v3);

  // The same container with changed labels (a new object, as after a re-create): a new version.
  const changed: Endpoint = { ...w.endpoints[0], labels: { ...w.endpoints[0].labels, 'security.allow.inbound': '8080' } };
  const v5 = check(lc, { ...w, endpoints: [changed, ...w.endpoints.slice(1)] });
  assert.notEqual(v5, v4);
});

test('a failing container (unknown security key) whose deny rules change gets a new version', () => {
  const lc = new LabelCompiler();
  const w = labelledWorld(8);
  const bad = (deny: string): Endpoint => ({ ...w.endpoints[2], labels: { ...w.endpoints[2].labels, 'security.allow.inboud': 'x', 'security.deny.outbound': deny } });
  const v1 = check(lc, { ...w, endpoints: [...w.endpoints.slice(0, 2), bad('internet'), ...w.endpoints.slice(3)] });
  const v2 = check(lc, { ...w, endpoints: [...w.endpoints.slice(0, 2), bad('host'), ...w.endpoints.slice(3)] });
  assert.notEqual(v2, v1, 'the subject is the same (by name); the rules differ');
});

test('replicas share a policy: a later replica going changes nothing; the first going reorders the set (a new version)', () => {
  const lc = new LabelCompiler();
  const w = labelledWorld(8);
  const a = w.endpoints[1];
  const b: Endpoint = { ...a, id: `${a.id}-b`, containerName: 'b', attachments: [] };
  const v1 = check(lc, { ...w, endpoints: [...w.endpoints, b] });
  assert.equal(check(lc, w), v1, 'b leaves: the set is the same, in the same order');
  const v3 = check(lc, { ...w, endpoints: [...w.endpoints.filter((e) => e !== a), b] });
  assert.notEqual(v3, v1, 'a leaves, b (listed last) now defines the policy: the order of the set changes');
});

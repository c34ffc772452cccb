// `apply` sends only the difference when the kernel provably holds the last recorded plan (its
// nf_tables generation is the one recorded right after that commit), and the whole table otherwise;
// `plan` then compares with that plan instead of reading the table back, with the same result.
// Each apply runs in a child process inside a throw-away network namespace (the netlink socket and
// the generation belong to the process's namespace), as `moat apply` would there.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderReplace } from '../../../src/enforce/backends/nft/render.js';
import { compilePlan } from '../../../src/enforce/index.js';
import { loadApplied } from '../../../src/enforce/state.js';
import type { PolicySet } from '../../../src/model/ir.js';
import type { World } from '../../../src/model/world.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { byBlock, canUseNetns, createNetns, deleteNetns, inNetns } from './netns.js';

const CHILD = fileURLToPath(new URL('../../fixtures/enforce/apply-child.ts', import.meta.url));
const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((f) => f()));

interface ChildResult {
  diff?: { unchanged: boolean; chainsAdded: string[]; chainsRemoved: string[] };
  mode?: string;
  via?: string;
  reason?: string;
  changes?: { chainsAdded: string[]; chainsRemoved: string[] };
}

test('apply: the whole table first, then nothing when nothing changed, then only the difference, and the whole table again once someone else committed', { skip: !canUseNetns() && 'needs root, ip netns and nft' }, () => {
  const ns = createNetns('moatap');
  const ref = createNetns('moatap');
  const dir = mkdtempSync(join(tmpdir(), 'moat-apply-'));
  cleanups.push(() => deleteNetns(ns), () => deleteNetns(ref), () => rmSync(dir, { recursive: true, force: true }));
  const options = { table: 'tap', stateDir: join(dir, 'state') };
  const world = threeTierWorld();
  const base = threeTierPolicies();
  // The policy change: mysql takes the backend group on 3306 only (new chains, element changes).
  const changed: PolicySet = structuredClone(base);
  const mysql = changed.policies.find((p) => p.name === 'shop/mysql')!;
  mysql.ingress[0].ports = [{ protocol: 'TCP', port: 3306 }];

  const applyIn = (policies: PolicySet, w: World = world, extra: object = {}, planOnly = false): ChildResult => {
    const input = join(dir, 'input.json');
    writeFileSync(input, JSON.stringify({ world: w, policies, options: { ...options, ...extra }, plan: planOnly }));
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CHILD, input], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
  };
  const sameAsWholeLoad = (policies: PolicySet) => {
    assert.equal(inNetns(ref, 'nft', ['-f', '-'], renderReplace(compilePlan(world, policies), { table: 'tap' })).status, 0);
    assert.equal(byBlock(inNetns(ns, 'nft', ['list', 'table', 'inet', 'tap']).stdout), byBlock(inNetns(ref, 'nft', ['list', 'table', 'inet', 'tap']).stdout));
  };

  const first = applyIn(base);
  assert.equal(first.mode, 'full');
  assert.ok(loadApplied(options.stateDir, 'nft')?.generation, 'the record carries the generation after its commit');
  assert.equal(applyIn(base).mode, 'unchanged');
  // `plan` against the recorded plan (no read-back) says what reading the table back says.
  const planHeld = applyIn(changed, world, {}, true).diff!;
  const planRead = applyIn(changed, world, { incremental: false }, true).diff!;
  assert.equal(planHeld.unchanged, false);
  assert.ok(planHeld.chainsAdded.length > 0, JSON.stringify(planHeld));
  assert.deepEqual(planHeld, planRead);
  assert.equal(applyIn(base, world, {}, true).diff!.unchanged, true);

  const second = applyIn(changed);
  assert.equal(second.mode, 'incremental', second.reason);
  assert.equal(second.via, 'netlink');
  assert.ok(second.changes!.chainsAdded.length > 0 && second.changes!.chainsRemoved.length > 0, JSON.stringify(second.changes));
  sameAsWholeLoad(changed);

  // Another commit in the namespace (any table): the kernel may no longer hold the recorded plan.
  assert.equal(inNetns(ns, 'nft', ['add', 'table', 'inet', 'someoneelse']).status, 0);
  const third = applyIn(base);
  assert.equal(third.mode, 'full');
  sameAsWholeLoad(base);
  // `--full` replaces the whole table even when the difference would do.
  assert.equal(applyIn(changed, world, { incremental: false }).mode, 'full');
  sameAsWholeLoad(changed);
});

// The iptables backend in a process of its own network namespace (as a controller runs it): after its
// own restores it remembers what the kernel holds and the nf_tables generation, and the next apply
// starts from that instead of reading both families with iptables-save, but only while nobody else
// has committed anything: a jump deleted or a rule added behind its back is read and put right.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compilePlan } from '../../../src/enforce/index.js';
import { iptablesFlavour } from '../../../src/enforce/doctor.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { canUseNetns, createNetns, deleteNetns, hasTool, inNetns } from './netns.js';

const CHILD = fileURLToPath(new URL('./iptables-cache-child.ts', import.meta.url));
const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));
const kernelSkip = (!canUseNetns() || !hasTool('iptables-restore', ['--version']) || !hasTool('ipset', ['version'])) && 'needs root, iptables and ipset';

interface Out { saves?: number; v4?: string[]; v6?: string[]; error?: string; ran?: string; status?: number }

function runSteps(ns: string, steps: unknown[]): Out[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CHILD], { input: JSON.stringify({ steps }), encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Out);
}

test('iptables: an apply after moat\'s own restores reads no iptables-save while nobody else committed; a change behind its back is read and repaired', { skip: kernelSkip }, () => {
  const nft = iptablesFlavour(spawnSync('iptables', ['-V'], { encoding: 'utf8' }).stdout.trim()) === 'nft' && iptablesFlavour(spawnSync('ip6tables', ['-V'], { encoding: 'utf8' }).stdout.trim()) === 'nft';
  const ns = createNetns();
  namespaces.push(ns);
  const world = threeTierWorld();
  const a = compilePlan(world, threeTierPolicies());
  const more = { ...world, endpoints: [...world.endpoints, { ...world.endpoints[2], id: 'shop/mysql-2', name: 'mysql-2', containerName: 'shop-mysql-2', attachments: [{ network: 'shop_backend', ipv4: '172.28.2.31' }] }] };
  const b = compilePlan(more, threeTierPolicies());
  const out = runSteps(ns, [
    { run: ['iptables', '-N', 'DOCKER-USER'] },
    { run: ['iptables', '-A', 'FORWARD', '-j', 'DOCKER-USER'] },
    { plan: a },
    { plan: b },
    { plan: a },
    { run: ['iptables', '-D', 'DOCKER-USER', '-j', 'MOAT'] },
    { plan: a },
    { run: ['iptables', '-I', 'MOAT', '1', '-j', 'RETURN'] },
    { plan: a },
  ]);
  const applies = out.filter((o) => o.ran === undefined);
  for (const o of out) assert.equal(o.error, undefined, o.error);
  for (const o of out.filter((x) => x.ran !== undefined)) assert.equal(o.status, 0, o.ran);
  // Each apply leaves what a fresh apply of its plan leaves (checked against the first, equal plan).
  const fresh = (p: 'a' | 'b') => (p === 'a' ? applies[0] : applies[1]);
  const [first, toB, backToA, afterJumpGone, afterRuleAdded] = applies;
  assert.ok(first.v4!.some((l) => l === '-A DOCKER-USER -j MOAT'), 'the jump into MOAT');
  assert.ok(toB.v4!.some((l) => /172\.28\.2\.31/.test(l)), 'the new container is in the dispatch');
  assert.deepEqual(backToA.v4, fresh('a').v4);
  assert.deepEqual(afterJumpGone.v4, fresh('a').v4, 'the deleted jump is back');
  assert.deepEqual(afterRuleAdded.v4, fresh('a').v4, 'the rule added to MOAT is gone');
  assert.deepEqual(afterRuleAdded.v6, fresh('a').v6);
  // The reads: the first apply reads both families; on nf_tables iptables, the next two start from
  // what the last restore left (nobody else committed), and the two after a change behind moat's back read again.
  assert.equal(first.saves, 2);
  if (nft) {
    assert.equal(toB.saves, 0);
    assert.equal(backToA.saves, 0);
  } else assert.equal(toB.saves, 2, 'legacy iptables: no generation to trust');
  assert.equal(afterJumpGone.saves, 2);
  assert.equal(afterRuleAdded.saves, 2);
  assert.doesNotMatch(inNetns(ns, 'iptables-save', []).stdout, /MOAT/, 'removed at the end');
});

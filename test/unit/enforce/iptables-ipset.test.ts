// The iptables backend's ipsets are named by their content and reused while they exist, so members
// changed behind moat's back (`ipset add`, `ipset del`) must be noticed and put right: read-back
// digests cover every ipset's members and every moat rule's whole text, and apply swaps a fresh copy
// into a set whose members differ from its definition.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ipsetDefs, ipsetMember, parseIpsetSave, renderIpsetRepairs } from '../../../src/enforce/backends/iptables/render.js';
import { IptablesBackend } from '../../../src/enforce/backends/iptables/backend.js';
import { compilePlan } from '../../../src/enforce/index.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { canUseNetns, createNetns, deleteNetns, hasTool, inNetns } from './netns.js';

const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));
const kernelSkip = (!canUseNetns() || !hasTool('iptables-restore', ['--version']) || !hasTool('ipset', ['version'])) && 'needs root, iptables and ipset';

test('ipset members: hosts lose /32 and /128 as ipset prints them; prefixes keep theirs', () => {
  assert.equal(ipsetMember('10.0.0.1/32'), '10.0.0.1');
  assert.equal(ipsetMember('10.0.0.0/8'), '10.0.0.0/8');
  assert.equal(ipsetMember('FD00::1/128'), 'fd00::1');
  assert.equal(ipsetMember('2001:db8::/32'), '2001:db8::/32', 'an IPv6 /32 is a prefix');
});

test('ipset save is parsed for moat sets only', () => {
  const text = ['create moat-aaa hash:net family inet hashsize 1024 maxelem 65536 comment', 'add moat-aaa 10.0.0.1 comment "ctr:x"', 'add moat-aaa 10.1.0.0/16 comment "policy:p"', 'create other hash:ip family inet', 'add other 10.9.9.9', 'create moat-bbb hash:net family inet6 comment'].join('\n');
  const m = parseIpsetSave(text, 'moat-');
  assert.deepEqual([...m.keys()], ['moat-aaa', 'moat-bbb']);
  assert.deepEqual(m.get('moat-aaa'), ['10.0.0.1', '10.1.0.0/16']);
  assert.deepEqual(m.get('moat-bbb'), []);
});

test('repairs: only sets whose members differ get a fresh copy swapped in', () => {
  const plan = compilePlan(threeTierWorld(), threeTierPolicies());
  const defs = ipsetDefs(plan);
  const withMembers = defs.filter((d) => d.entries.length > 0);
  assert.ok(withMembers.length >= 2);
  const [a, b] = withMembers;
  const members = new Map(defs.map((d) => [d.name, d.entries.map((e) => e.value)]));
  assert.deepEqual(renderIpsetRepairs(defs, members), { script: '', repaired: [] }, 'nothing to repair');
  members.set(a.name, [...members.get(a.name)!, '192.0.2.66']); // someone's `ipset add`
  members.set(b.name, members.get(b.name)!.slice(1)); // someone's `ipset del`
  const r = renderIpsetRepairs(defs, members);
  assert.deepEqual(r.repaired.sort(), [a.name, b.name].sort());
  assert.match(r.script, new RegExp(`^swap ${a.name}-r ${a.name}$`, 'm'));
  assert.match(r.script, new RegExp(`^destroy ${a.name}-r$`, 'm'));
  assert.doesNotMatch(r.script, /192\.0\.2\.66/);
  assert.equal(renderIpsetRepairs(defs, new Map()).script, '', 'sets that do not exist are created elsewhere');
});

test('in the kernel: a member added behind moat\'s back changes the read-back digest, and apply takes it out', { skip: kernelSkip }, async () => {
  const ns = createNetns();
  namespaces.push(ns);
  const plan = compilePlan(threeTierWorld(), threeTierPolicies());
  const be = new IptablesBackend({ netns: ns });
  await be.apply(plan);
  const ref = (await be.readBack()).ruleDigest!;
  assert.ok(Object.keys(ref).some((k) => k.startsWith('ipset ')) && Object.keys(ref).some((k) => k.startsWith('iptables ')), JSON.stringify(ref));
  const [target] = ipsetDefs(plan).filter((d) => d.family === 4 && d.entries.length > 0);
  assert.equal(inNetns(ns, 'ipset', ['add', target.name, '192.0.2.66']).status, 0);
  const tampered = (await be.readBack()).ruleDigest!;
  assert.notEqual(tampered[`ipset ${target.name}`], ref[`ipset ${target.name}`]);
  await be.apply(plan);
  assert.ok(!(await be.ipsetMembers()).get(target.name)!.includes('192.0.2.66'), 'the added member is gone');
  assert.deepEqual((await be.readBack()).ruleDigest, ref, 'the kernel is as moat applied it');
  assert.ok(![...(await be.ipsetMembers()).keys()].some((n) => n.endsWith('-r')), 'no copy left behind');
  await be.remove();
});

test('in the kernel: sets are destroyed in one ipset restore; one a rule still uses is skipped and the others still go', { skip: kernelSkip }, async () => {
  const ns = createNetns();
  namespaces.push(ns);
  const be = new IptablesBackend({ netns: ns });
  const names = ['moat-d1', 'moat-d2', 'moat-d3', 'moat-d4', 'moat-d5'];
  for (const n of names) assert.equal(inNetns(ns, 'ipset', ['create', n, 'hash:ip']).status, 0);
  // Someone's rules use two of them (another moat instance's, say): the kernel refuses those.
  for (const n of ['moat-d2', 'moat-d4']) assert.equal(inNetns(ns, 'iptables', ['-A', 'INPUT', '-m', 'set', '--match-set', n, 'src', '-j', 'ACCEPT']).status, 0);
  await be.destroySets(names);
  assert.deepEqual(inNetns(ns, 'ipset', ['list', '-n']).stdout.split('\n').filter(Boolean).sort(), ['moat-d2', 'moat-d4']);
  await be.destroySets([]);
  inNetns(ns, 'iptables', ['-F', 'INPUT']);
  await be.destroySets(['moat-d2', 'moat-d4', 'moat-gone']);
  assert.deepEqual(inNetns(ns, 'ipset', ['list', '-n']).stdout.split('\n').filter(Boolean), [], 'a set that does not exist is skipped like a refused one');
});

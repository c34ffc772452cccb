import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeTableBatch } from '../../../src/enforce/backends/nft/netlink-table.js';
import { incrementalScript } from '../../../src/enforce/incremental.js';
import { BatchTooLarge } from '../../../src/enforce/backends/nft/netlink.js';
import { renderReplace } from '../../../src/enforce/backends/nft/render.js';
import { compilePlan } from '../../../src/enforce/index.js';
import { CompileSession } from '../../../src/enforce/compile/session.js';
import type { RulesetPlan } from '../../../src/enforce/plan-model.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { replicaEndpoint, syntheticPolicies, syntheticWorld } from '../../../bench/enforce-world.js';
import { byBlock, canUseNetns, createNetns, deleteNetns, inNetns } from './netns.js';

const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));
const CHILD = fileURLToPath(new URL('./netlink-table-child.ts', import.meta.url));
const kernel = canUseNetns() ? false : 'needs root, ip netns and nft';

/** Runs the steps over netlink from a process inside `ns`; one line per step. */
function viaNetlink(ns: string, table: string, steps: { plan: RulesetPlan; check?: boolean; from?: RulesetPlan }[]): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CHILD], { input: JSON.stringify({ table, steps }), encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

/** The table as nft lists it (text, and JSON without handles), or undefined when absent. */
function listing(ns: string, table: string): { text: string; json: string } | undefined {
  const t = inNetns(ns, 'nft', ['list', 'table', 'inet', table]);
  if (t.status !== 0) return undefined;
  const j = inNetns(ns, 'nft', ['-j', 'list', 'table', 'inet', table]);
  assert.equal(j.status, 0, j.stderr);
  assert.equal(t.stderr, '', 'nft reads the table without complaint');
  return { text: t.stdout, json: j.stdout.replace(/"handle": \d+/g, '"handle": 0') };
}

/** A plan by hand with every match, verdict and element form the plan model has. */
function everyForm(): RulesetPlan {
  const rule = (matches: RulesetPlan['chains'][number]['rules'][number]['matches'], verdict: RulesetPlan['chains'][number]['rules'][number]['verdict'], extra: object = {}) => ({ matches, verdict, comment: 'policy:t/every', ...extra });
  return {
    nflogGroup: 7,
    logPrefixes: {},
    managedNetworks: ['n'],
    warnings: [],
    sets: [
      { name: 'known4', family: 4, exact: true, purpose: 'k', elements: [{ value: '10.1.0.2', owner: 'ctr:a' }, { value: '10.1.0.3', owner: 'ctr:b' }] },
      { name: 'known6', family: 6, exact: true, purpose: 'k', elements: [{ value: 'fd00:1::2', owner: 'ctr:a' }] },
      // Ranges at the bottom and the top of the space, adjacent ranges, a host.
      { name: 'wide4', family: 4, purpose: 'p', elements: [{ value: '0.0.0.0/8', owner: 'range:internal' }, { value: '10.1.0.0/24', owner: 'net:n' }, { value: '10.1.1.0/24', owner: 'net:m' }, { value: '10.2.0.9', owner: 'ctr:c' }, { value: '255.255.255.255', owner: 'range:internal' }] },
      { name: 'wide6', family: 6, purpose: 'p', elements: [{ value: 'fd00:1::/64', owner: 'net:n' }, { value: 'fd00:2::7', owner: 'ctr:c' }] },
      { name: 'all6', family: 6, purpose: 'p', elements: [{ value: '::/0', owner: 'range:internal' }] },
      { name: 'empty4', family: 4, purpose: 'p', elements: [] },
    ],
    maps: [
      { name: 'ingress4', family: 4, size: 1024, elements: [{ key: '10.1.0.2', chain: 'in_a', owner: 'ctr:a' }, { key: '10.1.0.3', chain: 'in_a', owner: 'ctr:b' }] },
      { name: 'ingress6', family: 6, size: 1024, elements: [{ key: 'fd00:1::2', chain: 'in_a', owner: 'ctr:a' }] },
      { name: 'egress4', family: 4, elements: [] },
    ],
    chains: [
      { name: 'ingress', hook: 'ingress', owners: [], rules: [
        rule([{ kind: 'established' }], { kind: 'accept' }, { comment: 'moat:established' }),
        rule([{ kind: 'nd' }], { kind: 'accept' }, { comment: 'moat:ipv6-nd' }),
        rule([{ kind: 'set', dir: 'dst', family: 4, set: 'known4', negate: true }, { kind: 'set', dir: 'dst', family: 4, set: 'wide4' }], { kind: 'drop' }, { counter: true, log: 'moat:failclosed:dst:x', comment: 'moat:fail-closed-dst' }),
        rule([], { kind: 'vmap', dir: 'dst', family: 4, map: 'ingress4' }, { comment: 'moat:ingress' }),
        rule([], { kind: 'vmap', dir: 'dst', family: 6, map: 'ingress6' }, { comment: 'moat:ingress' }),
      ] },
      { name: 'egress', hook: 'egress', owners: [], rules: [rule([], { kind: 'vmap', dir: 'src', family: 4, map: 'egress4' }, { comment: 'moat:egress' }), rule([{ kind: 'l4', proto: 'udp' }], { kind: 'jump', chain: 'in_b' })] },
      { name: 'in_a', owners: ['a', 'b'], rules: [
        rule([{ kind: 'set', dir: 'src', family: 4, set: 'wide4' }, { kind: 'set', dir: 'src', family: 4, set: 'empty4', negate: true }, { kind: 'l4', proto: 'tcp', ports: [[80, 80], [443, 443], [9000, 9100]] }], { kind: 'return' }),
        rule([{ kind: 'set', dir: 'src', family: 6, set: 'wide6' }, { kind: 'l4', proto: 'sctp', ports: [[5000, 5001]] }], { kind: 'return' }),
        rule([{ kind: 'set', dir: 'src', family: 6, set: 'all6' }, { kind: 'local', dir: 'src', negate: true }, { kind: 'l4', proto: 'udp', ports: [[53, 53]] }], { kind: 'return' }),
        rule([{ kind: 'local', dir: 'src' }, { kind: 'l4', proto: 'tcp', ports: [[1, 65535]] }], { kind: 'return' }),
        rule([{ kind: 'local', dir: 'dst' }, { kind: 'l4', proto: 'tcp' }], { kind: 'return' }),
        rule([{ kind: 'l4other' }], { kind: 'return' }),
        // Fixed CIDRs in the rule: whole-byte prefixes, others (mask), hosts, /0, negated, both families.
        rule([{ kind: 'cidr', dir: 'src', family: 4, cidr: '100.64.0.0/10' }, { kind: 'cidr', dir: 'src', family: 4, cidr: '100.64.3.0/24', negate: true }, { kind: 'l4', proto: 'tcp', ports: [[9000, 9100]] }], { kind: 'return' }),
        rule([{ kind: 'cidr', dir: 'dst', family: 4, cidr: '10.2.0.9' }, { kind: 'cidr', dir: 'src', family: 4, cidr: '0.0.0.0/0' }], { kind: 'return' }),
        rule([{ kind: 'cidr', dir: 'src', family: 4, cidr: '10.1.2.0/23', negate: true }, { kind: 'cidr', dir: 'src', family: 4, cidr: '10.0.0.0/8' }], { kind: 'return' }),
        rule([{ kind: 'cidr', dir: 'src', family: 6, cidr: 'fd00:1::/64' }, { kind: 'cidr', dir: 'src', family: 6, cidr: 'fd00:1::/57', negate: true }], { kind: 'return' }),
        rule([{ kind: 'cidr', dir: 'dst', family: 6, cidr: 'fd00::1', negate: true }, { kind: 'l4', proto: 'udp' }], { kind: 'return' }),
        rule([{ kind: 'published', proto: 'tcp', hostPort: 8443 }, { kind: 'set', dir: 'src', family: 4, set: 'wide4' }], { kind: 'return' }, { comment: 'allowlist:t/pub' }),
        rule([{ kind: 'published', proto: 'udp', hostPort: 5353 }], { kind: 'drop' }, { counter: true, log: 'moat:pub:in:t/pub', comment: 'allowlist:t/pub' }),
        rule([], { kind: 'drop' }, { counter: true, log: 'moat:iso:in:t/every', comment: 'isolated-by:t/every,t/other' }),
      ] },
      { name: 'in_b', owners: ['c'], rules: [rule([{ kind: 'l4', proto: 'udp', ports: [[53, 53], [5353, 5353]] }], { kind: 'accept' }), rule([], { kind: 'drop' }, { counter: true })] },
    ],
  };
}

function dualStackThreeTier() {
  const w = threeTierWorld();
  for (const n of w.networks) if (n.name === 'shop_backend') {
    n.enableIPv6 = true;
    n.subnets = [...n.subnets, 'fd00:28:2::/64'];
  }
  w.endpoints.forEach((e, i) => {
    for (const a of e.attachments) if (a.network === 'shop_backend') a.ipv6 = `fd00:28:2::${10 + i}`;
  });
  return w;
}

/** The messages of a batch: netlink type, flags and sequence number. */
function messages(buf: Buffer): { type: number; flags: number; seq: number }[] {
  const out = [];
  for (let off = 0; off < buf.length; off += (buf.readUInt32LE(off) + 3) & ~3) out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8) });
  return out;
}

const plans: [string, () => RulesetPlan][] = [
  ['every match, verdict and element form', everyForm],
  ['the seed three-tier example', () => compilePlan(threeTierWorld(), threeTierPolicies())],
  ['the three-tier example, dual stack', () => compilePlan(dualStackThreeTier(), threeTierPolicies())],
  ['a synthetic host (300 endpoints, 30 policies)', () => compilePlan(syntheticWorld(300), syntheticPolicies(30, 300))],
];

test('a batch is begin, the table replaced (add, delete, add), chains, sets with elements, rules, end; only the last message asks for an answer', () => {
  const b = encodeTableBatch(everyForm(), 'tnt', 100);
  const msgs = messages(b.buffer);
  const kinds = msgs.map((m) => (m.type === 16 || m.type === 17 ? m.type : m.type & 0xff));
  assert.deepEqual(kinds.slice(0, 4), [16, 0, 2, 0]);
  assert.equal(kinds[kinds.length - 1], 17);
  const firstRule = kinds.indexOf(6);
  assert.ok(kinds.slice(4, kinds.indexOf(9)).every((k) => k === 3), 'chains come first');
  assert.ok(kinds.slice(firstRule).every((k) => k === 6 || k === 9 || k === 12 || k === 17), 'then rules (with their anonymous sets)');
  assert.deepEqual(msgs.map((m) => m.seq), msgs.map((_, i) => 100 + i));
  const acked = msgs.filter((m) => m.flags & 0x4);
  assert.equal(acked.length, 1);
  assert.deepEqual(b.seqs, [acked[0].seq]);
  assert.equal(acked[0].seq, msgs[msgs.length - 2].seq);
  // Rules are appended (NLM_F_APPEND), never inserted at the head.
  assert.ok(msgs.filter((m) => (m.type & 0xff) === 6 && m.type !== 16 && m.type !== 17).every((m) => m.flags & 0x800));
  // Without commit: no BATCH_END.
  const c = messages(encodeTableBatch(everyForm(), 'tnt', 1, { commit: false }).buffer);
  assert.notEqual(c[c.length - 1].type, 17);
  assert.equal(c.length, msgs.length - 1);
});

test('names, comments and values from outside cannot reach the kernel unchecked', () => {
  const bad = (edit: (p: RulesetPlan) => void) => {
    const p = everyForm();
    edit(p);
    return () => encodeTableBatch(p, 'tnt', 1);
  };
  assert.throws(bad((p) => (p.chains[2].name = 'in_a; flush ruleset')), /invalid chain name/);
  assert.throws(bad((p) => (p.sets[2].name = 'x"y')), /invalid set name/);
  assert.throws(bad((p) => (p.maps[0].elements[0].chain = 'c d')), /invalid chain name/);
  assert.throws(bad((p) => (p.maps[0].elements[0].key = '10.1.0.0/24')), /not an IPv4 address/);
  assert.throws(bad((p) => (p.sets[0].elements[0].value = '10.1.0.2/31')), /not an IPv4 address/);
  assert.throws(bad((p) => (p.sets[2].elements[0].value = '10.1.0.256')), /invalid address/);
  assert.throws(bad((p) => (p.chains[2].rules[0].matches[0] = { kind: 'set', dir: 'src', family: 4, set: 'undeclared' })), /does not declare/);
  assert.throws(() => encodeTableBatch(everyForm(), 'Bad-Table', 1), /invalid nft table name/);
  // Comments are reduced to the safe alphabet, as the text renderer does.
  const p = everyForm();
  p.sets[0].elements[0].owner = 'ctr:a"; drop\n';
  p.chains[2].rules[0].comment = 'x} flush ruleset {';
  const text = encodeTableBatch(p, 'tnt', 1).buffer.toString('latin1');
  assert.ok(!text.includes('ctr:a"') && !text.includes('x}'));
  assert.match(text, /ctr:a__ drop/);
});

for (const [what, make] of plans) {
  test(`in the kernel: ${what} over netlink lists exactly as the same plan through nft -f`, { skip: kernel }, () => {
    const plan = make();
    const [a, b] = [createNetns('moatnt'), createNetns('moatnt')];
    namespaces.push(a, b);
    const viaNft = inNetns(b, 'nft', ['-f', '-'], renderReplace(plan, { table: 'tnt' }));
    assert.equal(viaNft.status, 0, viaNft.stderr);
    // Twice: into an empty namespace, then replacing the table it holds.
    assert.deepEqual(viaNetlink(a, 'tnt', [{ plan }, { plan }]), ['ok', 'ok']);
    const [la, lb] = [listing(a, 'tnt'), listing(b, 'tnt')];
    assert.ok(la && lb);
    assert.equal(la.text, lb.text);
    assert.equal(la.json, lb.json);
  });
}

test('in the kernel: a check (no commit) changes nothing; a batch the kernel refuses leaves the table it had', { skip: kernel }, () => {
  const ns = createNetns('moatnt');
  namespaces.push(ns);
  const good = everyForm();
  const other = compilePlan(threeTierWorld(), threeTierPolicies());
  // A map element that jumps to a chain the plan does not have: only the kernel can tell.
  const broken = everyForm();
  broken.maps[0].elements.push({ key: '10.1.0.9', chain: 'in_missing', owner: 'ctr:z' });
  const out = viaNetlink(ns, 'tnt', [{ plan: good, check: true }, { plan: good }, { plan: other, check: true }, { plan: broken, check: true }, { plan: broken }]);
  assert.equal(out[0], 'ok');
  assert.equal(out[1], 'ok');
  assert.equal(out[2], 'ok');
  assert.match(out[3], /^error nf_tables check of table inet tnt failed: ENOENT \(elements of ingress4\)/);
  assert.match(out[4], /^error nf_tables transaction of table inet tnt failed: ENOENT \(elements of ingress4\)/);
  // After a check of the first plan the table was absent; now it is the good plan, untouched by the
  // check of another plan and by the refused batch.
  const ref = createNetns('moatnt');
  namespaces.push(ref);
  assert.equal(inNetns(ref, 'nft', ['-f', '-'], renderReplace(good, { table: 'tnt' })).status, 0);
  assert.equal(listing(ns, 'tnt')?.text, listing(ref, 'tnt')?.text);
  const empty = createNetns('moatnt');
  namespaces.push(empty);
  assert.deepEqual(viaNetlink(empty, 'tnt', [{ plan: good, check: true }]), ['ok']);
  assert.equal(listing(empty, 'tnt'), undefined, 'a check creates no table');
});

test('a batch larger than the socket can send names the sysctl that lets it through', () => {
  // The 10,000-endpoint table against a stock net.core.wmem_max (212,992: a send buffer of 425,984).
  const e = new BatchTooLarge(5_696_944, 425_984);
  assert.match(e.message, /5696944 bytes\) is larger than the netlink socket's send buffer \(425984 bytes/);
  const m = /sysctl -w net\.core\.wmem_max=(\d+)/.exec(e.message);
  assert.ok(m, e.message);
  // The kernel doubles SO_SNDBUF up to twice wmem_max: the value suggested is enough, and a power of two.
  const v = Number(m![1]);
  assert.ok(2 * v >= 5_696_944 + 4096 && v === 2 ** Math.round(Math.log2(v)) && v / 2 < 5_696_944 / 2 + 4096, String(v));
});

/**
 * Policy changes on the synthetic host: policies removed (their chains and peer sets go), ports
 * changed (a new chain and a new shared port set), a policy with a new CIDR peer added (a new address
 * set), and back to the start.
 */
function policyChangePlans(): { name: string; plan: RulesetPlan }[] {
  const world = syntheticWorld(300);
  const base = syntheticPolicies(30, 300);
  const p1 = structuredClone(base);
  p1.policies.splice(3, 5);
  const p2 = structuredClone(p1);
  p2.policies[0].ingress[0].ports = [{ protocol: 'TCP', port: 7001 }, { protocol: 'TCP', port: 7005 }, { protocol: 'UDP', port: 7003 }];
  const p3 = structuredClone(p2);
  p3.policies.push({
    id: 'test:syn1/new', name: 'syn1/new', kind: 'label', subject: structuredClone(p3.policies[10].subject), isolates: { ingress: true, egress: true },
    // A CIDR (written into the rule) with two exceptions (a new set).
    ingress: [{ action: 'allow', peers: [{ kind: 'cidr', cidr: '198.18.7.0/24', except: ['198.18.7.128/25', '198.18.7.64/26'] }], ports: [{ protocol: 'TCP', port: 5432 }] }],
    egress: [{ action: 'deny', peers: [{ kind: 'internet' }] }],
  });
  return [
    { name: 'start', plan: compilePlan(world, base) },
    { name: 'five policies removed', plan: compilePlan(world, p1) },
    { name: 'ports of a policy changed', plan: compilePlan(world, p2) },
    { name: 'a policy with a new CIDR peer added', plan: compilePlan(world, p3) },
    { name: 'back to the start', plan: compilePlan(world, base) },
  ];
}

test('in the kernel: policy changes as one change batch (new and removed sets and chains, element changes) give the table a whole load gives', { skip: kernel }, () => {
  const ns = createNetns('moatnc');
  const ref = createNetns('moatnc');
  namespaces.push(ns, ref);
  const steps = policyChangePlans();
  assert.deepEqual(viaNetlink(ns, 'tnc', [{ plan: steps[0].plan }]), ['ok']);
  for (let i = 1; i < steps.length; i++) {
    const { name, plan } = steps[i];
    const from = steps[i - 1].plan;
    const d = incrementalScript(from, plan, { table: 'tnc' });
    assert.ok(d.incremental, name);
    const ch = d.netlink.change;
    // Each step changes structure, not only elements (else the element path would be tested again).
    assert.ok(ch.chains.length + ch.chainsRemoved.length + ch.sets.length + ch.setsRemoved.length > 0, `${name}: ${JSON.stringify(d.changes)}`);
    assert.deepEqual(viaNetlink(ns, 'tnc', [{ from, plan }]), ['ok'], name);
    assert.equal(inNetns(ref, 'nft', ['-f', '-'], renderReplace(plan, { table: 'tnc' })).status, 0);
    const got = listing(ns, 'tnc');
    const want = listing(ref, 'tnc');
    assert.ok(got && want);
    assert.equal(byBlock(got.text), byBlock(want.text), name);
  }
  const changed = (a: number, b: number) => {
    const d = incrementalScript(steps[a].plan, steps[b].plan);
    return d.incremental ? d.netlink : undefined;
  };
  assert.ok(changed(1, 2)?.change.portSets.length, 'the new port list came as a new port set');
  assert.ok(changed(2, 3)?.change.sets.some((s) => s.elements.some((e) => e.value.startsWith('198.18.7.'))), 'the new CIDR peer came as a new set');
  // A change from a plan the kernel does not hold (it removes the added policy's chain, which the
  // kernel, back at the start, does not have) is refused whole: the table stays as it was.
  const before = listing(ns, 'tnc')!.text;
  const out = viaNetlink(ns, 'tnc', [{ from: steps[3].plan, plan: steps[4].plan }]);
  assert.match(out[0], /^error nf_tables change of table inet tnc failed: /);
  assert.equal(listing(ns, 'tnc')!.text, before);
});

test('in the kernel: a change batch writes every match and verdict form the plan model has (a new chain like in_a, a new set, a new port set), and takes them away again', { skip: kernel }, () => {
  const ns = createNetns('moatnf');
  const ref = createNetns('moatnf');
  namespaces.push(ns, ref);
  const a = everyForm();
  const inA = a.chains.find((c) => c.name === 'in_a')!;
  // in_c: in_a's rules with another port list (a new port set) and a new address set besides the
  // sets the kernel holds; a new address jumps to it.
  const rules = inA.rules.map((r) => ({ ...r, matches: r.matches.map((m) => (m.kind === 'l4' && m.ports && m.ports.length > 1 ? { ...m, ports: [[81, 81], [8081, 8081]] as [number, number][] } : m.kind === 'set' && m.set === 'empty4' ? { ...m, set: 'fresh4' } : m)) }));
  const b: RulesetPlan = {
    ...a,
    sets: [...a.sets.map((s) => (s.name === 'known4' ? { ...s, elements: [...s.elements, { value: '10.1.0.9', owner: 'ctr:z' }] } : s)), { name: 'fresh4', family: 4, purpose: 'p', elements: [{ value: '192.0.2.0/28', owner: 'policy:t/c' }, { value: '192.0.2.77', owner: 'ctr:y' }] }],
    maps: a.maps.map((m) => (m.name === 'ingress4' ? { ...m, elements: [...m.elements, { key: '10.1.0.9', chain: 'in_c', owner: 'ctr:z' }] } : m)),
    chains: [...a.chains, { name: 'in_c', owners: ['z'], rules }],
  };
  const d = incrementalScript(a, b, { table: 'tnf' });
  assert.ok(d.incremental && d.netlink.change.chains.length === 1 && d.netlink.change.sets.length === 1 && d.netlink.change.portSets.length === 1, JSON.stringify(d.incremental && d.changes));
  assert.deepEqual(viaNetlink(ns, 'tnf', [{ plan: a }, { from: a, plan: b }]), ['ok', 'ok']);
  assert.equal(inNetns(ref, 'nft', ['-f', '-'], renderReplace(b, { table: 'tnf' })).status, 0);
  assert.equal(byBlock(listing(ns, 'tnf')!.text), byBlock(listing(ref, 'tnf')!.text));
  // And back: the chain flushed and deleted, the two sets deleted, the elements gone.
  assert.deepEqual(viaNetlink(ns, 'tnf', [{ from: b, plan: a }]), ['ok']);
  assert.equal(inNetns(ref, 'nft', ['-f', '-'], renderReplace(a, { table: 'tnf' })).status, 0);
  const back = listing(ns, 'tnf')!.text;
  assert.equal(byBlock(back), byBlock(listing(ref, 'tnf')!.text));
  assert.doesNotMatch(back, /in_c|fresh4|10\.1\.0\.9/);
});

test('in the kernel: a peer set that fills up is created anew with a larger capacity in one change batch (its chains flushed and reloaded), by netlink and by nft -f, and back', { skip: kernel }, () => {
  const world = syntheticWorld(300);
  const policies = syntheticPolicies(30, 300);
  const s = new CompileSession();
  const first = s.compile(world, policies, 'p').plan;
  // Replicas of a container that peer sets take (new addresses of a known identity), until a delta
  // gives a set a larger capacity.
  const eg = first.maps.find((m) => m.name === 'egress4')!;
  const like = world.endpoints.find((e) => eg.elements.some((el) => el.owner === `ctr:${e.id}`))!;
  const endpoints = [...world.endpoints];
  let prev = first;
  let grown: { from: RulesetPlan; plan: RulesetPlan; set: string } | undefined;
  for (let k = 0; k < 200 && !grown; k++) {
    endpoints.push(replicaEndpoint(like, k));
    const r = s.compile({ ...world, endpoints: [...endpoints] }, policies, 'p');
    assert.equal(r.mode, 'delta', r.reason);
    const d = incrementalScript(prev, r.plan);
    assert.ok(d.incremental);
    if (d.changes.setsResized.length) grown = { from: prev, plan: r.plan, set: d.changes.setsResized[0] };
    else prev = r.plan;
  }
  assert.ok(grown, 'a peer set grew');
  const { from, plan, set } = grown!;
  assert.ok(plan.sets.find((x) => x.name === set)!.size! > from.sets.find((x) => x.name === set)!.size!);
  const ns = createNetns('moatrs');
  const viaNft = createNetns('moatrs');
  const ref = createNetns('moatrs');
  namespaces.push(ns, viaNft, ref);
  const load = (n: string, p: RulesetPlan) => assert.equal(inNetns(n, 'nft', ['-f', '-'], renderReplace(p, { table: 'trs' })).status, 0);
  load(viaNft, from);
  assert.deepEqual(viaNetlink(ns, 'trs', [{ plan: from }]), ['ok']);
  // Grown, then back to the first capacity (a full compile after the replicas go).
  for (const [a, b] of [[from, plan], [plan, from]]) {
    const d = incrementalScript(a, b, { table: 'trs' });
    assert.ok(d.incremental && d.changes.setsResized.includes(set) && d.changes.chainsReloaded.length > 0, JSON.stringify(d.incremental && d.changes));
    assert.deepEqual(viaNetlink(ns, 'trs', [{ from: a, plan: b }]), ['ok']);
    const r = inNetns(viaNft, 'nft', ['-f', '-'], d.script);
    assert.equal(r.status, 0, r.stderr);
    load(ref, b);
    const want = listing(ref, 'trs')!;
    assert.match(want.text, new RegExp(`set ${set} \\{[^}]*size ${b.sets.find((x) => x.name === set)!.size}`));
    assert.equal(byBlock(listing(ns, 'trs')!.text), byBlock(want.text));
    assert.equal(byBlock(listing(viaNft, 'trs')!.text), byBlock(want.text));
  }
  // The verdict maps of a family with twice the capacity (as when they fill up), and back: created
  // anew with their elements, the base chains that use them flushed and reloaded, in one change.
  const bigger: RulesetPlan = { ...from, maps: from.maps.map((m) => (m.family === 4 ? { ...m, size: 2 * m.size! } : m)) };
  for (const [a, b] of [[from, bigger], [bigger, from]]) {
    const d = incrementalScript(a, b, { table: 'trs' });
    assert.ok(d.incremental && d.changes.setsResized.includes('egress4') && d.changes.chainsReloaded.includes('egress'), JSON.stringify(d.incremental && d.changes));
    assert.deepEqual(viaNetlink(ns, 'trs', [{ from: a, plan: b }]), ['ok']);
    const r = inNetns(viaNft, 'nft', ['-f', '-'], d.script);
    assert.equal(r.status, 0, r.stderr);
    load(ref, b);
    const want = listing(ref, 'trs')!;
    assert.match(want.text, new RegExp(`map egress4 \\{[^}]*size ${b.maps.find((x) => x.name === 'egress4')!.size}`));
    assert.equal(byBlock(listing(ns, 'trs')!.text), byBlock(want.text));
    assert.equal(byBlock(listing(viaNft, 'trs')!.text), byBlock(want.text));
  }
});

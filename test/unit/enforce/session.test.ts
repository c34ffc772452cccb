// The incremental compiler against full compiles: after every step of a random sequence of
// containers added, removed and restarted, the session's plan must equal a full compile of the same
// world (sets, maps, chains with their rules and owners, log prefixes), and most steps must take the
// fast path (so the test can tell when the fast path silently stops being used).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompileSession } from '../../../src/enforce/compile/session.js';
import { compile } from '../../../src/enforce/compile/compile.js';
import { buildEnforcementInput } from '../../../src/enforce/compile/input.js';
import { compilePlan, incrementalScript } from '../../../src/enforce/index.js';
import { capacitiesOf, type RulesetPlan } from '../../../src/enforce/plan-model.js';
import type { Endpoint, World } from '../../../src/model/world.js';
import { emptyPolicySet, groupLabel, type PolicySet } from '../../../src/model/ir.js';
import { loadPolicyFile } from '../../../src/policy/load.js';
import { replicaEndpoint, syntheticPolicies, syntheticWorld } from '../../../bench/enforce-world.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';

/**
 * Comparable form. A CIDR element of a peer set shared by several policies is annotated with the
 * policy that happened to create the set first, which depends on compile order: only container owners
 * are compared exactly.
 */
function normal(p: RulesetPlan) {
  const own = (o: string) => (o.startsWith('ctr:') || o.startsWith('net:') ? o : 'policy');
  const byValue = (a: { value: string; owner: string }, b: { value: string; owner: string }) => (a.value + a.owner).localeCompare(b.value + b.owner);
  return {
    sets: Object.fromEntries([...p.sets].sort((a, b) => a.name.localeCompare(b.name)).map((s) => [s.name, { family: s.family, elements: s.elements.map((e) => ({ value: e.value, owner: own(e.owner) })).sort(byValue) }])),
    maps: Object.fromEntries(p.maps.map((m) => [m.name, [...m.elements].sort((a, b) => a.key.localeCompare(b.key))])),
    chains: Object.fromEntries([...p.chains].sort((a, b) => a.name.localeCompare(b.name)).map((c) => [c.name, { hook: c.hook ?? null, rules: c.rules, owners: [...c.owners].sort() }])),
    logPrefixes: Object.keys(p.logPrefixes).sort(),
    managed: p.managedNetworks,
    group: p.nflogGroup,
  };
}

/** A deterministic pseudo-random sequence (no flaky seeds). */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** New addresses for replica k of an endpoint (bench/enforce-world.ts replicaEndpoint). */
const replicaAddress = (k: number, like: Endpoint) => replicaEndpoint(like, k).attachments;

function run(name: string, base: World, policies: PolicySet, steps: number, seed: number, newAddress: (k: number, like: Endpoint) => Endpoint['attachments']) {
  const rand = rng(seed);
  const session = new CompileSession();
  let endpoints = [...base.endpoints];
  let k = 0;
  const modes: string[] = [];
  for (let i = 0; i < steps; i++) {
    const r = rand();
    const pick = () => endpoints[Math.floor(rand() * endpoints.length)];
    if (r < 0.35 && endpoints.length > 2) {
      const gone = pick();
      endpoints = endpoints.filter((e) => e !== gone);
    } else if (r < 0.55) {
      // A restart: the same container as a new object (same id and address).
      const e = pick();
      endpoints = endpoints.map((x) => (x === e ? { ...e, attachments: e.attachments.map((a) => ({ ...a })) } : x));
    } else if (r < 0.65) {
      // A created container not started yet: no address.
      const like = pick();
      endpoints.push({ ...like, id: `${like.namespace}/new${k}`, name: `new${k}`, containerName: `new${k}`, attachments: like.attachments.map((a) => ({ network: a.network })) });
      k++;
    } else if (r < 0.68) {
      // A container with another mix of known labels (often an identity no container has yet, under
      // the same policies: a new chain whose sets the plan has).
      const like = pick();
      const other = pick();
      endpoints.push({ ...like, id: `${like.namespace}/mix${k}`, name: `mix${k}`, containerName: `mix${k}`, labels: { ...like.labels, ...other.labels, ...(rand() < 0.5 ? { extra: 'yes' } : {}) }, attachments: newAddress(k, like) });
      k++;
    } else if (r < 0.72) {
      // A container of a new identity (labels no other container has).
      const like = pick();
      endpoints.push({ ...like, id: `${like.namespace}/odd${k}`, name: `odd${k}`, containerName: `odd${k}`, labels: { ...like.labels, tier: 'odd' }, attachments: newAddress(k, like) });
      k++;
    } else {
      // Another replica of a known identity, on a new address.
      const like = pick();
      endpoints.push({ ...like, id: `${like.namespace}/rep${k}`, name: `rep${k}`, containerName: `rep${k}`, attachments: newAddress(k, like) });
      k++;
    }
    // Every fifth world lists its containers in another order (the session then compares them by id).
    const world: World = { ...base, endpoints: i % 5 === 4 ? [...endpoints].reverse() : [...endpoints] };
    const got = session.compile(world, policies, 'fixed');
    modes.push(got.mode);
    const want = compilePlan(world, policies);
    assert.deepEqual(normal(got.plan), normal(want), `${name}: step ${i} (${got.mode}${got.reason ? `: ${got.reason}` : ''}) differs from a full compile`);
  }
  return { modes, stats: session.stats };
}

/**
 * The synthetic policies and one more that selects containers labelled `extra=yes` in syn0 (none at
 * first), with the peers and ports of an existing policy: a container that carries the label is a new
 * identity whose rules name only sets the plan has.
 */
function withExtraPolicy(policies: PolicySet): PolicySet {
  const api = policies.policies.find((p) => p.id === 'bench:syn0/p1')!;
  const extra = { ...api, id: 'test:extra', name: 'extra', subject: { namespaces: { kind: 'names' as const, names: ['syn0'] }, labels: { matchLabels: { extra: 'yes' } } }, ingress: [{ ...api.ingress[0], ports: [{ protocol: 'TCP' as const, port: 8443 }] }] };
  return { ...policies, policies: [...policies.policies, extra] };
}

test('incremental compile equals a full compile step by step (synthetic host, 200 endpoints)', () => {
  const world = syntheticWorld(200);
  const policies = withExtraPolicy(syntheticPolicies(20, 200));
  const { stats } = run('synthetic', world, policies, 120, 7, replicaAddress);
  assert.ok(stats.delta >= 60, `fast path taken ${stats.delta} times of 120 (full: ${stats.full})`);
  assert.ok(stats.full >= 1, 'new identities force full compiles');
});

test('incremental compile equals a full compile step by step (a moat policy file of groups per namespace; containers with group labels of their own)', () => {
  const world = syntheticWorld(300);
  const groups = ['syn0', 'syn1', 'syn2'].flatMap((ns) => [
    `  ${ns}-web:\n    select: { namespace: ${ns}, labels: { tier: web } }\n    ingress:\n      - from: [any]\n        ports: [80, 443]`,
    `  ${ns}-api:\n    select: { namespace: ${ns}, labels: { tier: api } }\n    ingress:\n      - from: [${ns}-web]\n        ports: [8080]\n    egress:\n      - to: [${ns}-db, ${ns}-cache]\n      - to: [host]\n        ports: [53/udp]`,
    `  ${ns}-db:\n    select: { namespace: ${ns}, labels: { tier: db } }\n    ingress:\n      - from: [${ns}-api, app1]\n        ports: [5432]\n    deny:\n      egress:\n        - to: [internet]`,
    `  ${ns}-cache:\n    select: { namespace: ${ns}, labels: { tier: cache } }\n    ingress:\n      - from: [${ns}-api]\n        ports: [6379]`,
  ]);
  groups.push(`  app1:\n    select: { labels: { app: app1 } }\n    egress:\n      - to: [syn1-db]`);
  const text = `apiVersion: moat/v1\nkind: Policy\nmetadata:\n  name: groups\ngroups:\n${groups.join('\n')}\n`;
  const policies = loadPolicyFile('/virtual/groups.yaml', text).policySet;
  assert.ok(policies.groups.length >= 13, `${policies.groups.length} groups`);
  // Some containers carry a group's label themselves (a group of another namespace).
  const base: World = { ...world, endpoints: world.endpoints.map((e, i) => (i % 37 === 5 ? { ...e, labels: { ...e.labels, [groupLabel('syn2-db')]: 'true' } } : e)) };
  const { stats } = run('groups', base, policies, 100, 13, replicaAddress);
  assert.ok(stats.delta >= 40, `fast path taken ${stats.delta} times of 100 (full: ${stats.full})`);
});

/** The three-tier world with its bridges' gateways (in both verdict maps, owned by their network). */
function withGateways(w: World): World {
  return { ...w, networks: w.networks.map((n, i) => ({ ...n, gateways: [`172.28.${i + 1}.1`, ...(n.subnets.some((x) => x.includes(':')) ? ['fd00:28:1::1'] : [])] })) };
}

test('incremental compile equals a full compile step by step (three-tier, groups, allowlists, IPv6)', () => {
  const world = withGateways(threeTierWorld());
  const policies = threeTierPolicies();
  const { stats } = run('three-tier', world, policies, 80, 11, (k, like) => like.attachments.map((a) => ({ ...a, ipv4: a.ipv4 ? a.ipv4.replace(/\.\d+$/, `.${100 + (k % 150)}`) : undefined, ipv6: a.ipv6 ? a.ipv6.replace(/:[0-9a-f]+$/, `:${(0x100 + k).toString(16)}`) : undefined })));
  assert.ok(stats.delta >= 30, `fast path taken ${stats.delta} times of 80 (full: ${stats.full})`);
});

test('a policy change, a network change or a burst is a full compile', () => {
  const world = syntheticWorld(60);
  const policies = syntheticPolicies(6, 60);
  const s = new CompileSession();
  assert.equal(s.compile(world, policies, 'a').mode, 'full');
  assert.equal(s.compile({ ...world, endpoints: world.endpoints.slice(1) }, policies, 'a').mode, 'delta');
  // Another policy key with the same policies and world: a policy delta that changes nothing.
  const same = s.compile({ ...world, endpoints: world.endpoints.slice(1) }, policies, 'b');
  assert.equal(same.mode, 'policy-delta');
  assert.equal(s.compile({ ...world, endpoints: world.endpoints.slice(1), networks: [...world.networks] }, policies, 'b').mode, 'delta', 'same network objects in a new array are the same networks');
  assert.equal(s.compile({ ...world, endpoints: world.endpoints.slice(1), networks: world.networks.slice(1) }, policies, 'b').reason, 'networks changed');
  assert.match(s.compile({ ...world, endpoints: world.endpoints.slice(20), networks: world.networks.slice(1) }, policies, 'b').reason ?? '', /changes at once/);
  // Policies and containers changed at once: a policy delta, then a container delta.
  const both = { ...world, endpoints: world.endpoints.slice(21), networks: world.networks.slice(1) };
  const fewer = { ...policies, policies: policies.policies.slice(1) };
  const r = s.compile(both, fewer, 'c');
  assert.equal(r.mode, 'policy-delta', r.reason);
  assert.deepEqual(normal(r.plan), normal(compilePlan(both, fewer)));
});


/** Sizes of every set and map with a capacity. */
const capacities = (p: RulesetPlan) => [...p.maps, ...p.sets].filter((x) => x.size !== undefined).map((x) => ({ name: x.name, n: x.elements.length, size: x.size! }));

test('a verdict map never outgrows its kernel capacity: the delta that would fill it gives it the larger size a full compile gives, and the diff replaces it with the base chains reloaded', () => {
  const world = syntheticWorld(300);
  // Egress isolation of the web tier, no peer sets (peers: all): the map fills before any set.
  const policies = emptyPolicySet();
  for (let n = 0; n < 6; n++) policies.policies.push({ id: `t:web${n}`, name: `web${n}`, kind: 'label', subject: { namespaces: { kind: 'names', names: [`syn${n}`] }, labels: { matchLabels: { tier: 'web' } } }, isolates: { ingress: false, egress: true }, ingress: [], egress: [{ action: 'allow', peers: 'all' }] });
  const s = new CompileSession();
  const first = s.compile(world, policies, 'p').plan;
  const eg = first.maps.find((m) => m.name === 'egress4')!;
  assert.equal(eg.size, 1024, `${eg.elements.length} elements`);
  const like = world.endpoints.find((e) => eg.elements.some((el) => el.owner === `ctr:${e.id}`))!;
  const endpoints = [...world.endpoints];
  let last = first;
  let grownAt = -1;
  for (let k = 0; k < 1100 && grownAt < 0; k++) {
    endpoints.push(replicaEndpoint(like, k));
    const w = { ...world, endpoints: [...endpoints] };
    const r = s.compile(w, policies, 'p');
    assert.equal(r.mode, 'delta', `step ${k}: ${r.reason}`);
    const m = r.plan.maps.find((x) => x.name === 'egress4')!;
    assert.ok(m.elements.length <= m.size!, `step ${k}: ${m.elements.length} elements in a map of ${m.size}`);
    const d = incrementalScript(last, r.plan);
    assert.ok(d.incremental, `step ${k}`);
    if (m.size !== 1024) {
      grownAt = k;
      // The size a full compile with the kernel's capacities gives it.
      assert.equal(m.size, 4096);
      assert.equal(compilePlan(w, policies, { capacities: capacitiesOf(last) }).maps.find((x) => x.name === 'egress4')!.size, 4096);
      // Every known address is in both maps of its family: both grow. The kernel's maps cannot grow
      // in place: they are created anew with their elements, and the base chains that use them are
      // flushed and loaded again, in the same change.
      const ing = r.plan.maps.find((x) => x.name === 'ingress4')!;
      assert.equal(ing.size, 4096);
      const users = r.plan.chains.filter((c) => c.rules.some((rule) => rule.verdict.kind === 'vmap' && rule.verdict.family === 4));
      assert.deepEqual(users.map((c) => c.hook).sort(), ['egress', 'ingress']);
      assert.deepEqual([...d.changes.setsResized].sort(), ['egress4', 'ingress4']);
      assert.deepEqual([...d.changes.chainsReloaded].sort(), users.map((c) => c.name).sort());
      assert.deepEqual(d.netlink.change.mapsReplaced?.map((x) => [x.name, x.size, x.elements.length]).sort(), [['egress4', 4096, m.elements.length], ['ingress4', 4096, ing.elements.length]]);
      assert.equal(d.elementOps, undefined);
      assert.match(d.script, /^delete map inet moat egress4\n(delete map inet moat ingress4\n)?[^]*^add map inet moat egress4 \{ type ipv4_addr : verdict; size 4096; \}$/m);
      assert.match(d.script, /^flush chain inet moat egress$/m);
    } else {
      assert.ok(d.elementOps, `step ${k}: element changes only`);
    }
    last = r.plan;
  }
  assert.equal(grownAt, 1024 - eg.elements.length, 'the first delta past the capacity, not before');
});

test('a peer set of containers is a sized hash set; the delta that would fill it gives it the larger size a full compile gives, and the diff replaces it in place', () => {
  const world = syntheticWorld(600);
  const policies = syntheticPolicies(60, 600);
  const s = new CompileSession();
  const first = s.compile(world, policies, 'p').plan;
  // Peer sets of containers are hash sets with a capacity (twice their elements, at least 64);
  // sets with a range or prefix keep their intervals and have none.
  const sized = first.sets.filter((x) => x.size !== undefined);
  assert.ok(sized.some((x) => x.peers !== undefined && x.exact), 'peer sets of containers are exact and sized');
  for (const x of first.sets) {
    assert.equal(x.size !== undefined, !!x.exact, `${x.name}: sized exactly when exact`);
    if (x.exact) assert.ok(x.size! >= 2 * x.elements.length && x.size! >= 64 && x.elements.every((e) => !e.value.includes('/')), `${x.name}: ${x.elements.length} elements, size ${x.size}`);
  }
  // Replicas of a container that peer sets take, one at a time, until one of them has grown.
  const eg = first.maps.find((m) => m.name === 'egress4')!;
  const like = world.endpoints.find((e) => eg.elements.some((el) => el.owner === `ctr:${e.id}`))!;
  const endpoints = [...world.endpoints];
  let last = first;
  let grown: string | undefined;
  for (let k = 0; k < 300 && !grown; k++) {
    endpoints.push(replicaEndpoint(like, k));
    const w = { ...world, endpoints: [...endpoints] };
    const r = s.compile(w, policies, 'p');
    assert.equal(r.mode, 'delta', `step ${k}: ${r.reason}`);
    for (const c of capacities(r.plan)) assert.ok(c.n <= c.size, `step ${k}: ${c.n} elements in ${c.name} of ${c.size}`);
    const before = new Map(capacities(last).map((c) => [c.name, c]));
    const changed = capacities(r.plan).filter((c) => before.get(c.name)?.size !== c.size);
    const d = incrementalScript(last, r.plan);
    assert.ok(d.incremental, `step ${k}: ${!d.incremental && d.reason}`);
    if (changed.length === 0) {
      // A delta keeps every capacity while the elements fit: element changes only.
      assert.ok(d.elementOps, `step ${k}`);
      assert.deepEqual(d.changes.setsResized, []);
    } else {
      // Not before it had to: the new plan holds more than the old capacity, and has the capacity a
      // full compile with the kernel's capacities gives it.
      assert.equal(changed.length, 1, JSON.stringify(changed));
      grown = changed[0].name;
      const old = before.get(grown)!;
      assert.ok(changed[0].n > old.size && changed[0].size > old.size, `${grown}: ${old.n}/${old.size} -> ${changed[0].n}/${changed[0].size}`);
      const full = compilePlan(w, policies, { capacities: capacitiesOf(last) });
      assert.equal(full.sets.find((x) => x.name === grown)!.size, changed[0].size);
      // The diff replaces the set: the chains that use it are flushed and loaded again, nothing else.
      const users = r.plan.chains.filter((c) => c.rules.some((rule) => rule.matches.some((m) => m.kind === 'set' && m.set === grown)));
      assert.ok(users.length > 0 && users.every((c) => !c.hook));
      assert.equal(d.elementOps, undefined);
      assert.deepEqual(d.changes.setsResized, [grown]);
      assert.deepEqual(d.netlink.change.chainsReloaded?.map((c) => c.name).sort(), users.map((c) => c.name).sort());
      assert.deepEqual(d.netlink.change.setsReplaced, [grown]);
      assert.deepEqual(d.netlink.change.sets.map((x) => x.name), [grown]);
      assert.deepEqual([d.changes.chainsAdded, d.changes.chainsRemoved, d.changes.setsAdded, d.changes.setsRemoved], [[], [], [], []]);
      assert.match(d.script, new RegExp(`^flush chain inet moat ${users[0].name}$[\\s\\S]*^delete set inet moat ${grown}$[\\s\\S]*^add set inet moat ${grown} \\{ type ipv4_addr; size ${changed[0].size}; \\}$[\\s\\S]*^add rule inet moat ${users[0].name} `, 'm'));
    }
    last = r.plan;
  }
  assert.ok(grown, 'a peer set grew');
});

test('a policy change after container churn keeps the capacities the kernel has while they fit, so the diff stays incremental', () => {
  const world = syntheticWorld(600);
  const policies = syntheticPolicies(60, 600);
  const s = new CompileSession();
  const first = s.compile(world, policies, 'p').plan;
  const eg = first.maps.find((m) => m.name === 'egress4')!;
  const like = world.endpoints.find((e) => eg.elements.some((el) => el.owner === `ctr:${e.id}`))!;
  // Replicas join peer sets until one of them holds more than half its capacity: a fresh compile
  // would size it larger (twice the elements), which the kernel's set cannot take in place.
  const endpoints = [...world.endpoints];
  let last = first;
  let grown: { name: string; n: number; size: number } | undefined;
  for (let k = 0; k < 200 && !grown; k++) {
    endpoints.push(replicaEndpoint(like, k));
    const r = s.compile({ ...world, endpoints: [...endpoints] }, policies, 'p');
    assert.equal(r.mode, 'delta', r.reason);
    last = r.plan;
    grown = capacities(last).find((c) => c.name.startsWith('p') && 2 * c.n > c.size);
  }
  assert.ok(grown, 'a peer set past half its capacity');
  const churned = { ...world, endpoints: [...endpoints] };
  const fresh = compilePlan(churned, policies);
  assert.ok(fresh.sets.find((x) => x.name === grown!.name)!.size! > grown.size, 'a compile without the kernel capacities sizes it larger');
  // The policy change: one policy's ports, and namespace labels that no selector reads (so the
  // change is not a policy delta). A full compile, with the capacities the kernel has.
  const changed = { ...policies, namespaceLabels: { unused: { a: 'b' } }, policies: policies.policies.map((p, i) => (i === 0 ? { ...p, ingress: [{ ...p.ingress[0], ports: [{ protocol: 'TCP' as const, port: 7001 }, { protocol: 'TCP' as const, port: 7005 }] }, ...p.ingress.slice(1)] } : p)) };
  const r = s.compile(churned, changed, 'q');
  assert.equal(r.mode, 'full', r.reason);
  assert.deepEqual(capacities(r.plan).map((c) => [c.name, c.size]).filter(([n]) => capacities(last).some((c) => c.name === n)), capacities(last).filter((c) => capacities(r.plan).some((x) => x.name === c.name)).map((c) => [c.name, c.size]));
  const d = incrementalScript(last, r.plan);
  assert.ok(d.incremental, d.incremental ? '' : d.reason);
  assert.ok(d.changes.chainsAdded.length > 0, 'the policy change brings new chains');
  // A capacity is kept while the elements fit and it is at most four times a fresh one.
  const input = buildEnforcementInput(churned, policies);
  const known = fresh.maps.find((x) => x.name === 'ingress4')!;
  const sized = (capacity: number) => compile(input, { capacities: new Map([['ingress4', capacity]]) }).maps.find((x) => x.name === 'ingress4')!.size;
  assert.equal(sized(known.size! * 4), known.size! * 4);
  assert.equal(sized(known.size! * 8), known.size!, 'far too large: a fresh capacity');
  assert.equal(sized(known.elements.length - 1), known.size!, 'too small: a fresh capacity');
});

test('a full compile leaves the delta index for idle time (prepare), and a delta builds it when prepare did not run', () => {
  const world = syntheticWorld(60);
  const policies = syntheticPolicies(6, 60);
  const s = new CompileSession();
  assert.equal(s.prepare(), false, 'nothing compiled yet');
  s.compile(world, policies, 'a');
  assert.equal(s.prepare(), true, 'the index is not built by the full compile itself');
  assert.equal(s.prepare(), false, 'built once');
  // Without prepare: the delta builds it, and the result is the full compile's.
  s.compile(world, policies, 'b');
  const smaller = { ...world, endpoints: world.endpoints.slice(1) };
  const r = s.compile(smaller, policies, 'b');
  assert.equal(r.mode, 'delta');
  assert.deepEqual(normal(r.plan), normal(compilePlan(smaller, policies)));
  assert.equal(s.prepare(), false, 'the delta built it');
});

/** A policy set changed in one random way (a new object; unchanged policies keep theirs). */
function mutated(p: PolicySet, rand: () => number, k: number): { policies: PolicySet; op: string } {
  const list = [...p.policies];
  const at = () => Math.floor(rand() * list.length);
  const r = rand();
  const clone = <T>(x: T): T => structuredClone(x);
  let op: string;
  if (r < 0.2 && list.length) {
    op = 'ports';
    const i = at();
    const q = clone(list[i]);
    const rules = q.ingress.length ? q.ingress : q.egress;
    if (rules.length) rules[0].ports = [{ protocol: 'TCP', port: 1000 + (k % 50) }, ...(rules[0].ports ?? []).filter((x) => !('name' in x))];
    else q.ingress.push({ action: 'allow', peers: 'all', ports: [{ protocol: 'UDP', port: 2000 + k }] });
    list[i] = q;
  } else if (r < 0.3 && list.length > 2) {
    op = 'remove';
    list.splice(at(), 1);
  } else if (r < 0.45 && list.length) {
    op = 'add';
    const q = clone(list[at()]);
    q.id = `${q.id}+copy${k}`;
    q.name = `${q.name}+copy${k}`;
    if (q.ingress[0]) q.ingress[0].ports = [{ protocol: 'TCP', port: 3000 + k }];
    list.splice(at(), 0, q);
  } else if (r < 0.55 && list.length > 1) {
    op = 'subject';
    const i = at();
    list[i] = { ...clone(list[i]), subject: clone(list[at()].subject) };
  } else if (r < 0.65 && list.length) {
    op = 'isolation';
    const i = at();
    const q = clone(list[i]);
    q.isolates = { ingress: !q.isolates.ingress, egress: q.isolates.egress };
    list[i] = q;
  } else if (r < 0.75 && list.length > 1) {
    op = 'peers';
    const i = at();
    const q = clone(list[i]);
    const other = list[at()];
    const rule = q.ingress[0] ?? q.egress[0];
    const peers = (other.ingress[0] ?? other.egress[0])?.peers;
    if (rule) rule.peers = rand() < 0.3 ? [{ kind: 'host' }, { kind: 'cidr', cidr: `198.18.${k % 200}.0/24`, except: [] }] : peers ? clone(peers) : 'all';
    list[i] = q;
  } else if (r < 0.8 && list.length > 1) {
    op = 'deny';
    const i = at();
    const q = clone(list[i]);
    q.egress.push({ action: 'deny', peers: [{ kind: 'internet' }] });
    list[i] = q;
  } else if (r < 0.85 && list.length > 1) {
    op = 'reorder';
    const i = at();
    const j = at();
    [list[i], list[j]] = [list[j], list[i]];
  } else {
    // The same policies as new objects, moved in their file (a line added above them).
    op = 'same';
    for (let i = 0; i < list.length; i++) list[i] = { ...clone(list[i]), pos: { file: 'x.yaml', line: 10 + k, col: 1 } };
  }
  return { policies: { ...p, policies: list }, op };
}

function runMixed(name: string, base: World, start: PolicySet, steps: number, seed: number, newAddress: (k: number, like: Endpoint) => Endpoint['attachments']) {
  const rand = rng(seed);
  const session = new CompileSession();
  let endpoints = [...base.endpoints];
  let policies = start;
  let key = 0;
  const ops: Record<string, string[]> = {};
  for (let i = 0; i < steps; i++) {
    let op = 'containers';
    const r = rand();
    if (r < 0.65) {
      const m = mutated(policies, rand, i);
      policies = m.policies;
      op = m.op;
      key++;
    }
    // Containers: alone, or with the policy change (a labelled container brings its policy).
    if (r >= 0.5) {
      if (r >= 0.65) op = 'containers';
      else op += '+containers';
      if (rand() < 0.5 && endpoints.length > 2) {
        const gone = endpoints[Math.floor(rand() * endpoints.length)];
        endpoints = endpoints.filter((e) => e !== gone);
      } else {
        const like = endpoints[Math.floor(rand() * endpoints.length)];
        endpoints.push({ ...like, id: `${like.namespace}/rep${i}`, name: `rep${i}`, containerName: `rep${i}`, attachments: newAddress(i, like) });
      }
    }
    const world: World = { ...base, endpoints: [...endpoints] };
    const got = session.compile(world, policies, `k${key}`);
    (ops[op] ??= []).push(got.mode);
    const want = compilePlan(world, policies);
    const where = `${name}: step ${i}, ${op} (${got.mode}${got.reason ? `: ${got.reason}` : ''})`;
    assert.deepEqual(normal(got.plan), normal(want), `${where} differs from a full compile`);
    assert.deepEqual([...got.plan.warnings].sort(), [...want.warnings].sort(), `${where}: warnings`);
    // The chains keep the full compile's order (base chains first, then by name), and so do the sets.
    assert.deepEqual(got.plan.chains.map((c) => c.name), want.chains.map((c) => c.name), `${where}: chain order`);
    assert.deepEqual(got.plan.sets.map((c) => c.name), want.sets.map((c) => c.name), `${where}: set order`);
    // Capacities are the kernel's (kept while they fit), not always a fresh compile's: they must fit.
    for (const c of capacities(got.plan)) assert.ok(c.n <= c.size, `${where}: ${c.n} elements in ${c.name} of ${c.size}`);
  }
  return { ops, stats: session.stats };
}


test('a policy change with the world unchanged is a policy delta equal to a full compile, step by step with container churn (synthetic host)', () => {
  const world = syntheticWorld(300);
  const { ops, stats } = runMixed('synthetic', world, syntheticPolicies(30, 300), 140, 21, replicaAddress);
  assert.ok(stats.policyDelta >= 40, `policy deltas: ${stats.policyDelta} (${JSON.stringify(ops)})`);
  assert.ok(stats.delta >= 20, `container deltas: ${stats.delta}`);
  // Reordered policies order their rules otherwise: a full compile.
  for (const m of [...(ops.reorder ?? []), ...(ops['reorder+containers'] ?? [])]) assert.equal(m, 'full');
  for (const m of ops.same ?? []) assert.equal(m, 'policy-delta', 'moved, not changed');
  const withContainers = Object.entries(ops).filter(([k]) => k.endsWith('+containers')).flatMap(([, v]) => v);
  assert.ok(withContainers.filter((m) => m === 'policy-delta').length >= 10, `policy and container changes at once: ${JSON.stringify(withContainers)}`);
});

test('policy deltas equal full compiles (three-tier: groups, allowlists, IPv6)', () => {
  const v6 = (k: number, like: Endpoint) => like.attachments.map((a) => ({ ...a, ipv4: a.ipv4 ? a.ipv4.replace(/\.\d+$/, `.${100 + (k % 150)}`) : undefined, ipv6: a.ipv6 ? a.ipv6.replace(/:[0-9a-f]+$/, `:${(0x100 + k).toString(16)}`) : undefined }));
  // With a container on the host's network and one on a managed network without an address yet: their
  // warnings depend on whether a policy selects them.
  const base = withGateways(threeTierWorld());
  const like = base.endpoints[0];
  const world: World = {
    ...base,
    endpoints: [
      ...base.endpoints,
      { ...like, id: 'shop/hostnet', name: 'hostnet', containerName: 'hostnet', networkMode: { kind: 'host' }, attachments: [] },
      { ...like, id: 'shop/pending', name: 'pending', containerName: 'pending', attachments: like.attachments.map((a) => ({ network: a.network })) },
    ],
  };
  const first = compilePlan(world, threeTierPolicies());
  assert.ok(first.warnings.some((w) => w.includes('hostnet')) && first.warnings.some((w) => w.includes('pending')), first.warnings.join('; '));
  const { stats } = runMixed('three-tier', world, threeTierPolicies(), 80, 5, v6);
  assert.ok(stats.policyDelta >= 20, `policy deltas: ${stats.policyDelta}`);
});

test('policy deltas equal full compiles (a moat policy file of groups, edited)', () => {
  const world = syntheticWorld(200);
  const file = (port: number, extra: string) =>
    `apiVersion: moat/v1\nkind: Policy\nmetadata:\n  name: groups\ngroups:\n` +
    ['syn0', 'syn1'].map((ns) => `  ${ns}-api:\n    select: { namespace: ${ns}, labels: { tier: api } }\n    ingress:\n      - from: [${ns}-web]\n        ports: [${ns === 'syn0' ? port : 8080}]\n  ${ns}-web:\n    select: { namespace: ${ns}, labels: { tier: web } }\n    egress:\n      - to: [${ns}-api]\n`).join('') +
    extra;
  const s = new CompileSession();
  const one = loadPolicyFile('/virtual/g.yaml', file(8080, '')).policySet;
  s.compile(world, one, 'a');
  s.prepare();
  // Each edit reloads the file: every policy a new object, one changed.
  for (const [i, text] of [file(8081, ''), file(8082, ''), file(8082, `  syn1-db:\n    select: { namespace: syn1, labels: { tier: db } }\n    ingress:\n      - from: [syn1-api]\n        ports: [5432]\n`), file(8083, '')].entries()) {
    const next = loadPolicyFile('/virtual/g.yaml', text).policySet;
    const r = s.compile(world, next, `b${i}`);
    assert.deepEqual(normal(r.plan), normal(compilePlan(world, next)), `edit ${i} (${r.mode}: ${r.reason ?? ''})`);
    // A new group is a change of the groups: a full compile; the others are policy deltas.
    assert.equal(r.mode, i === 2 || i === 3 ? 'full' : 'policy-delta', `edit ${i}: ${r.reason ?? ''}`);
  }
});

test('a container of a new identity is a delta when its rules name only sets the plan has, and a full compile otherwise', () => {
  const world = syntheticWorld(200);
  const policies = withExtraPolicy(syntheticPolicies(20, 200));
  // A policy for a tier no container has yet, allowing from a selector nothing else names.
  policies.policies.push({ id: 'test:odd', name: 'odd', kind: 'label', subject: { namespaces: { kind: 'names', names: ['syn0'] }, labels: { matchLabels: { tier: 'odd' } } }, isolates: { ingress: true, egress: false }, ingress: [{ action: 'allow', peers: [{ kind: 'endpoints', selector: { namespaces: { kind: 'names', names: ['syn0'] }, labels: { matchLabels: { tier: 'nowhere' } } } }] }], egress: [] });
  const s = new CompileSession();
  const base = s.compile(world, policies, 'p').plan;
  s.prepare();
  const like = world.endpoints.find((e) => e.namespace === 'syn0' && e.labels.tier === 'api')!;
  // Another mix of known labels: the first candidate whose chains the plan does not have.
  const names = new Set(base.chains.map((c) => c.name));
  let k = 0;
  let fresh: Endpoint | undefined;
  const mixes: Record<string, string>[] = [{ tier: 'api' }, { tier: 'web', app: 'app3' }, { tier: 'api', app: 'app1', extra: 'yes' }, { tier: 'db', extra: 'yes' }];
  for (const labels of mixes) {
    const e = { ...replicaEndpoint(like, k++), labels };
    if (compilePlan({ ...world, endpoints: [...world.endpoints, e] }, policies).chains.some((c) => !names.has(c.name))) {
      fresh = e;
      break;
    }
  }
  assert.ok(fresh, 'a label mix of a new identity');
  const w1 = { ...world, endpoints: [...world.endpoints, fresh!] };
  const r1 = s.compile(w1, policies, 'p');
  assert.equal(r1.mode, 'delta', r1.reason);
  assert.deepEqual(normal(r1.plan), normal(compilePlan(w1, policies)));
  const d1 = incrementalScript(base, r1.plan);
  assert.ok(d1.incremental && d1.changes.chainsAdded.length > 0, 'new chains in the kernel');
  // It goes again: its chains go with it.
  const r2 = s.compile({ ...world, endpoints: [...world.endpoints] }, policies, 'p');
  assert.equal(r2.mode, 'delta', r2.reason);
  assert.deepEqual(normal(r2.plan), normal(base));
  // A container whose rules name a set the plan lacks (its members are the whole world's): full.
  const odd = { ...replicaEndpoint(like, k++), labels: { tier: 'odd' } };
  const w3 = { ...world, endpoints: [...world.endpoints, odd] };
  const r3 = s.compile(w3, policies, 'p');
  assert.equal(r3.mode, 'full');
  assert.match(r3.reason ?? '', /new identity .* with a new set/);
  assert.deepEqual(normal(r3.plan), normal(compilePlan(w3, policies)));
});

test('a new identity\'s chain keeps the sets it names (and its log prefix) while it lives, whoever else leaves', () => {
  const world = syntheticWorld(200);
  const policies = withExtraPolicy(syntheticPolicies(20, 200));
  const s = new CompileSession();
  s.compile(world, policies, 'p');
  s.prepare();
  const like = world.endpoints.find((e) => e.namespace === 'syn0' && e.labels.tier === 'api')!;
  // Selected by the extra policy alone: its own chain, isolated by that policy (a log prefix of its own),
  // naming the peer set of the syn0 api policies.
  const x = { ...replicaEndpoint(like, 0), labels: { extra: 'yes' } };
  let endpoints = [...world.endpoints, x];
  const r = s.compile({ ...world, endpoints: [...endpoints] }, policies, 'p');
  assert.equal(r.mode, 'delta', r.reason);
  assert.ok(Object.keys(r.plan.logPrefixes).some((p) => p.includes('test:extra')), 'its log prefix');
  assert.deepEqual(normal(r.plan), normal(compilePlan({ ...world, endpoints }, policies)));
  // The syn0 api containers leave, a few at a time: the set stays for x's chain.
  const api = world.endpoints.filter((e) => e.namespace === 'syn0' && e.labels.tier === 'api');
  for (let i = 0; i < api.length; i += 6) {
    const gone = new Set(api.slice(i, i + 6));
    endpoints = endpoints.filter((e) => !gone.has(e));
    const w = { ...world, endpoints: [...endpoints] };
    const step = s.compile(w, policies, 'p');
    assert.equal(step.mode, 'delta', step.reason);
    assert.deepEqual(normal(step.plan), normal(compilePlan(w, policies)), `after ${i + gone.size} of ${api.length} left`);
  }
});

test('containers on a network moat does not manage: their addresses there fill peer sets as their own, through deltas of both kinds', () => {
  const w0 = syntheticWorld(200);
  // syn0's front network opted out: its containers' addresses there are in peer sets, not in `known`.
  const world: World = { ...w0, networks: w0.networks.map((n) => (n.name === 'syn0_front' ? { ...n, labels: { 'moat.managed': 'false' } } : n)) };
  const plan = compilePlan(world, syntheticPolicies(20, 200));
  const unmanaged = plan.sets.flatMap((x) => x.elements).filter((e) => e.value.startsWith('100.64.0.') && !e.value.includes('/'));
  assert.ok(unmanaged.length > 0, 'addresses on the unmanaged network are in peer sets');
  for (const e of unmanaged) assert.match(e.owner, /^ctr:syn0\//, `${e.value} is owned by its container`);
  const { stats } = run('unmanaged', world, withExtraPolicy(syntheticPolicies(20, 200)), 80, 17, replicaAddress);
  assert.ok(stats.delta >= 20, `container deltas: ${stats.delta}`);
  const mixed = runMixed('unmanaged', world, syntheticPolicies(20, 200), 60, 29, replicaAddress);
  assert.ok(mixed.stats.policyDelta >= 15, `policy deltas: ${mixed.stats.policyDelta}`);
});

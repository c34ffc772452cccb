// The iptables backend's verdict-map dispatch trees: every address of a generated map reaches its
// chain (a small interpreter over the rendered iptables-restore lines, with -j/-g/RETURN
// semantics), O(log n) rules per lookup, valid and stable chain names; then the kernel: the text
// passes iptables-restore/ip6tables-restore --test, a packet to a leaf address is counted in its
// chain, and apply / re-apply / remove leave exactly the chains the plan needs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import ipaddr from 'ipaddr.js';
import type { Family } from '../../../src/model/address.js';
import type { MapElement, PlanChain, PlanRule, RulesetPlan, VerdictMap } from '../../../src/enforce/plan-model.js';
import { DEFAULT_BUCKET, DEFAULT_FANOUT, MAX_DEPTH, dispatchTree } from '../../../src/enforce/backends/iptables/dispatch.js';
import { familyChains, ipsetDefs, iptablesPlan, names, renderRestore, setNamesOf, type IptablesRenderOptions } from '../../../src/enforce/backends/iptables/render.js';
import { IptablesBackend, parseSave } from '../../../src/enforce/backends/iptables/backend.js';
import { canUseNetns, createNetns, deleteNetns, hasTool, inNetns } from './netns.js';
import { compilePlan } from '../../../src/enforce/index.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { syntheticPolicies, syntheticWorld } from '../../../bench/enforce-world.js';

const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));
const kernelSkip = (!canUseNetns() || !hasTool('iptables-restore', ['--version']) || !hasTool('ipset', ['version'])) && 'needs root, iptables and ipset';

// ---------- generated maps ----------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function v4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function v6(hi: bigint, lo: bigint): string {
  const v = (hi << 64n) | lo;
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  return ipaddr.fromByteArray(parts.flatMap((p) => [p >> 8, p & 255])).toString();
}

type Layout = 'docker' | 'sparse' | 'comb';

/** Addresses of one family: Docker-like dense subnets, random ones, or one per bit (a degenerate tree). */
function addresses(family: Family, layout: Layout, count: number, seed: number, base = 0xac120000, base6 = 0xfd00000000000000n): string[] {
  const r = rng(seed);
  const out = new Set<string>();
  if (layout === 'comb') {
    const width = family === 4 ? 32 : 128;
    for (let i = 0; i < Math.min(count, width); i++) out.add(family === 4 ? v4(2 ** i) : v6(i >= 64 ? 1n << BigInt(i - 64) : 0n, i < 64 ? 1n << BigInt(i) : 0n));
    return [...out];
  }
  for (let net = 0; out.size < count && net < count * 20; net++) {
    if (family === 4) {
      // docker: /24 subnets (every third one), each filled from .2 upwards to a random size; sparse: anywhere.
      if (layout === 'docker') {
        const size = 20 + Math.floor(r() * 100);
        for (let i = 0; i < size && out.size < count; i++) out.add(v4(base + net * 256 * 3 + 2 + i));
      } else out.add(v4(Math.floor(r() * 2 ** 32)));
    } else if (layout === 'docker') {
      const size = 10 + Math.floor(r() * 90);
      for (let i = 0; i < size && out.size < count; i++) out.add(v6(base6 + BigInt(net), BigInt(2 + i)));
    } else out.add(v6(BigInt(Math.floor(r() * 2 ** 32)) << 32n | BigInt(Math.floor(r() * 2 ** 32)), BigInt(Math.floor(r() * 2 ** 32)) << 32n | BigInt(Math.floor(r() * 2 ** 32))));
  }
  return [...out];
}

/** A map over the addresses, `identities` chains, a few addresses each (identities share chains). */
function mapOf(name: string, family: Family, addrs: string[], identities: number, prefix: string, seed: number): VerdictMap {
  const r = rng(seed);
  const elements: MapElement[] = addrs.map((key) => {
    const id = Math.floor(r() * identities);
    return { key, chain: `${prefix}_${String(id).padStart(4, '0')}`, owner: `ctr:ns${id}/svc${id}` };
  });
  return { name, family, elements };
}

function identityChains(maps: VerdictMap[]): PlanChain[] {
  const names = [...new Set(maps.flatMap((m) => m.elements.map((e) => e.chain)))].sort();
  return names.map((name) => ({ name, owners: [], rules: [{ matches: [], verdict: { kind: 'accept' }, comment: `id:${name}` }] }));
}

/** A plan with the maps' vmap rules in the base chains, as compile builds them, and opaque identity chains. */
function planOf(maps: { ingress4?: VerdictMap; egress4?: VerdictMap; ingress6?: VerdictMap; egress6?: VerdictMap }, extra: Partial<RulesetPlan> = {}): RulesetPlan {
  const all = Object.values(maps).filter((m): m is VerdictMap => !!m);
  const vm = (which: 'ingress' | 'egress'): PlanRule[] =>
    ([4, 6] as Family[]).map((f) => ({ matches: [], verdict: { kind: 'vmap', dir: which === 'ingress' ? 'dst' : 'src', family: f, map: `${which}${f}` }, comment: `moat:${which}` }));
  const withEmpty = ['ingress4', 'egress4', 'ingress6', 'egress6'].map((n) => all.find((m) => m.name === n) ?? { name: n, family: (n.endsWith('4') ? 4 : 6) as Family, elements: [] });
  return {
    sets: [], maps: withEmpty, nflogGroup: 100, logPrefixes: {}, managedNetworks: [], warnings: [],
    chains: [
      { name: 'egress', hook: 'egress', owners: [], rules: vm('egress') },
      { name: 'ingress', hook: 'ingress', owners: [], rules: vm('ingress') },
      ...identityChains(all),
    ],
    ...extra,
  };
}

const JUMPS = { existingChains: ['INPUT', 'FORWARD', 'OUTPUT'], existingJumps: [] as string[] };

// ---------- an interpreter for the rendered rules ----------

interface Net {
  v6: boolean;
  /** The address shifted right to the prefix length, and the shift. */
  top: bigint;
  shift: bigint;
}

interface Rule {
  src?: Net;
  dst?: Net;
  target: string;
  goto: boolean;
}

interface Addr {
  v6: boolean;
  value: bigint;
}

function addr(text: string): Addr {
  const a = ipaddr.parse(text);
  let value = 0n;
  for (const b of a.toByteArray()) value = (value << 8n) | BigInt(b);
  return { v6: a.kind() === 'ipv6', value };
}

function net(text: string): Net {
  const [a, len] = ipaddr.parseCIDR(text);
  const x = addr(a.toString());
  const shift = BigInt((x.v6 ? 128 : 32) - len);
  return { v6: x.v6, top: x.value >> shift, shift };
}

function parseRules(text: string): Map<string, Rule[]> {
  const chains = new Map<string, Rule[]>();
  for (const line of text.split('\n')) {
    const decl = /^:(\S+) /.exec(line);
    if (decl) chains.set(decl[1], []);
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (!m) continue;
    // Only what dispatch and the synthetic plans use: anything else would be an interpreter gap.
    const rest = m[2].replace(/-m comment --comment "[^"]*" ?/, '');
    const x = /^(?:-s (\S+) )?(?:-d (\S+) )?-([jg]) (\S+)$/.exec(rest.trim());
    assert.ok(x, `interpreter cannot read: ${line}`);
    const rule: Rule = { target: x[4], goto: x[3] === 'g' };
    if (x[1]) rule.src = net(x[1]);
    if (x[2]) rule.dst = net(x[2]);
    chains.get(m[1])!.push(rule);
  }
  return chains;
}

interface Walk {
  /** Identity chains entered, in order. */
  visits: string[];
  /** Rules evaluated. */
  evaluated: number;
  /** Jumps and gotos from the base chain to the deepest chain entered (what nf_tables bounds). */
  depth: number;
}

function inNet(a: Addr, n: Net | undefined): boolean {
  return !n || (a.v6 === n.v6 && a.value >> n.shift === n.top);
}

/** Walks a packet through the chains from `base`; identity chains (`isIdentity`) return at once. */
function walk(chains: Map<string, Rule[]>, base: string, src: string, dst: string, isIdentity: (c: string) => boolean): Walk {
  const s = addr(src);
  const d = addr(dst);
  const out: Walk = { visits: [], evaluated: 0, depth: 0 };
  const stack: { chain: string; i: number; level: number }[] = [];
  let cur: { chain: string; i: number; level: number } | undefined = { chain: base, i: 0, level: 0 };
  for (let steps = 0; cur; steps++) {
    assert.ok(steps < 100_000, 'walk does not end');
    const rules = chains.get(cur.chain);
    assert.ok(rules, `no chain ${cur.chain}`);
    if (cur.i >= rules.length) {
      cur = stack.pop();
      continue;
    }
    const r = rules[cur.i++];
    out.evaluated++;
    if (!inNet(s, r.src) || !inNet(d, r.dst)) continue;
    if (r.target === 'RETURN') {
      cur = stack.pop();
      continue;
    }
    out.depth = Math.max(out.depth, cur.level + 1);
    if (isIdentity(r.target)) {
      out.visits.push(r.target);
      // The identity chain returns: after a goto, to the chain that jumped to this one.
      if (r.goto) cur = stack.pop();
      continue;
    }
    if (!r.goto) stack.push(cur);
    cur = { chain: r.target, i: 0, level: cur.level + 1 };
  }
  return out;
}

function lookup(m: VerdictMap): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of m.elements) if (!out.has(ipaddr.parse(e.key).toString())) out.set(ipaddr.parse(e.key).toString(), e.chain);
  return out;
}

/** Checks every address of the maps (and some outside them) against the interpreter; returns the cost. */
function checkPlan(plan: RulesetPlan, family: Family, options: IptablesRenderOptions = {}): { maxEvaluated: number; meanEvaluated: number; maxDepth: number; text: string } {
  const n = names(options);
  const text = renderRestore(plan, family, JUMPS, [], setNamesOf(ipsetDefs(plan)), options);
  const chains = parseRules(text);
  const planNames = new Set(plan.chains.filter((c) => !c.hook).map((c) => n.chain(c)));
  const isIdentity = (c: string) => planNames.has(c);
  const ing = lookup(plan.maps.find((m) => m.name === `ingress${family}`)!);
  const eg = lookup(plan.maps.find((m) => m.name === `egress${family}`)!);
  const all = [...new Set([...ing.keys(), ...eg.keys()])];
  const outside = addresses(family, 'sparse', 40, 99).filter((a) => !ing.has(a) && !eg.has(a));
  const probe = [...all, ...outside];
  let maxEvaluated = 0;
  let sum = 0;
  let count = 0;
  let maxDepth = 0;
  const r = rng(7);
  for (const a of probe) {
    // ingress (output chain: by destination) and egress (input chain: by source), alone.
    const o = walk(chains, n.chain('output'), outside[0], a, isIdentity);
    assert.deepEqual(o.visits, ing.has(a) ? [n.chain(ing.get(a)!)] : [], `output: ${a}`);
    const i = walk(chains, n.chain('input'), a, outside[0], isIdentity);
    assert.deepEqual(i.visits, eg.has(a) ? [n.chain(eg.get(a)!)] : [], `input: ${a}`);
    // forward: the source's egress chain, then the destination's ingress chain (both return).
    const b = probe[Math.floor(r() * probe.length)];
    const f = walk(chains, n.chain('forward'), a, b, isIdentity);
    const want = [...(eg.has(a) ? [n.chain(eg.get(a)!)] : []), ...(ing.has(b) ? [n.chain(ing.get(b)!)] : [])];
    assert.deepEqual(f.visits, want, `forward: ${a} -> ${b}`);
    for (const w of [o, i]) {
      maxEvaluated = Math.max(maxEvaluated, w.evaluated);
      sum += w.evaluated;
      count++;
      maxDepth = Math.max(maxDepth, w.depth);
    }
  }
  return { maxEvaluated, meanEvaluated: sum / count, maxDepth, text };
}

// ---------- tests without the kernel ----------

test('every address of generated maps dispatches to its chain, in O(log n) rules (IPv4, Docker-like subnets)', () => {
  const ing = mapOf('ingress4', 4, addresses(4, 'docker', 6000, 1), 1600, 'in', 2);
  const eg = mapOf('egress4', 4, addresses(4, 'docker', 4000, 3, 0xac140000), 900, 'eg', 4);
  const plan = planOf({ ingress4: ing, egress4: eg });
  const c = checkPlan(plan, 4);
  // A flat list would walk up to one rule per identity (1,600); the tree walks a few per level.
  assert.ok(c.meanEvaluated < 40, `mean rules per lookup ${c.meanEvaluated}`);
  assert.ok(c.maxEvaluated <= DEFAULT_FANOUT * 5 + DEFAULT_BUCKET + 2, `max rules per lookup ${c.maxEvaluated}`);
  assert.ok(c.maxDepth <= MAX_DEPTH + 1, `depth ${c.maxDepth}`);
  // One rule per address at the leaves, owners as comments, no ipsets for the maps.
  assert.equal((c.text.match(/ -g MOAT-in_\d+$/gm) ?? []).length, ing.elements.length);
  assert.match(c.text, /^-A MOAT-D[0-9a-f]{12} -d 172\.18\.0\.2\/32 -m comment --comment "ctr:ns\d+\/svc\d+" -g MOAT-in_\d{4}$/m);
  assert.match(c.text, /^-A MOAT-D[0-9a-f]{12} -s 172\.20\.0\.2\/32 -m comment --comment "ctr:ns\d+\/svc\d+" -g MOAT-eg_\d{4}$/m);
  assert.doesNotMatch(c.text, /--match-set/);
  assert.deepEqual(ipsetDefs(plan), []);
});

test('random IPv4, IPv6 (dense and random) maps and other tree shapes dispatch correctly', () => {
  const cases: { family: Family; layout: Layout; n: number; options?: IptablesRenderOptions }[] = [
    { family: 4, layout: 'sparse', n: 3000 },
    { family: 6, layout: 'docker', n: 3000 },
    { family: 6, layout: 'sparse', n: 2000 },
    { family: 4, layout: 'docker', n: 2500, options: { dispatch: { fanout: 2, bucket: 1 } } },
    { family: 4, layout: 'docker', n: 2500, options: { dispatch: { fanout: 64, bucket: 4 } } },
    { family: 6, layout: 'sparse', n: 500, options: { dispatch: { fanout: 3, bucket: 2 }, chainPrefix: 'ABCDEFGH' } },
    { family: 4, layout: 'docker', n: 1 },
    { family: 6, layout: 'docker', n: 2 },
  ];
  for (const [k, c] of cases.entries()) {
    const ing = mapOf(`ingress${c.family}`, c.family, addresses(c.family, c.layout, c.n, 10 + k), 300, 'in', 20 + k);
    const eg = mapOf(`egress${c.family}`, c.family, addresses(c.family, c.layout, c.n, 30 + k, c.family === 4 ? 0xac300000 : 0), 200, 'eg', 40 + k);
    const plan = planOf({ [`ingress${c.family}`]: ing, [`egress${c.family}`]: eg });
    const r = checkPlan(plan, c.family, c.options);
    assert.ok(r.maxDepth <= MAX_DEPTH + 1, `case ${k}: depth ${r.maxDepth}`);
    // The other family's rules have no dispatch chain and jump nowhere.
    const other = renderRestore(plan, c.family === 4 ? 6 : 4, JUMPS, [], new Map(), c.options);
    assert.doesNotMatch(other, /-D[0-9a-f]{12}/);
  }
});

test('a degenerate address layout stops at the depth nf_tables allows and still dispatches every address', () => {
  for (const family of [4, 6] as Family[]) {
    const addrs = addresses(family, 'comb', 128, 1);
    const ing = mapOf(`ingress${family}`, family, addrs, 50, 'in', 5);
    const plan = planOf({ [`ingress${family}`]: ing });
    const r = checkPlan(plan, family, { dispatch: { fanout: 2, bucket: 1 } });
    assert.equal(r.maxDepth, MAX_DEPTH + 1, 'the tree is as deep as allowed, no deeper');
  }
});

test('a repeated address keeps its first chain (as the plan does); an empty map renders no rule', () => {
  const plan = planOf({
    ingress4: { name: 'ingress4', family: 4, elements: [
      { key: '10.0.0.5', chain: 'in_a', owner: 'ctr:a' },
      { key: '10.0.0.5', chain: 'in_b', owner: 'ctr:b' },
      { key: '10.0.0.6', chain: 'in_b', owner: 'ctr:b' },
    ] },
  });
  const text = renderRestore(plan, 4, JUMPS, [], new Map());
  const chains = parseRules(text);
  const isId = (c: string) => /^MOAT-in_/.test(c);
  assert.deepEqual(walk(chains, 'MOAT-OUTPUT', '10.9.9.9', '10.0.0.5', isId).visits, ['MOAT-in_a']);
  assert.deepEqual(walk(chains, 'MOAT-OUTPUT', '10.9.9.9', '10.0.0.6', isId).visits, ['MOAT-in_b']);
  assert.equal((text.match(/-d 10\.0\.0\.5\/32/g) ?? []).length, 1);
  assert.doesNotMatch(renderRestore(plan, 6, JUMPS, [], new Map()), /moat:ingress/);
  assert.throws(() => dispatchTree([{ address: '10.0.0.1', target: 'MOAT-x', owner: 'o' }], 6, 'dst', 'MOAT'), /IPv6 map/);
  assert.throws(() => dispatchTree([{ address: '10.0.0.1; flush', target: 'MOAT-x', owner: 'o' }], 4, 'dst', 'MOAT'), /invalid address/);
  assert.throws(() => dispatchTree([{ address: '10.0.0.1', target: 'MOAT x', owner: 'o' }], 4, 'dst', 'MOAT'), /invalid chain name/);
});

test('chain names: valid, within 28 characters, content-derived and stable across renders', () => {
  const addrs = addresses(4, 'docker', 3000, 8);
  const ing = mapOf('ingress4', 4, addrs, 400, 'in', 9);
  const planA = planOf({ ingress4: ing });
  const a = familyChains(planA, 4, { chainPrefix: 'ABCDEFGH' });
  for (const c of a) {
    assert.match(c, /^[A-Za-z][A-Za-z0-9_-]{0,27}$/);
    assert.ok(c.length <= 28);
  }
  assert.ok(a.some((c) => /^ABCDEFGH-D[0-9a-f]{12}$/.test(c)));
  assert.equal(renderRestore(planA, 4, JUMPS, [], new Map()), renderRestore(planOf({ ingress4: mapOf('ingress4', 4, addrs, 400, 'in', 9) }), 4, JUMPS, [], new Map()));
  // One address moved to another identity: only the chains on its path get new names.
  const moved = structuredClone(ing);
  moved.elements[1234].chain = moved.elements[1235].chain === moved.elements[1234].chain ? 'in_9999' : moved.elements[1235].chain;
  const planB = planOf({ ingress4: moved });
  const da = new Set(familyChains(planA, 4).filter((c) => c.includes('-D')));
  const db = familyChains(planB, 4).filter((c) => c.includes('-D'));
  const changed = db.filter((c) => !da.has(c));
  assert.ok(changed.length >= 1 && changed.length <= MAX_DEPTH, `changed dispatch chains: ${changed.length}`);
  const gone = [...da].filter((c) => !db.includes(c));
  assert.equal(gone.length, changed.length, 'the rest keeps its names');
});

test('stale chains: renderRestore keeps the plan\'s chains, deletes the rest, and never deletes what it declares', () => {
  const plan = planOf({ ingress4: mapOf('ingress4', 4, addresses(4, 'docker', 500, 2), 40, 'in', 3) });
  const keep = familyChains(plan, 4);
  const text = renderRestore(plan, 4, JUMPS, [...keep, 'MOAT-Dffffffffffff', 'MOAT-in_old'], new Map());
  assert.deepEqual([...text.matchAll(/^-X (\S+)$/gm)].map((m) => m[1]), ['MOAT-Dffffffffffff', 'MOAT-in_old']);
  for (const c of keep) assert.ok(text.includes(`:${c} - [0:0]\n`));
});

// ---------- the kernel ----------

function save(ns: string, tool: string): string {
  const r = inNetns(ns, tool, ['-c', '-t', 'filter']);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Packets counted by each identity chain's rule, from `iptables-save -c`. */
function counts(text: string, re: RegExp): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^\[(\d+):\d+\] -A (\S+) /gm)) if (re.test(m[2])) out.set(m[2], (out.get(m[2]) ?? 0) + Number(m[1]));
  return out;
}

/** One UDP datagram to each address, sent from inside the netns (loopback only). */
function sendUdp(ns: string, addrs: string[]): void {
  const script = `const d = require('node:dgram');
const list = process.argv.slice(1);
const s4 = d.createSocket('udp4'); const s6 = d.createSocket('udp6');
s4.on('error', () => {}); s6.on('error', () => {});
let left = list.length;
const done = () => { if (--left === 0) { s4.close(); s6.close(); } };
for (const a of list) (a.includes(':') ? s6 : s4).send('x', 9, a, done);
setTimeout(() => process.exit(0), 5000).unref();`;
  const r = inNetns(ns, process.execPath, ['-e', script, ...addrs]);
  assert.equal(r.status, 0, r.stderr);
}

test('the rendered trees pass iptables-restore and ip6tables-restore --test', { skip: kernelSkip }, () => {
  const plan = planOf({
    ingress4: mapOf('ingress4', 4, addresses(4, 'docker', 3000, 1), 500, 'in', 2),
    egress4: mapOf('egress4', 4, addresses(4, 'sparse', 2000, 3), 300, 'eg', 4),
    ingress6: mapOf('ingress6', 6, addresses(6, 'docker', 1500, 5), 500, 'in', 2),
    egress6: mapOf('egress6', 6, addresses(6, 'sparse', 1000, 7), 300, 'eg', 4),
  });
  const ns = createNetns();
  namespaces.push(ns);
  for (const [f, tool] of [[4, 'iptables-restore'], [6, 'ip6tables-restore']] as const) {
    const r = inNetns(ns, tool, ['--noflush', '--test'], renderRestore(plan, f, JUMPS, [], new Map()));
    assert.equal(r.status, 0, r.stderr);
  }
});

test('in the kernel, a packet to a leaf address is counted in its own chain and in no other', { skip: kernelSkip }, () => {
  const ns = createNetns();
  namespaces.push(ns);
  assert.equal(inNetns(ns, 'ip', ['link', 'set', 'lo', 'up']).status, 0);
  // Loopback addresses: 127.0.0.0/8 is local, and fd00:db8:77::/48 is made local inside the netns.
  assert.equal(inNetns(ns, 'ip', ['-6', 'route', 'add', 'local', 'fd00:db8:77::/48', 'dev', 'lo']).status, 0);
  const a4 = addresses(4, 'docker', 2500, 11, 0x7f0a0000);
  const a6 = addresses(6, 'docker', 1200, 12, 0, 0xfd000db800770000n);
  assert.ok(a6.every((a) => a.startsWith('fd00:db8:77:')));
  const plan = planOf({ ingress4: mapOf('ingress4', 4, a4, 700, 'in', 13), ingress6: mapOf('ingress6', 6, a6, 400, 'in', 14) });
  for (const [f, tool, saveTool] of [[4, 'iptables-restore', 'iptables-save'], [6, 'ip6tables-restore', 'ip6tables-save']] as const) {
    const r = inNetns(ns, tool, ['--noflush'], renderRestore(plan, f, JUMPS, [], new Map()));
    assert.equal(r.status, 0, r.stderr);
    const map = plan.maps.find((m) => m.name === `ingress${f}`)!;
    // A sample of addresses whose chains differ, and one address in the range but not in the map.
    const seen = new Set<string>();
    const sample = map.elements.filter((e, i) => i % 37 === 0 && !seen.has(e.chain) && (seen.add(e.chain), true)).slice(0, 25);
    assert.ok(sample.length >= 10);
    const stranger = f === 4 ? '127.10.255.250' : 'fd00:db8:77:ff::fffe';
    assert.ok(!map.elements.some((e) => e.key === stranger));
    sendUdp(ns, [...sample.map((e) => e.key), stranger]);
    const got = counts(save(ns, saveTool), /^MOAT-in_/);
    const want = new Map(sample.map((e) => [`MOAT-${e.chain}`, 1]));
    for (const [chain, n] of got) {
      if (want.has(chain)) assert.ok(n >= 1, `${chain} counted ${n}`);
      else assert.equal(n, 0, `${chain} counted a packet not sent to it`);
    }
    for (const c of want.keys()) assert.ok((got.get(c) ?? 0) >= 1, `IPv${f}: ${c} counted nothing`);
  }
});

test('backend: apply, re-apply with a changed map, and remove leave exactly the chains and ipsets they should', { skip: kernelSkip }, async () => {
  const ns = createNetns();
  namespaces.push(ns);
  const sets = [{ name: 'known4', family: 4 as Family, purpose: 'test', elements: [{ value: '10.1.0.0/16', owner: 'net:x' }] }];
  const rule: PlanRule = { matches: [{ kind: 'set', dir: 'dst', family: 4, set: 'known4' }], verdict: { kind: 'accept' }, comment: 'known' };
  const withSet = (p: RulesetPlan): RulesetPlan => ({ ...p, sets, chains: p.chains.map((c) => (c.name === 'ingress' ? { ...c, rules: [rule, ...c.rules] } : c)) });
  const ingA = mapOf('ingress4', 4, addresses(4, 'docker', 1500, 21, 0x0a010000), 200, 'in', 22);
  const ingB = structuredClone(ingA);
  ingB.elements = ingB.elements.slice(0, 1000);
  ingB.elements[10].chain = 'in_new';
  const a6 = mapOf('egress6', 6, addresses(6, 'docker', 300, 23), 50, 'eg', 24);
  const planA = withSet(planOf({ ingress4: ingA, egress6: a6 }));
  const planB = withSet(planOf({ ingress4: ingB }));
  const be = new IptablesBackend({ netns: ns });
  const chainsIn = async (f: Family) => (await be.familyState(f)).moatChains.sort();
  const ipsets = () => inNetns(ns, 'ipset', ['list', '-n']).stdout.split('\n').filter(Boolean).sort();
  // What the backend says each restore left (the next apply in this process may start from it
  // instead of reading iptables-save) is what iptables-save reads back: chains, jumps, moat's rules.
  const seen = (st: Pick<ReturnType<typeof parseSave>, 'jumps' | 'moatChains' | 'lines'>) => ({
    chains: [...new Set(st.jumps.existingChains)].sort(),
    jumps: [...new Set(st.jumps.existingJumps)].sort(),
    moat: [...st.moatChains].sort(),
    lines: Object.fromEntries(Object.entries(st.lines).sort(([x], [y]) => x.localeCompare(y))),
  });
  const afterIsKernel = (s: Awaited<ReturnType<IptablesBackend['apply']>>, what: string) => {
    for (const f of [4, 6] as Family[]) {
      const real = parseSave(inNetns(ns, f === 4 ? 'iptables-save' : 'ip6tables-save', ['-t', 'filter']).stdout, 'MOAT');
      assert.deepEqual(seen(s.after![f]!.state), seen(real), `${what}, IPv${f}`);
    }
  };

  afterIsKernel(await be.apply(planA), 'first apply');
  assert.deepEqual(await chainsIn(4), familyChains(planA, 4).sort());
  assert.deepEqual(await chainsIn(6), familyChains(planA, 6).sort());
  assert.deepEqual(ipsets(), ipsetDefs(planA).map((d) => d.name).sort());
  // read back reports the plan's chains in iptables' places (MOAT, MOAT-INPUT, MOAT-OUTPUT), not the dispatch chains
  assert.deepEqual(Object.keys((await be.readBack()).chains).sort(), iptablesPlan(planA).chains.map((c) => c.name).sort());
  // the same plan again changes nothing
  const before = inNetns(ns, 'iptables-save', ['-t', 'filter']).stdout.replace(/^#.*\n/gm, '');
  const again = await be.apply(planA);
  afterIsKernel(again, 'the same plan again');
  assert.ok(!again.after![4]!.changes && !again.after![6]!.changes, 'nothing to commit');
  assert.equal(inNetns(ns, 'iptables-save', ['-t', 'filter']).stdout.replace(/^#.*\n/gm, ''), before);
  // Every chain holds its rules already, as iptables-save prints them: none is declared (flushed) or sent.
  assert.doesNotMatch(`${again.v4}${again.v6 ?? ''}`, /^(:|-A )/m);
  // `full` (moat apply --full) declares and fills every chain all the same.
  const whole = await be.apply(planA, { full: true });
  assert.equal(whole.v4.split('\n').filter((l) => l.startsWith(':')).length, familyChains(planA, 4).length);
  assert.equal(inNetns(ns, 'iptables-save', ['-t', 'filter']).stdout.replace(/^#.*\n/gm, ''), before);

  const sent = await be.apply(planB);
  afterIsKernel(sent, 'a changed map');
  assert.ok(sent.after![4]!.changes);
  // Only the chains whose rules changed are sent; the kernel then holds what a fresh apply gives.
  const declared = (text: string) => text.split('\n').filter((l) => l.startsWith(':')).length;
  assert.ok(declared(sent.v4) > 0 && declared(sent.v4) < familyChains(planB, 4).length, `${declared(sent.v4)} of ${familyChains(planB, 4).length} chains sent`);
  const fresh = createNetns();
  namespaces.push(fresh);
  await new IptablesBackend({ netns: fresh }).apply(planB);
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const state = (n: string) => {
      const st = parseSave(inNetns(n, tool, ['-t', 'filter']).stdout, 'MOAT');
      return { chains: [...st.moatChains].sort(), lines: Object.fromEntries(Object.entries(st.lines).sort(([a], [b]) => a.localeCompare(b))), jumps: st.jumps.existingJumps.filter((j) => j.includes('MOAT')).sort() };
    };
    assert.deepEqual(state(ns), state(fresh), tool);
  }
  const b4 = await chainsIn(4);
  assert.deepEqual(b4, familyChains(planB, 4).sort(), 'stale dispatch and identity chains are gone');
  assert.deepEqual(await chainsIn(6), familyChains(planB, 6).sort());
  assert.ok(familyChains(planA, 4).some((c) => c.includes('-D') && !b4.includes(c)), 'some dispatch chains were replaced');
  const text = inNetns(ns, 'iptables-save', ['-t', 'filter']).stdout;
  assert.match(text, /-g MOAT-in_new/);
  assert.deepEqual(parseSave(text, 'MOAT').sets, [ipsetDefs(planB)[0].name], 'the rules use the plan set, no map ipsets');
  // A set's members changed: a new ipset (names are content-addressed); the old one is destroyed.
  const planC: RulesetPlan = { ...planB, sets: [{ ...sets[0], elements: [...sets[0].elements, { value: '10.9.0.0/16', owner: 'net:y' }] }] };
  assert.notEqual(ipsetDefs(planC)[0].name, ipsetDefs(planB)[0].name);
  afterIsKernel(await be.apply(planC), 'a set with other members');
  assert.deepEqual(ipsets(), ipsetDefs(planC).map((d) => d.name).sort(), 'only the plan\'s ipsets are left');

  await be.remove();
  assert.deepEqual(await chainsIn(4), []);
  assert.deepEqual(await chainsIn(6), []);
  assert.deepEqual(ipsets(), []);
  assert.doesNotMatch(inNetns(ns, 'iptables-save', []).stdout, /MOAT/);
  assert.doesNotMatch(inNetns(ns, 'ip6tables-save', []).stdout, /MOAT/);
});

test('in the kernel: every rule form reads back from iptables-save exactly as rendered, so re-applying a plan sends no chain', { skip: kernelSkip }, async () => {
  const dual = threeTierWorld();
  for (const nw of dual.networks) if (nw.name === 'shop_backend') (nw.enableIPv6 = true), (nw.subnets = [...nw.subnets, 'fd00:28:2::/64']);
  dual.endpoints.forEach((e, i) => e.attachments.forEach((a) => a.network === 'shop_backend' && (a.ipv6 = `fd00:28:2::${10 + i}`)));
  const plans: [string, RulesetPlan][] = [
    ['three-tier, dual stack (allowlists, published ports, ND, host rules, logged drops)', compilePlan(dual, threeTierPolicies())],
    ['a synthetic host (CIDR peers with exceptions, port lists, named ports)', compilePlan(syntheticWorld(300), syntheticPolicies(30, 300))],
  ];
  for (const [what, plan] of plans) {
    const ns = createNetns();
    namespaces.push(ns);
    const be = new IptablesBackend({ netns: ns });
    const first = await be.apply(plan);
    assert.match(first.v4, /^-A /m, what);
    const again = await be.apply(plan);
    const sent = `${again.v4}${again.v6 ?? ''}`.split('\n').filter((l) => /^(:|-A )/.test(l));
    assert.deepEqual(sent, [], `${what}: rules that read back otherwise than rendered`);
  }
});

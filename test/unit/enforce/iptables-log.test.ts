// The iptables backend's logged drops: each drop rule's matches are evaluated once (the rule goes to a
// shared log chain per NFLOG prefix: NFLOG, then DROP) instead of in an NFLOG rule and again in a
// DROP rule. Rendered text first (three-tier example and synthetic plans), then the kernel: a packet
// matching a logged drop is dropped and counted once by its rule, the others pass, read-back reports
// the plan's rules once each, and re-apply / remove leave exactly the log chains the plan needs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Family } from '../../../src/model/address.js';
import { compilePlan } from '../../../src/enforce/index.js';
import type { PlanRule, RulesetPlan } from '../../../src/enforce/plan-model.js';
import { familyChains, ipsetDefs, logChainPattern, logChains, names, renderRestore, setNamesOf } from '../../../src/enforce/backends/iptables/render.js';
import { IptablesBackend } from '../../../src/enforce/backends/iptables/backend.js';
import { safeLogPrefix } from '../../../src/enforce/validate.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { canUseNetns, createNetns, deleteNetns, hasTool, inNetns } from './netns.js';

const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));
const kernelSkip = (!canUseNetns() || !hasTool('iptables-restore', ['--version']) || !hasTool('ipset', ['version'])) && 'needs root, iptables and ipset';
const JUMPS = { existingChains: ['INPUT', 'FORWARD', 'OUTPUT', 'DOCKER-USER'], existingJumps: ['FORWARD>DOCKER-USER'] };

/** `-A` lines by chain: [rule head without the target, target kind, target]. */
function rulesByChain(text: string): Map<string, { head: string; how: string; target: string; line: string }[]> {
  const out = new Map<string, { head: string; how: string; target: string; line: string }[]>();
  for (const line of text.split('\n')) {
    const decl = /^:(\S+) /.exec(line);
    if (decl) out.set(decl[1], []);
    const m = /^-A (\S+) (.*?) ?-([jg]) (\S+)(?: .*)?$/.exec(line);
    if (!m) continue;
    out.get(m[1])!.push({ head: m[2], how: m[3], target: m[4], line });
  }
  return out;
}

/** Checks the shape of a rendered family; returns the log chains' prefixes by chain name. */
function checkLogged(plan: RulesetPlan, family: Family, text: string, chainPrefix = 'MOAT'): Map<string, string> {
  const n = names({ chainPrefix });
  const chains = rulesByChain(text);
  const isLog = (c: string) => logChainPattern(chainPrefix).test(c);
  const prefixes = new Map<string, string>();
  for (const [c, rules] of chains) {
    if (!isLog(c)) continue;
    // A log chain: NFLOG with the plan's group, then DROP, nothing else.
    assert.equal(rules.length, 2, `${c}: ${rules.map((r) => r.line).join(' | ')}`);
    const nflog = new RegExp(`^-A ${c} -j NFLOG --nflog-prefix "([^"]+)" --nflog-group ${plan.nflogGroup}$`).exec(rules[0].line);
    assert.ok(nflog, rules[0].line);
    assert.equal(rules[1].line, `-A ${c} -j DROP`);
    prefixes.set(c, nflog[1]);
  }
  for (const [c, rules] of chains) {
    if (isLog(c)) continue;
    // NFLOG outside log chains only for drops without matches (nothing to evaluate twice), right
    // before their DROP; every rule head with matches once per chain.
    const bare = (h: string) => /^-m comment --comment "[^"]*"$/.test(h);
    rules.forEach((r, i) => {
      if (r.target !== 'NFLOG') return;
      assert.ok(bare(r.head), `a rule with matches logs in place: ${r.line}`);
      assert.deepEqual([rules[i + 1]?.head, rules[i + 1]?.target], [r.head, 'DROP'], r.line);
    });
    const heads = rules.map((r) => r.head).filter((h) => !bare(h));
    assert.equal(new Set(heads).size, heads.length, `${c}: a rule's matches are rendered twice`);
    for (const r of rules) if (isLog(r.target)) assert.equal(r.how, 'g', r.line);
  }
  // Each logged drop of the plan: one rule per match alternative, going to the chain of its prefix.
  let logged = 0;
  for (const pc of plan.chains) {
    const rules = chains.get(n.chain(pc)) ?? [];
    for (const r of pc.rules) {
      if (r.verdict.kind !== 'drop' || !r.log) continue;
      const mine = rules.filter((x) => x.head.endsWith(`-m comment --comment "${r.comment}"`) && isLog(x.target));
      if (mine.length === 0) continue;
      logged++;
      for (const x of mine) assert.equal(prefixes.get(x.target), safeLogPrefix(r.log), x.line);
    }
  }
  // Every log chain is used, and the chains this family keeps are exactly what familyChains says.
  const used = new Set([...chains.values()].flatMap((rs) => rs.map((r) => r.target)));
  for (const c of prefixes.keys()) assert.ok(used.has(c), `${c} unused`);
  assert.ok(logged > 0 || prefixes.size === 0);
  return prefixes;
}

test('three-tier: every logged drop evaluates its matches once and goes to the log chain of its prefix', () => {
  const plan = compilePlan(threeTierWorld(), threeTierPolicies());
  const defs = ipsetDefs(plan);
  for (const f of [4, 6] as Family[]) {
    const text = renderRestore(plan, f, JUMPS, [], setNamesOf(defs));
    const prefixes = checkLogged(plan, f, text);
    assert.ok(prefixes.size >= 3, `IPv${f}: ${prefixes.size} log chains`);
    // One chain per distinct prefix.
    assert.equal(new Set(prefixes.values()).size, prefixes.size);
    // The fail-closed pair: each of its ipset lookups appears once per base chain, not twice.
    const fc = [...text.matchAll(/^-A MOAT -m set ! --match-set \S+ src -m set --match-set \S+ src /gm)];
    assert.equal(fc.length, 1);
    const bareDrops = plan.chains.flatMap((c) => c.rules).filter((r) => r.verdict.kind === 'drop' && r.log && r.matches.length === 0).length;
    assert.ok(bareDrops > 0);
    assert.equal((text.match(/--nflog-prefix/g) ?? []).length, prefixes.size + bareDrops, 'each prefix with matches rendered once, in its log chain');
    for (const c of prefixes.keys()) assert.ok(familyChains(plan, f).includes(c));
  }
});

function rule(matches: PlanRule['matches'], comment: string, log?: string): PlanRule {
  return { matches, verdict: { kind: 'drop' }, counter: true, comment, ...(log ? { log } : {}) };
}

function testPlan(logA: string): RulesetPlan {
  const sets = [
    { name: 'bad4', family: 4 as Family, purpose: 'test', elements: [{ value: '127.0.0.66/32', owner: 'net:t' }] },
    { name: 'other4', family: 4 as Family, purpose: 'test', elements: [{ value: '127.0.0.88/32', owner: 'net:t' }] },
    { name: 'bad6', family: 6 as Family, purpose: 'test', elements: [{ value: 'fd00:db8:66::/64', owner: 'net:t' }] },
  ];
  const output: PlanRule[] = [
    rule([{ kind: 'set', dir: 'dst', family: 4, set: 'bad4' }, { kind: 'l4', proto: 'udp', ports: [[9, 9]] }], 'policy:a', logA),
    rule([{ kind: 'set', dir: 'dst', family: 4, set: 'bad4' }], 'policy:b', 'moat:deny:eg:t/b'),
    rule([{ kind: 'set', dir: 'dst', family: 4, set: 'other4' }], 'policy:c'),
    rule([{ kind: 'set', dir: 'dst', family: 6, set: 'bad6' }], 'policy:v6', 'moat:deny:eg:t/v6'),
    // The same prefix as rule b: one log chain for both.
    rule([{ kind: 'set', dir: 'dst', family: 4, set: 'other4' }, { kind: 'l4', proto: 'tcp' }], 'policy:b2', 'moat:deny:eg:t/b'),
  ];
  return {
    sets, maps: [], nflogGroup: 100, logPrefixes: {}, managedNetworks: [], warnings: [],
    chains: [
      // Already in iptables' shape (render.ts iptablesPlan), so that the drop without matches is in
      // FORWARD only. No matches: stays NFLOG + DROP (forward: the test's packets stay on loopback).
      { name: 'forward', owners: [], rules: [rule([], 'isolated-by:t', 'moat:iso:in:t')] },
      { name: 'input', owners: [], rules: [] },
      { name: 'output', owners: [], rules: output },
    ],
  };
}

test('log chains: one per prefix and family, valid names within 28 characters, stale ones deleted', () => {
  const plan = testPlan('moat:deny:eg:t/a');
  const l4 = logChains(plan, 4, { chainPrefix: 'ABCDEFGH' });
  assert.deepEqual([...l4.keys()].sort(), ['moat:deny:eg:t/a', 'moat:deny:eg:t/b']);
  assert.equal(new Set([...l4.values()].map((c) => c.name)).size, 2);
  for (const c of l4.values()) {
    assert.match(c.name, /^ABCDEFGH-L[0-9a-f]{12}$/);
    assert.ok(c.name.length <= 28);
  }
  assert.deepEqual([...logChains(plan, 6).keys()], ['moat:deny:eg:t/v6'], 'only the rules with matches that render in the family');
  assert.match(renderRestore(plan, 4, JUMPS, [], setNamesOf(ipsetDefs(plan))), /^-A MOAT -m comment --comment "isolated-by:t" -j NFLOG --nflog-prefix "moat:iso:in:t" --nflog-group 100\n-A MOAT -m comment --comment "isolated-by:t" -j DROP$/m);
  const defs = setNamesOf(ipsetDefs(plan));
  checkLogged(plan, 4, renderRestore(plan, 4, JUMPS, [], defs));
  checkLogged(plan, 6, renderRestore(plan, 6, JUMPS, [], defs));
  // Prefixes that are the same once made safe share a chain, rendered once.
  const twin = testPlan('moat:deny:eg:t/b ');
  assert.equal(safeLogPrefix('moat:deny:eg:t/b '), safeLogPrefix('moat:deny:eg:t/b'));
  const lt = logChains(twin, 4);
  assert.equal(lt.size, 2);
  assert.equal(lt.get('moat:deny:eg:t/b ')!.name, lt.get('moat:deny:eg:t/b')!.name);
  const text = renderRestore(twin, 4, JUMPS, [], defs);
  assert.equal((text.match(/--nflog-prefix "moat:deny:eg:t\/b"/g) ?? []).length, 1);
  assert.equal(checkLogged(twin, 4, text).size, 1);
  // Names follow the content (group and prefix), not the rules that use them.
  const regrouped = { ...plan, nflogGroup: 7 };
  assert.notEqual(logChains(regrouped, 4).get('moat:deny:eg:t/b')!.name, logChains(plan, 4).get('moat:deny:eg:t/b')!.name);
  assert.equal(logChains(testPlan('moat:deny:eg:t/z'), 4).get('moat:deny:eg:t/b')!.name, logChains(plan, 4).get('moat:deny:eg:t/b')!.name);
  // A log chain no longer used is deleted; those in use are declared, never deleted.
  const keep = familyChains(plan, 4);
  const stale = renderRestore(plan, 4, JUMPS, [...keep, 'MOAT-Lffffffffffff'], defs);
  assert.deepEqual([...stale.matchAll(/^-X (\S+)$/gm)].map((m) => m[1]), ['MOAT-Lffffffffffff']);
  for (const c of keep) assert.ok(stale.includes(`:${c} - [0:0]\n`));
  assert.ok(names().isHelper('MOAT-Lffffffffffff') && names().isHelper('MOAT-Dffffffffffff') && !names().isHelper('MOAT-in_ffffffffff'));
});

/** Packets per rule of moat's chains from `iptables-save -c`, as [chain, rule text, packets]. */
function counted(ns: string): { chain: string; rule: string; pkts: number }[] {
  const r = inNetns(ns, 'iptables-save', ['-c', '-t', 'filter']);
  assert.equal(r.status, 0, r.stderr);
  return [...r.stdout.matchAll(/^\[(\d+):\d+\] -A (MOAT\S*) (.*)$/gm)].map((m) => ({ chain: m[2], rule: m[3], pkts: Number(m[1]) }));
}

/** Sends one UDP datagram to each target from inside the netns; returns the targets that received one. */
function udpProbe(ns: string, listen: string[], send: string[]): string[] {
  const script = `const d = require('node:dgram');
const [listen, send] = JSON.parse(process.argv[1]);
const got = new Set();
let bound = 0;
const socks = listen.map((t) => { const [a, p] = t.split(' '); const s = d.createSocket('udp4'); s.on('message', () => got.add(t)); s.on('error', () => {}); s.bind(Number(p), a, () => { if (++bound === listen.length) go(); }); return s; });
const out = d.createSocket('udp4'); out.on('error', () => {});
function go() {
  let left = send.length;
  for (const t of send) { const [a, p] = t.split(' '); out.send('x', Number(p), a, () => { if (--left === 0) setTimeout(done, 300); }); }
}
function done() { console.log(JSON.stringify([...got].sort())); out.close(); socks.forEach((s) => s.close()); }
setTimeout(() => process.exit(3), 5000).unref();`;
  const r = inNetns(ns, process.execPath, ['-e', script, JSON.stringify([listen, send])]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('in the kernel, a packet matching a logged drop is dropped and counted once; re-apply and remove keep the log chains exact', { skip: kernelSkip }, async () => {
  const ns = createNetns();
  namespaces.push(ns);
  assert.equal(inNetns(ns, 'ip', ['link', 'set', 'lo', 'up']).status, 0);
  const be = new IptablesBackend({ netns: ns });
  const planA = testPlan('moat:deny:eg:t/a');
  await be.apply(planA);
  const la = logChains(planA, 4);
  const chainA = la.get('moat:deny:eg:t/a')!.name;
  const chainB = la.get('moat:deny:eg:t/b')!.name;
  assert.deepEqual((await be.familyState(4)).moatChains.sort(), familyChains(planA, 4).sort());
  assert.deepEqual((await be.familyState(6)).moatChains.sort(), familyChains(planA, 6).sort());

  // 127.0.0.66:9 matches rule a (udp 9), 127.0.0.66:10 rule b; 127.0.0.77 nothing: only it arrives.
  const targets = ['127.0.0.66 9', '127.0.0.66 10', '127.0.0.77 9'];
  assert.deepEqual(udpProbe(ns, targets, targets), ['127.0.0.77 9']);
  const c = counted(ns);
  const of = (chain: string, re: RegExp) => c.filter((x) => x.chain === chain && re.test(x.rule));
  const ruleA = of('MOAT-OUTPUT', /--comment "?policy:a"? /);
  const ruleB = of('MOAT-OUTPUT', /--comment "?policy:b"? /);
  // One rule per drop, going to its log chain, counting the drop once.
  assert.equal(ruleA.length, 1, JSON.stringify(c));
  assert.match(ruleA[0].rule, new RegExp(` -g ${chainA}$`));
  assert.equal(ruleA[0].pkts, 1);
  assert.equal(ruleB.length, 1);
  assert.match(ruleB[0].rule, new RegExp(` -g ${chainB}$`));
  assert.equal(ruleB[0].pkts, 1);
  assert.equal(of('MOAT-OUTPUT', /policy:c/)[0].pkts, 0);
  // The log chains: NFLOG then DROP, each having seen its one packet.
  for (const ch of [chainA, chainB]) {
    const rs = c.filter((x) => x.chain === ch);
    assert.equal(rs.length, 2);
    assert.match(rs[0].rule, /-j NFLOG --nflog-prefix/);
    assert.match(rs[1].rule, /^-j DROP$/);
    assert.deepEqual(rs.map((x) => x.pkts), [1, 1], ch);
  }
  assert.ok(!c.some((x) => x.chain === 'MOAT-OUTPUT' && /NFLOG/.test(x.rule)), 'no NFLOG left in the plan chain');
  assert.match(of('MOAT-OUTPUT', /policy:c/)[0].rule, / -j DROP$/, 'a drop without a log prefix stays a DROP');

  // Read-back: the plan's chains, each rule once (log chains are part of their drop rules).
  const rb = await be.readBack();
  assert.deepEqual(Object.keys(rb.chains).sort(), ['forward', 'input', 'output']);
  assert.deepEqual(rb.chains.output, ['policy:a', 'policy:b', 'policy:c', 'policy:b2']);

  // Re-apply with rule a's prefix changed: its old log chain goes, b's stays, the new one is there.
  const planB = testPlan('moat:deny:eg:t/z');
  await be.apply(planB);
  const after4 = (await be.familyState(4)).moatChains.sort();
  assert.deepEqual(after4, familyChains(planB, 4).sort());
  assert.ok(!after4.includes(chainA) && after4.includes(chainB) && after4.includes(logChains(planB, 4).get('moat:deny:eg:t/z')!.name));
  assert.deepEqual(udpProbe(ns, targets, targets), ['127.0.0.77 9'], 'still dropped after re-apply');

  await be.remove();
  assert.deepEqual((await be.familyState(4)).moatChains, []);
  assert.deepEqual((await be.familyState(6)).moatChains, []);
  assert.doesNotMatch(inNetns(ns, 'iptables-save', []).stdout, /MOAT/);
  assert.doesNotMatch(inNetns(ns, 'ip6tables-save', []).stdout, /MOAT/);
  assert.deepEqual(udpProbe(ns, targets, targets), targets.slice().sort(), 'everything arrives once moat is gone');
});

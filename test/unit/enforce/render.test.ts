import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePlan } from '../../../src/enforce/index.js';
import { currentPlanShape, type RulesetPlan } from '../../../src/enforce/plan-model.js';
import { chainComment, renderReplace } from '../../../src/enforce/backends/nft/render.js';
import { ipsetDefs, renderIpsets, renderRestore, setNamesOf } from '../../../src/enforce/backends/iptables/render.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { syntheticPolicies, syntheticWorld } from '../../../bench/enforce-world.js';
import { canUseNetns, createNetns, deleteNetns, hasTool, inNetns } from './netns.js';

const FIX = 'test/fixtures/enforce';
const update = process.env.UPDATE_GOLDEN === '1';

function golden(name: string, actual: string): void {
  const file = join(FIX, name);
  if (update || !existsSync(file)) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from the golden file (UPDATE_GOLDEN=1 to accept)`);
}

const namespaces: string[] = [];
after(() => namespaces.forEach(deleteNetns));

const plan = compilePlan(threeTierWorld(), threeTierPolicies());
const jumps = { existingChains: ['INPUT', 'FORWARD', 'OUTPUT', 'DOCKER-USER'], existingJumps: ['FORWARD>DOCKER-USER'] };

test('nft ruleset of the three-tier example matches the golden file and passes nft -c', { skip: !canUseNetns() && 'needs root and nft' }, () => {
  const script = renderReplace(plan, { table: 'moat' });
  golden('three-tier.nft', script);
  const ns = createNetns();
  namespaces.push(ns);
  const r = inNetns(ns, 'nft', ['-c', '-f', '-'], script);
  assert.equal(r.status, 0, r.stderr);
});

test('the nft ruleset isolates and allows what the policy says', () => {
  const script = renderReplace(plan, { table: 'moat' });
  // mysql: ingress only from the backend group (api-server's addresses), egress to internet denied.
  const mysqlIn = plan.maps.find((m) => m.name === 'ingress4')!.elements.find((e) => e.key === '172.28.2.30')!.chain;
  const chain = plan.chains.find((c) => c.name === mysqlIn)!;
  assert.equal(chain.rules.at(-1)!.verdict.kind, 'drop');
  const allowSet = chain.rules[0].matches[0];
  assert.equal(allowSet.kind, 'set');
  const set = plan.sets.find((s) => allowSet.kind === 'set' && s.name === allowSet.set)!;
  assert.deepEqual(set.elements.map((e) => e.value).sort(), ['172.28.1.20', '172.28.2.20']);
  // The first rule of each base chain accepts established traffic (after the chain's comment).
  assert.match(script, /chain egress \{\n\t\ttype filter hook prerouting priority filter - 10; policy accept;\n\t\tcomment "moat:egress"\n\t\tct state established,related accept/);
  assert.match(script, /chain ingress \{\n\t\ttype filter hook postrouting priority filter - 10; policy accept;\n\t\tcomment "moat:ingress"\n\t\tct state established,related accept/);
  assert.match(script, /ip daddr != @notinet4 fib daddr type != local counter log prefix "moat:deny:eg:label:shop\/mysql" group 100 drop/);
  // The allowlist of one CIDR is written into the rule.
  assert.match(script, /ct status dnat meta l4proto tcp ct original proto-dst 80 ip saddr 198\.18\.5\.0\/24 return/);
});

test('iptables ruleset matches the golden file and passes iptables-restore --test', { skip: (!canUseNetns() || !hasTool('ipset', ['version'])) && 'needs root, iptables and ipset' }, () => {
  const defs = ipsetDefs(plan);
  const ipset = renderIpsets(defs);
  const v4 = renderRestore(plan, 4, jumps, [], setNamesOf(defs));
  const v6 = renderRestore(plan, 6, jumps, [], setNamesOf(defs));
  golden('three-tier.ipset', ipset);
  golden('three-tier.iptables', v4);
  golden('three-tier.ip6tables', v6);
  const ns = createNetns();
  namespaces.push(ns);
  for (const t of ['iptables', 'ip6tables']) {
    assert.equal(inNetns(ns, t, ['-N', 'DOCKER-USER']).status, 0);
  }
  let r = inNetns(ns, 'ipset', ['restore'], ipset);
  assert.equal(r.status, 0, r.stderr);
  r = inNetns(ns, 'iptables-restore', ['--noflush', '--test'], v4);
  assert.equal(r.status, 0, r.stderr);
  r = inNetns(ns, 'ip6tables-restore', ['--noflush', '--test'], v6);
  assert.equal(r.status, 0, r.stderr);
});

test('iptables never accepts (RETURN only), so Docker keeps its own rules', () => {
  const defs = ipsetDefs(plan);
  const v4 = renderRestore(plan, 4, jumps, [], setNamesOf(defs));
  assert.doesNotMatch(v4, /-j ACCEPT/);
  assert.match(v4, /-I DOCKER-USER 1 -j MOAT\n/);
  const present = renderRestore(plan, 4, { ...jumps, existingJumps: [...jumps.existingJumps, 'DOCKER-USER>MOAT'] }, [], setNamesOf(defs));
  assert.doesNotMatch(present, /-I DOCKER-USER/);
});

test('a per-identity chain names each of its policies once in its comment', () => {
  const rule = (comment: string) => ({ matches: [], verdict: { kind: 'drop' as const }, comment });
  const c = { name: 'in_x', owners: [], rules: [rule('policy:a'), rule('policy:b'), rule('isolated-by:a,b'), rule('allowlist:c')] };
  assert.equal(chainComment(c), 'identity of a,b,c');
  assert.equal(chainComment({ ...c, hook: 'egress' as const }), 'moat:in_x');
});

test('a plan recorded by an earlier moat (forward, input, output) renders like the current one', () => {
  // The earlier shape, rebuilt from the current plan: forward held both directions' rules, input
  // exactly the egress rules, output exactly the ingress rules.
  const egress = plan.chains.find((c) => c.hook === 'egress')!;
  const ingress = plan.chains.find((c) => c.hook === 'ingress')!;
  const legacyHook = (h: string) => h as unknown as 'egress';
  const legacy: RulesetPlan = {
    ...plan,
    chains: [
      { name: 'forward', hook: legacyHook('forward'), owners: [], rules: [...egress.rules, ...ingress.rules.slice(2)] },
      { name: 'input', hook: legacyHook('input'), owners: [], rules: egress.rules },
      { name: 'output', hook: legacyHook('output'), owners: [], rules: ingress.rules },
      ...plan.chains.filter((c) => !c.hook),
    ],
  };
  const upgraded = currentPlanShape(JSON.parse(JSON.stringify(legacy)) as RulesetPlan);
  assert.equal(renderReplace(upgraded, { table: 'moat' }), renderReplace(plan, { table: 'moat' }));
  // A current plan is left as it is.
  assert.equal(currentPlanShape(plan), plan);
});

test('a CIDR peer with one exception is written into the rules (nft: two comparisons; iptables: -s and -m iprange), and both kernels take it', { skip: (!canUseNetns() || !hasTool('ipset', ['version'])) && 'needs root, nft, iptables and ipset' }, () => {
  const p = compilePlan(syntheticWorld(200), syntheticPolicies(20, 200));
  const inline = p.chains.flatMap((c) => c.rules).filter((r) => r.matches.some((m) => m.kind === 'cidr' && m.negate));
  assert.ok(inline.length > 0, 'rules with a CIDR and its exception');
  assert.ok(!p.sets.some((x) => x.elements.length === 1 && x.elements[0].value === '100.64.0.0/10'), 'no set of the one CIDR');
  const script = renderReplace(p, { table: 'moatcidr' });
  assert.match(script, /ip saddr 100\.64\.0\.0\/10 ip saddr != 100\.6\d\.\d+\.0\/24 meta l4proto tcp th dport 900\d-9100 return/);
  const defs = ipsetDefs(p);
  const v4 = renderRestore(p, 4, jumps, [], setNamesOf(defs));
  assert.match(v4, /-s 100\.64\.0\.0\/10 (-p tcp )?-m iprange ! --src-range 100\.6\d\.\d+\.0-100\.6\d\.\d+\.255 /);
  const ns = createNetns();
  namespaces.push(ns);
  let r = inNetns(ns, 'nft', ['-f', '-'], script);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(inNetns(ns, 'iptables', ['-N', 'DOCKER-USER']).status, 0);
  r = inNetns(ns, 'ipset', ['restore'], renderIpsets(defs));
  assert.equal(r.status, 0, r.stderr);
  r = inNetns(ns, 'iptables-restore', ['--noflush'], v4);
  assert.equal(r.status, 0, r.stderr);
  const saved = inNetns(ns, 'iptables', ['-S']).stdout;
  assert.match(saved, /-s 100\.64\.0\.0\/10 .*-m iprange ! --src-range 100\.6\d\.\d+\.0-100\.6\d\.\d+\.255/);
});

test('every known address is in both maps (goto its chain, accept without one); fail-closed comes after them; iptables keeps its known ipsets ahead of the trees', () => {
  // The three-tier world with its bridges' gateways and one container no policy selects (no rules either way).
  const w = threeTierWorld();
  w.networks = w.networks.map((n, i) => ({ ...n, gateways: [i === 0 ? '172.28.1.1' : '172.28.2.1'] }));
  w.endpoints.push({ ...w.endpoints[3], id: 'shop/tool', name: 'tool', composeService: 'tool', containerName: 'shop-tool-1', labels: {}, attachments: [{ network: 'shop_backend', ipv4: '172.28.2.50' }], declaredPorts: [] });
  const p = compilePlan(w, threeTierPolicies());
  assert.ok(!p.sets.some((s) => s.name.startsWith('known')), 'no known-address sets in the plan');
  for (const name of ['ingress4', 'egress4']) {
    const m = new Map(p.maps.find((x) => x.name === name)!.elements.map((e) => [e.key, e]));
    for (const a of ['172.28.1.10', '172.28.1.20', '172.28.2.20', '172.28.2.30', '172.28.2.40']) assert.match(m.get(a)?.chain ?? '', /^(in|eg)_/, `${name} ${a}`);
    assert.deepEqual([m.get('172.28.2.50')?.chain, m.get('172.28.2.50')?.owner], ['', 'ctr:shop/tool']);
    assert.deepEqual([m.get('172.28.1.1')?.chain, m.get('172.28.1.1')?.owner], ['', 'net:shop_frontend']);
    assert.equal(m.size, 8);
  }
  const script = renderReplace(p, { table: 'moat' });
  assert.match(script, /172\.28\.2\.50 comment "ctr:shop\/tool" : accept/);
  assert.match(script, /172\.28\.2\.1 comment "net:shop_backend" : accept/);
  assert.match(script, /172\.28\.2\.30 comment "ctr:shop\/mysql" : goto in_/);
  assert.doesNotMatch(script, /: jump /);
  assert.match(script, /ip saddr vmap @egress4 comment "moat:egress"\n\t\tip6 saddr vmap @egress6 comment "moat:egress"\n\t\tip saddr @managed4 counter log prefix "moat:failclosed:src:unknown-address" group 100 drop/);
  assert.match(script, /ip daddr vmap @ingress4 comment "moat:ingress"\n\t\tip6 daddr vmap @ingress6 comment "moat:ingress"\n\t\tip daddr @managed4 counter log prefix "moat:failclosed:dst:unknown-address" group 100 drop/);

  // iptables: a known ipset of all eight addresses, the fail-closed pair ahead of the dispatch jump,
  // and no dispatch rule for an address without a chain.
  const defs = ipsetDefs(p);
  const known = defs.find((d) => d.key === 'known4')!;
  assert.deepEqual(known.entries.map((e) => e.value).sort(), ['172.28.1.1', '172.28.1.10', '172.28.1.20', '172.28.2.1', '172.28.2.20', '172.28.2.30', '172.28.2.40', '172.28.2.50']);
  const v4 = renderRestore(p, 4, jumps, [], setNamesOf(defs));
  const lines = v4.split('\n').filter((l) => l.startsWith('-A MOAT '));
  const fcSrc = lines.findIndex((l) => l.includes(`! --match-set ${known.name} src`) && l.includes('moat:fail-closed-src'));
  const egressJump = lines.findIndex((l) => l.includes('"moat:egress"'));
  const fcDst = lines.findIndex((l) => l.includes(`! --match-set ${known.name} dst`) && l.includes('moat:fail-closed-dst'));
  const ingressJump = lines.findIndex((l) => l.includes('"moat:ingress"'));
  assert.ok(fcSrc >= 0 && fcSrc < egressJump && egressJump < fcDst && fcDst < ingressJump, lines.join('\n'));
  assert.doesNotMatch(v4, /172\.28\.2\.50\/32|172\.28\.1\.1\/32/, 'no dispatch rule for an address without a chain');
  assert.match(v4, /-d 172\.28\.2\.30\/32 -m comment --comment "ctr:shop\/mysql" -g MOAT-in_/);
});

test('a rule with the same matches as an earlier final rule of its chain is left out (two policies that say the same thing); its log prefix with it', () => {
  const base = threeTierPolicies();
  const copies = base.policies.map((p) => ({ ...p, id: `${p.id}-copy`, name: `${p.name}-copy` }));
  const twice = { ...base, policies: [...base.policies, ...copies] };
  const p1 = compilePlan(threeTierWorld(), base);
  const p2 = compilePlan(threeTierWorld(), twice);
  const shape = (p: RulesetPlan) =>
    p.chains.map((c) => c.rules.map((r) => JSON.stringify({ m: r.matches, v: r.verdict, c: r.counter ?? false, l: r.log ?? '' })).join('\n')).sort();
  // Each chain keeps its first rule of each kind: the copies' rules (same peers, ports, denies)
  // would never be reached. (Chain names differ: they hash the rules' comments too.)
  assert.deepEqual(shape(p2), shape(p1));
  assert.ok(p1.chains.flatMap((c) => c.rules).some((r) => r.comment.startsWith('policy:')), 'the plan has policy rules to copy');
  assert.ok(!p2.chains.flatMap((c) => c.rules).some((r) => r.comment.includes('-copy') && r.comment.startsWith('policy:')), "no copy's rule is in the plan");
  assert.deepEqual(Object.keys(p2.logPrefixes).sort(), Object.keys(p1.logPrefixes).sort(), 'only the prefixes of rules in the plan');
  // No chain of a larger plan holds a rule that an earlier final rule shadows exactly.
  const big = compilePlan(syntheticWorld(2000), syntheticPolicies(200, 2000));
  for (const c of big.chains) {
    const decided = new Set<string>();
    for (const r of c.rules) {
      const k = JSON.stringify(r.matches);
      assert.ok(!decided.has(k), `chain ${c.name}: unreachable rule ${r.comment}`);
      if (r.verdict.kind === 'drop' || r.verdict.kind === 'return' || r.verdict.kind === 'accept') decided.add(k);
    }
  }
});

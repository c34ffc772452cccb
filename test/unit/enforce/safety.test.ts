import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apply, compilePlan, rollback, uninstall } from '../../../src/enforce/index.js';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { renderReplace } from '../../../src/enforce/backends/nft/render.js';
import { canonicalAddress, safeComment, safeLogPrefix } from '../../../src/enforce/validate.js';
import { threeTierPolicies, threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import { canUseNetns, createNetns, deleteNetns, inNetns } from './netns.js';

const EVIL = 'x"; flush ruleset; table ip evil { }';
const namespaces: string[] = [];
const dirs: string[] = [];
after(() => {
  namespaces.forEach(deleteNetns);
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function evilInputs() {
  const world = threeTierWorld();
  world.endpoints[0].id = EVIL;
  world.endpoints[0].labels['security.group'] = 'web';
  world.networks[0].name = `net${EVIL}`;
  world.endpoints[0].attachments[0].network = `net${EVIL}`;
  world.endpoints[1].attachments[0].network = `net${EVIL}`;
  const policies = threeTierPolicies();
  policies.policies[0].id = `label:${EVIL}\n}`;
  policies.publishedPortAllowlists[0].id = EVIL;
  return { world, policies };
}

test('values from labels and names cannot inject rule text', () => {
  const { world, policies } = evilInputs();
  const script = renderReplace(compilePlan(world, policies), { table: 'moat' });
  // Outside quoted comments, nothing of the evil text survives.
  const code = script.replace(/"[^"\n]*"/g, '""');
  assert.doesNotMatch(code, /flush|evil/);
  assert.match(script, /comment "ctr:x__ flush ruleset_ table ip evil/);
  for (const m of script.matchAll(/(?:comment|prefix) "([^"\n]*)"/g)) assert.match(m[1], /^[A-Za-z0-9 ._:/@=,+#-]*$/);
  assert.equal(safeComment('a"b;c{d}\ne\\'), 'a_b_c_d__e_');
  assert.ok(safeLogPrefix('x'.repeat(200)).length <= 63);
});

test('invalid addresses never reach a ruleset', () => {
  for (const bad of ['1.2.3.4; flush ruleset', '1.2.3', 'fe80::1%eth0', '999.1.1.1', '']) {
    assert.throws(() => canonicalAddress(bad));
  }
  const world = threeTierWorld();
  world.endpoints[2].attachments[0].ipv4 = '172.28.2.30 } ; flush ruleset';
  const plan = compilePlan(world, threeTierPolicies());
  assert.ok(plan.warnings.some((w) => w.includes('invalid address')));
  assert.doesNotMatch(renderReplace(plan), /flush/);
});

test('the injected ruleset passes nft -c and leaves other tables alone', { skip: !canUseNetns() && 'needs root and nft' }, () => {
  const { world, policies } = evilInputs();
  const ns = createNetns();
  namespaces.push(ns);
  const r = inNetns(ns, 'nft', ['-c', '-f', '-'], renderReplace(compilePlan(world, policies), { table: 'moat' }));
  assert.equal(r.status, 0, r.stderr);
});

test('apply, failing apply, rollback and uninstall in a throw-away netns', { skip: !canUseNetns() && 'needs root and nft' }, async () => {
  const ns = createNetns();
  namespaces.push(ns);
  const stateDir = mkdtempSync(join(tmpdir(), 'moat-state-'));
  dirs.push(stateDir);
  // Someone else's table that must survive everything.
  assert.equal(inNetns(ns, 'nft', ['-f', '-'], 'table inet other {\n chain c {\n type filter hook forward priority 0; policy accept;\n }\n}\n').status, 0);
  const before = inNetns(ns, 'nft', ['list', 'ruleset']).stdout;
  const opts = { netns: ns, stateDir, table: 'moattest' };
  const world = threeTierWorld();
  const policies = threeTierPolicies();
  await apply(world, policies, opts);
  const b = new NftBackend(opts);
  const first = await b.readBack();
  assert.ok(first.present);
  assert.equal(first.maps.ingress4['172.28.2.30'].startsWith('in_'), true);

  // A second ruleset: redis gone.
  const world2 = threeTierWorld();
  world2.endpoints.pop();
  await apply(world2, policies, opts);
  assert.equal((await b.readBack()).maps.ingress4['172.28.2.40'], undefined);

  // A failing nft call leaves the kernel as it was.
  const kernelBefore = inNetns(ns, 'nft', ['list', 'table', 'inet', 'moattest']).stdout;
  await assert.rejects(b.applyScript('table inet moattest\ndelete table inet moattest\ntable inet moattest { chain x { jump nowhere } }\n'));
  assert.equal(inNetns(ns, 'nft', ['list', 'table', 'inet', 'moattest']).stdout, kernelBefore);

  // Rollback brings redis back.
  assert.equal(await rollback(opts), true);
  assert.ok((await b.readBack()).maps.ingress4['172.28.2.40']);

  await uninstall(opts);
  assert.equal(inNetns(ns, 'nft', ['list', 'ruleset']).stdout, before);
});

test('a policy value the kernel cannot take is a UserError with a fix, before anything is compiled', () => {
  const policies = threeTierPolicies();
  policies.policies[2].ingress = [{ action: 'allow', peers: [{ kind: 'cidr', cidr: '10.0.0.0/33', except: [] }], pos: { file: 'moat.yaml', line: 7, col: 9 } }];
  assert.throws(
    () => compilePlan(threeTierWorld(), policies),
    (e: Error & { diagnostics?: { code: string; pos?: { line: number }; fix?: string }[] }) =>
      e.name === 'UserError' && e.diagnostics?.[0].code === 'enforce.invalid-peer' && e.diagnostics[0].pos?.line === 7 && !!e.diagnostics[0].fix,
  );
});

// resolveWorld's selector members and groups (indexed by namespace and by label) against the plain
// definition: every endpoint tested with matchesEndpointSelector on its effective labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorld } from '../../../src/analysis/resolve.js';
import { emptyPolicySet, groupLabel, type EndpointSelector, type GroupDefinition } from '../../../src/model/ir.js';
import { effectiveLabels, matchesEndpointSelector, matchesLabelSelector, matchesNamespaceScope } from '../../../src/model/selector.js';
import { syntheticWorld } from '../../../bench/enforce-world.js';

test('selector members and groups equal a match of every endpoint, whichever index finds them', () => {
  const world = syntheticWorld(700);
  // A container that carries a group's label itself (not a member of the group by its selector):
  // selectors on that label match it too, as the plain definition says.
  world.endpoints[5] = { ...world.endpoints[5], labels: { ...world.endpoints[5].labels, [groupLabel('syn1-web')]: 'true', extra: 'x' } };
  const policies = emptyPolicySet();
  policies.namespaceLabels = { syn2: { env: 'prod' }, syn3: { env: 'prod' } };
  const group = (name: string, selector: EndpointSelector): GroupDefinition => ({ name, selector });
  policies.groups.push(
    group('syn1-web', { namespaces: { kind: 'names', names: ['syn1'] }, labels: { matchLabels: { tier: 'web' } } }),
    group('api-app1', { namespaces: { kind: 'all' }, labels: { matchLabels: { tier: 'api', app: 'app1' } } }),
    group('prod-db', { namespaces: { kind: 'selector', selector: { matchLabels: { env: 'prod' } } }, labels: { matchLabels: { tier: 'db' } } }),
    group('twice', { namespaces: { kind: 'names', names: ['syn4', 'syn4', 'syn0'] }, labels: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['cache', 'web'] }] } }),
  );
  const selectors: EndpointSelector[] = [
    { namespaces: { kind: 'all' }, labels: { matchLabels: { [groupLabel('syn1-web')]: 'true' } } },
    { namespaces: { kind: 'all' }, labels: { matchLabels: { [groupLabel('api-app1')]: 'true', tier: 'api' } } },
    { namespaces: { kind: 'all' }, labels: { matchLabels: { [groupLabel('prod-db')]: 'true' } } },
    { namespaces: { kind: 'all' }, labels: { matchLabels: { tier: 'nope' } } },
    { namespaces: { kind: 'all' }, labels: { matchLabels: { extra: 'x' } } },
    { namespaces: { kind: 'all' }, labels: {} },
    { namespaces: { kind: 'all' }, labels: { matchLabels: { app: 'app2' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] } },
    { namespaces: { kind: 'selector', selector: { matchLabels: { env: 'prod' } } }, labels: { matchLabels: { tier: 'api' } } },
    { namespaces: { kind: 'names', names: ['syn6', 'syn2'] }, labels: { matchLabels: { [groupLabel('twice')]: 'true' } } },
    { namespaces: { kind: 'names', names: ['syn0'] }, labels: { matchLabels: { [groupLabel('twice')]: 'true' } } },
  ];
  const rw = resolveWorld(world, policies);

  // Groups, by the plain definition: selectors on labels without group labels, in group order.
  const nsLabels = (ns: string) => ({ ...(policies.namespaceLabels[ns] ?? {}), 'kubernetes.io/metadata.name': ns });
  world.endpoints.forEach((e, i) => {
    const base = effectiveLabels(e, []);
    const mine = policies.groups.filter((g) => matchesNamespaceScope(g.selector.namespaces, e.namespace, nsLabels) && matchesLabelSelector(g.selector.labels, base)).map((g) => g.name);
    assert.deepEqual(rw.labels[i], effectiveLabels(e, mine), `labels of ${e.id}`);
  });
  for (const g of policies.groups) assert.ok(rw.labels.some((l) => l[groupLabel(g.name)] === 'true'), `group ${g.name} has members`);

  for (const s of selectors) {
    const want = world.endpoints.flatMap((e, i) => (matchesEndpointSelector(s, { namespace: e.namespace, labels: rw.labels[i] }, nsLabels) ? [i] : []));
    assert.deepEqual([...rw.memberIndices(s)], want, JSON.stringify(s));
    assert.deepEqual([...rw.members(s)].flatMap((x, i) => (x ? [i] : [])), want);
  }
  // The container with the group's label of its own is among that label's members.
  assert.ok(rw.memberIndices(selectors[0]).includes(5));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnSet } from '../../src/model/connset.js';

test('ConnSet compacts and interns', () => {
  const a = ConnSet.ports('TCP', 80).union(ConnSet.ports('TCP', 443)).union(ConnSet.ports('UDP', 53));
  assert.equal(a.toString(), 'TCP 80,443 UDP 53');
  assert.equal(a, ConnSet.of({ TCP: [[443, 443], [80, 80]], UDP: [[53, 53]] }));
  assert.equal(ConnSet.ports('TCP', 80, 90).union(ConnSet.ports('TCP', 91, 100)).toString(), 'TCP 80-100');
});

test('ConnSet intersect, subtract, all and none', () => {
  const r = ConnSet.ports('TCP', 8000, 8100);
  assert.equal(r.intersect(ConnSet.ports('TCP', 8050, 9000)).toString(), 'TCP 8050-8100');
  assert.equal(ConnSet.all.intersect(r), r);
  assert.equal(ConnSet.none.union(r), r);
  assert.equal(r.subtract(ConnSet.ports('TCP', 8010, 8090)).toString(), 'TCP 8000-8009,8091-8100');
  assert.equal(ConnSet.all.toString(), 'All');
  assert.ok(ConnSet.all.subtract(ConnSet.allPortsOf('TCP')).other);
  assert.equal(ConnSet.all.subtract(ConnSet.all), ConnSet.none);
  assert.ok(r.contains('TCP', 8000) && !r.contains('TCP', 8101) && !r.contains('UDP', 8000));
});

// The compiler reads canonical IPv4 text without ipaddr.js (src/enforce/compile/ipv4.ts): these
// tests check that it accepts exactly what is already canonical, and that the ranges and element
// texts it gives are those of the full parsers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from '../../../src/model/address.js';
import { canonicalAddress, elementText } from '../../../src/enforce/validate.js';
import { canonicalIPv4Value } from '../../../src/enforce/compile/ipv4.js';
import { disjointElements } from '../../../src/enforce/compile/compile.js';

const addresses = [
  '0.0.0.0', '1.2.3.4', '10.0.0.1', '100.64.59.2', '255.255.255.255', '256.1.1.1', '1.2.3.256', '01.2.3.4', '1.02.3.4', '1.2.3.00',
  '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', ' 1.2.3.4', '1.2.3.4 ', '0x1.2.3.4', '1.2.3.4/32', '1000.1.1.1', '1.2.3.-4',
  '', '::', 'fd00::1', '::ffff:1.2.3.4', '1.2.3.4%eth0', '١.2.3.4', '99.199.249.250',
];

test('canonicalIPv4Value accepts only text canonicalAddress prints back unchanged', () => {
  for (const a of addresses) {
    let canonical: string | undefined;
    try {
      canonical = canonicalAddress(a).text;
    } catch {
      canonical = undefined;
    }
    const v = canonicalIPv4Value(a);
    if (v >= 0) {
      assert.equal(canonical, a, a);
      assert.equal(v, a.split('.').reduce((n, p) => n * 256 + Number(p), 0), a);
    } else {
      assert.ok(canonical !== a || a.includes(':'), `${JSON.stringify(a)} is canonical IPv4 but was refused`);
    }
  }
});

test('disjointElements: the fast IPv4 reading gives the ranges and texts of parseCidr and elementText', () => {
  const cidrs = [
    ...addresses,
    ...addresses.map((a) => `${a}/24`),
    '10.1.2.3/8', '10.0.0.0/8', '10.0.0.0/08', '10.0.0.0/0', '0.0.0.0/0', '10.1.2.3/32', '10.1.2.3/31', '10.1.2.3/33', '10.1.2.3/', '10.1.2.3/1',
    '10.1.2.3/007', '10.1.2.3/ 8', '192.168.1.255/23', '255.255.255.255/1', 'fd00::1/64', 'fd00::/8',
  ];
  // One value at a time: its element text (or nothing when invalid), as the full parsers give it.
  for (const v of cidrs) {
    const c = parseCidr(v);
    assert.deepEqual(disjointElements([v]), c ? [elementText(c.text).text] : [], v);
  }
  // Together: containment and order as the full parsers decide them.
  const ref = (values: string[]) => {
    const rs = values.flatMap((v) => {
      const c = parseCidr(v);
      if (!c) return [];
      const n = c.addr.toByteArray().reduce((a, b) => (a << 8n) | BigInt(b), 0n);
      const size = 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);
      return [{ family: c.family, start: n, end: n + size - 1n, text: elementText(c.text).text }];
    });
    rs.sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : a.end > b.end ? -1 : a.end < b.end ? 1 : 0));
    const kept: typeof rs = [];
    for (const r of rs) {
      const last = kept[kept.length - 1];
      if (last && last.family === r.family && r.start >= last.start && r.end <= last.end) continue;
      kept.push(r);
    }
    return kept.map((r) => r.text);
  };
  assert.deepEqual(disjointElements(cidrs), ref(cidrs));
  assert.deepEqual(disjointElements([...cidrs].reverse()), ref([...cidrs].reverse()));
});

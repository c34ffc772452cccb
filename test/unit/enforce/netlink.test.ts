import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intervalOf, type ElementChange } from '../../../src/enforce/backends/nft/netlink.js';
import { encodeElementBatch } from '../../../src/enforce/backends/nft/netlink-table.js';
import { threeTierWorld } from '../../fixtures/enforce/three-tier.js';
import type { World } from '../../../src/model/world.js';
import { canUseNetns, createNetns, deleteNetns, inNetns } from './netns.js';

const namespaces: string[] = [];
const dirs: string[] = [];
after(() => {
  namespaces.forEach(deleteNetns);
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const CHILD = fileURLToPath(new URL('./netlink-child.ts', import.meta.url));

/** Runs batches of element changes over netlink from a process inside `ns`. */
function viaNetlink(ns: string, table: string, batches: ElementChange[][]): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', CHILD], { input: JSON.stringify({ table, batches }), encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n');
}

const hex = (b: Buffer) => b.toString('hex');

/** The messages of a batch: type, flags and attributes (after nlmsghdr and nfgenmsg). */
function messagesOf(buffer: Buffer): { type: number; flags: number; body: Buffer }[] {
  const out: { type: number; flags: number; body: Buffer }[] = [];
  for (let off = 0; off < buffer.length; ) {
    const len = buffer.readUInt32LE(off);
    out.push({ type: buffer.readUInt16LE(off + 4), flags: buffer.readUInt16LE(off + 6), body: buffer.subarray(off + 20, off + len) });
    off += len;
  }
  return out;
}

/** The attributes of a run of attributes, each with its bytes (padding included). */
function attrsOf(buf: Buffer): { type: number; bytes: Buffer; payload: Buffer }[] {
  const out: { type: number; bytes: Buffer; payload: Buffer }[] = [];
  for (let a = 0; a + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(a);
    const padded = (len + 3) & ~3;
    out.push({ type: buf.readUInt16LE(a + 2) & 0x3fff, bytes: buf.subarray(a, a + padded), payload: buf.subarray(a + 4, a + len) });
    a += padded;
  }
  return out;
}

/** The list elements (NFTA_LIST_ELEM attributes, as bytes) the element batch of one change carries, in order. */
function listElements(change: ElementChange): Buffer[] {
  const out: Buffer[] = [];
  for (const m of messagesOf(encodeElementBatch('t', [change], 1).buffer).slice(1, -1)) {
    for (const a of attrsOf(m.body)) if (a.type === 3) for (const e of attrsOf(a.payload)) out.push(e.bytes);
  }
  return out;
}

test('a map element is encoded as nft encodes it: key, goto verdict with chain (or accept), comment as userdata', () => {
  const parts = listElements({ verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.9', owner: 'ctr:y', chain: 'c' }] });
  // Bytes as `nft --debug=mnl add element inet t m { 10.0.0.9 comment "ctr:y" : goto c }` shows them (nft 1.0.6).
  const expected =
    '3400' + '0180' + // NFTA_LIST_ELEM (nested), 52 bytes
    '0c00' + '0180' + '0800' + '0100' + '0a000009' + // KEY { VALUE 10.0.0.9 }
    '1800' + '0280' + '1400' + '0280' + '0800' + '0100' + 'fffffffc' + '0600' + '0200' + '63000000' + // DATA { VERDICT { CODE -4 (goto), CHAIN "c" } }
    '0c00' + '0600' + '0006' + '6374723a7900'; // USERDATA: comment TLV (type 0, length 6) "ctr:y\0"
  assert.equal(hex(parts[0]), expected);
  // An address without rules in the map's direction: `... : accept` (nft 1.0.6, the same way).
  const acc = listElements({ verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.8', owner: 'ctr:y', chain: '' }] });
  const accept =
    '2c00' + '0180' + // NFTA_LIST_ELEM (nested), 44 bytes
    '0c00' + '0180' + '0800' + '0100' + '0a000008' + // KEY { VALUE 10.0.0.8 }
    '1000' + '0280' + '0c00' + '0280' + '0800' + '0100' + '00000001' + // DATA { VERDICT { CODE 1 (accept) } }
    '0c00' + '0600' + '0006' + '6374723a7900';
  assert.equal(hex(acc[0]), accept);
  assert.throws(() => listElements({ verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.8', chain: 'a b' }] }), /invalid chain name/);
});

test('an interval-set element is a start element and an end element flagged INTERVAL_END', () => {
  const pair = listElements({ verb: 'add', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.9', owner: 'ctr:y' }] });
  assert.equal(pair.length, 2);
  assert.match(hex(pair[0]), /0a000009/);
  assert.match(hex(pair[0]), /00066374723a79/); // comment
  assert.equal(hex(pair[1]), '1800' + '0180' + '0800' + '0300' + '00000001' + '0c00' + '0180' + '0800' + '0100' + '0a00000a');
  // Deleting names the keys only.
  const del = listElements({ verb: 'delete', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.9' }] });
  assert.doesNotMatch(hex(del[0]), /6374723a79/);
});

test('an element of a set without intervals (the known-address sets) is its key alone; only host addresses', () => {
  const one = listElements({ verb: 'add', kind: 'set', name: 'k', family: 4, exact: true, elements: [{ value: '10.0.0.9', owner: 'ctr:y' }] });
  assert.equal(one.length, 1);
  assert.doesNotMatch(hex(one[0]), /0800030000000001/, 'no INTERVAL_END flag');
  assert.match(hex(one[0]), /0a000009/);
  assert.throws(() => listElements({ verb: 'add', kind: 'set', name: 'k', family: 4, exact: true, elements: [{ value: '10.0.0.0/24' }] }), /not an IPv4 address/);
});

test('intervals: CIDRs start at the network and end after the broadcast; the top of the space has no end', () => {
  assert.deepEqual(hexes(intervalOf('10.1.2.3/16', 4)), ['0a010000', '0a020000']);
  assert.deepEqual(hexes(intervalOf('255.255.255.255', 4)), ['ffffffff', undefined]);
  assert.deepEqual(hexes(intervalOf('128.0.0.0/1', 4)), ['80000000', undefined]);
  assert.deepEqual(hexes(intervalOf('fd00::1', 6)), ['fd000000000000000000000000000001', 'fd000000000000000000000000000002']);
  assert.throws(() => intervalOf('10.0.0.1', 6), /not IPv6/);
  assert.throws(() => intervalOf('10.0.0.1; drop', 4), /invalid/);
});
function hexes(i: { start: Buffer; end?: Buffer }) {
  return [hex(i.start), i.end && hex(i.end)];
}

test('names and values from outside cannot reach the kernel unchecked', () => {
  const bad: ElementChange[] = [
    { verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.1', chain: 'c; flush ruleset' }] },
    { verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.0/24', chain: 'c' }] },
    { verb: 'add', kind: 'set', name: 's x', family: 4, elements: [{ value: '10.0.0.1' }] },
  ];
  for (const b of bad) assert.throws(() => encodeElementBatch('t', [b], 1));
  assert.throws(() => encodeElementBatch('t"', [{ verb: 'add', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.1' }] }], 1));
  assert.throws(() => listElements({ verb: 'add', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.1', owner: 'x'.repeat(300) }] }), /too long/);
});

test('a batch is begin, as many element messages as the elements need (each under 64 KiB; interval pairs kept together), end; the last message asks for the answer', () => {
  const many = Array.from({ length: 3000 }, (_, i) => ({ value: `10.${i >> 8}.${i & 255}.0/24`, owner: 'ctr:some-owner' }));
  const { buffer, seqs, lastSeq } = encodeElementBatch('t', [{ verb: 'add', kind: 'set', name: 's', family: 4, elements: many }], 100);
  const msgs = messagesOf(buffer);
  const types = msgs.map((m) => m.type);
  assert.equal(types[0], 16, 'BATCH_BEGIN');
  assert.equal(types.at(-1), 17, 'BATCH_END');
  const elems = msgs.slice(1, -1);
  assert.ok(elems.length >= 3, `${elems.length} element messages`);
  assert.ok(elems.every((m) => m.type === 0x0a0c && m.body.length < 65536));
  assert.deepEqual(seqs, [lastSeq - 1]);
  assert.equal(lastSeq, 100 + msgs.length - 1);
  assert.deepEqual(elems.map((m) => (m.flags & 0x4) !== 0), elems.map((_, i) => i === elems.length - 1), 'only the last asks for an ack');
  // Every range is a start and an end element, in the same message.
  for (const m of elems) {
    const list = attrsOf(attrsOf(m.body).find((a) => a.type === 3)!.payload);
    assert.equal(list.length % 2, 0);
  }
  assert.equal(listElements({ verb: 'add', kind: 'set', name: 's', family: 4, elements: many }).length, 6000);
});

const kernel = canUseNetns() ? false : 'needs root, ip netns and nft';

test('in the kernel: adds and deletes over netlink read back through nft; a failing batch changes nothing', { skip: kernel }, () => {
  const ns = createNetns('moatnl');
  namespaces.push(ns);
  const setup = inNetns(ns, 'nft', ['-f', '-'], 'table inet tnl {\n set s { type ipv4_addr; flags interval; }\n set s6 { type ipv6_addr; flags interval; }\n map m { type ipv4_addr : verdict; }\n chain c { }\n}\n');
  assert.equal(setup.status, 0, setup.stderr);
  const out = viaNetlink(ns, 'tnl', [
    [
      { verb: 'add', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.1', owner: 'ctr:a' }, { value: '10.0.0.2', owner: 'ctr:b' }, { value: '10.9.0.0/16', owner: 'net:n' }] },
      { verb: 'add', kind: 'set', name: 's6', family: 6, elements: [{ value: 'fd00::5', owner: 'ctr:a' }] },
      { verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.1', owner: 'ctr:a', chain: 'c' }] },
    ],
    // Fails as a whole: the second change jumps to a chain that does not exist.
    [
      { verb: 'add', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.50' }] },
      { verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.51', chain: 'missing' }] },
    ],
    // Deleting an element the kernel does not hold fails.
    [{ verb: 'delete', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.77' }] }],
    [
      { verb: 'delete', kind: 'set', name: 's', family: 4, elements: [{ value: '10.0.0.2' }] },
      { verb: 'delete', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.1' }] },
      { verb: 'add', kind: 'map', name: 'm', family: 4, elements: [{ value: '10.0.0.1', owner: 'ctr:a2', chain: 'c' }, { value: '10.0.0.3', owner: 'net:n', chain: '' }] },
    ],
  ]);
  assert.equal(out[0], 'ok');
  assert.match(out[1], /^error .*ENOENT/);
  assert.match(out[2], /^error /);
  assert.equal(out[3], 'ok');
  const list = inNetns(ns, 'nft', ['list', 'table', 'inet', 'tnl']);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /10\.0\.0\.1 comment "ctr:a"/);
  assert.match(list.stdout, /10\.9\.0\.0\/16 comment "net:n"/);
  assert.match(list.stdout, /fd00::5 comment "ctr:a"/);
  assert.match(list.stdout, /10\.0\.0\.1 comment "ctr:a2" : goto c/);
  assert.match(list.stdout, /10\.0\.0\.3 comment "net:n" : accept/);
  assert.doesNotMatch(list.stdout, /10\.0\.0\.2\b/);
  assert.doesNotMatch(list.stdout, /10\.0\.0\.50|10\.0\.0\.51/);
});

/** The three-tier world with `n` extra api containers (group backend) on the back network. */
function withApis(n: number): World {
  const w = threeTierWorld();
  const api = w.endpoints[1];
  for (let i = 0; i < n; i++) w.endpoints.push({ ...api, id: `shop/api-x${i}`, name: `api-x${i}`, containerName: `shop-api-x${i}`, attachments: [{ network: 'shop_backend', ipv4: `172.28.2.${100 + i}` }] });
  return w;
}

test('in the kernel: netlink element changes give the same ruleset as full replaces, step by step', { skip: kernel }, () => {
  // The controller's path (applyIncremental over netlink) runs in a child inside one netns; a full
  // replace of each step's plan runs in another; both read back equal to the plan.
  const ns = createNetns('moatnl');
  namespaces.push(ns);
  const stateDir = mkdtempSync(join(tmpdir(), 'moat-nl-'));
  dirs.push(stateDir);
  const steps = [0, 3, 1, 4, 0];
  const script = `
    import { applyIncremental, applyPlan, compilePlan } from ${JSON.stringify(new URL('../../../src/enforce/index.js', import.meta.url).href)};
    import { NftBackend } from ${JSON.stringify(new URL('../../../src/enforce/backends/nft/backend.js', import.meta.url).href)};
    import { planSummary } from ${JSON.stringify(new URL('../../../src/enforce/summary.js', import.meta.url).href)};
    import { threeTierPolicies, threeTierWorld } from ${JSON.stringify(new URL('../../fixtures/enforce/three-tier.js', import.meta.url).href)};
    const withApis = ${withApis.toString()};
    const opts = { table: 'moatnlt', stateDir: ${JSON.stringify(stateDir)} };
    const p = threeTierPolicies();
    let prev = compilePlan(withApis(${steps[0]}), p, opts);
    await applyPlan(prev, opts);
    const out = [];
    for (const n of ${JSON.stringify(steps.slice(1))}) {
      const next = compilePlan(withApis(n), p, opts);
      const r = await applyIncremental(prev, next, opts);
      const back = await new NftBackend(opts).readBack();
      const want = planSummary(next);
      out.push({ n, mode: r.mode, via: r.via, same: JSON.stringify(back.sets) === JSON.stringify(want.sets) && JSON.stringify(Object.fromEntries(Object.entries(back.maps).map(([k, v]) => [k, Object.entries(v).sort()]))) === JSON.stringify(Object.fromEntries(Object.entries(want.maps).map(([k, v]) => [k, Object.entries(v).sort()]))) });
      prev = next;
    }
    await new NftBackend(opts).remove();
    console.log(JSON.stringify(out));
  `;
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000, cwd: fileURLToPath(new URL('../../..', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout.trim().split('\n').pop()!) as { n: number; mode: string; via?: string; same: boolean }[];
  assert.equal(rows.length, steps.length - 1);
  for (const row of rows) {
    assert.equal(row.mode, 'incremental', JSON.stringify(row));
    assert.equal(row.via, 'netlink', JSON.stringify(row));
    assert.ok(row.same, `kernel differs from the plan after step to ${row.n} extra containers`);
  }
});

// The whole table as one nf_tables netlink batch: the nft backend's full apply without the `nft`
// process. `nft -f` of moat's 10,000-endpoint table spends ~0.3 s in userspace (parsing, evaluating
// and building the messages) against ~0.13 s in the kernel (bench/README.md, "Control plane"); this
// module builds the same messages straight from the plan: the table replaced (`NEWTABLE`,
// `DELTABLE`, `NEWTABLE`), every chain, every set and map with its elements, every rule, in the
// order `nft -f` sends them and with the attributes `nft --debug=mnl` shows (nft 1.0.6), so that
// `nft list table` reads back the same table whichever way it was loaded (tested). The kernel
// commits the batch whole or not at all; without its `BATCH_END` the kernel validates the batch and
// throws it away, which is what `nft -c` does (the check).
//
// Every name, comment and address goes through the same validation as the text renderer.
import type { Family } from '../../../model/address.js';
import type { PortRanges } from '../../../model/connset.js';
import type { AddressSet, Match, PlanChain, PlanRule, RulesetPlan, VerdictMap } from '../../plan-model.js';
import { assertName, canonicalCidr, cidrText, safeComment, safeLogPrefix } from '../../validate.js';
import { intervalOf, NetlinkError, type ElementChange, type NftNetlink } from './netlink.js';
import { chainComment, NFT_HOOK, portSetName, portSetRanges, tableName, validSize } from './render.js';

// ---- constants (linux/netfilter/nf_tables.h, libnftnl udata, nft datatypes) ------------------

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const NFPROTO_INET = 1;
const MSG = { NEWTABLE: 0, DELTABLE: 2, NEWCHAIN: 3, DELCHAIN: 5, NEWRULE: 6, DELRULE: 8, NEWSET: 9, DELSET: 11, NEWSETELEM: 12, DELSETELEM: 14 } as const;

const TABLE_NAME = 1;
const TABLE_FLAGS = 2;
const CHAIN = { TABLE: 1, NAME: 3, HOOK: 4, POLICY: 5, TYPE: 7, USERDATA: 12 } as const;
const HOOK = { NUM: 1, PRIORITY: 2 } as const;
const RULE = { TABLE: 1, CHAIN: 2, EXPRESSIONS: 4, USERDATA: 7 } as const;
const SET = { TABLE: 1, NAME: 2, FLAGS: 3, KEY_TYPE: 4, KEY_LEN: 5, DATA_TYPE: 6, DATA_LEN: 7, DESC: 9, ID: 10, USERDATA: 13 } as const;
const SET_DESC_SIZE = 1;
const ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
const ELEM = { KEY: 1, DATA: 2, FLAGS: 3, USERDATA: 6 } as const;
const LIST_ELEM = 1;
const DATA_VALUE = 1;
const DATA_VERDICT = 2;
const VERDICT_CODE = 1;
const VERDICT_CHAIN = 2;
const EXPR_ELEM = 1;
const EXPR_NAME = 1;
const EXPR_DATA = 2;

const NFT_SET_ANONYMOUS = 0x1;
const NFT_SET_CONSTANT = 0x2;
const NFT_SET_INTERVAL = 0x4;
const NFT_SET_MAP = 0x8;
const NFT_SET_ELEM_INTERVAL_END = 0x1;
const NFT_DATA_VERDICT = 0xffffff00;
const VERDICT = { drop: 0, accept: 1, jump: -3, goto: -4, return: -5 } as const;
const NF_HOOK_NUM: Record<string, number> = { prerouting: 0, postrouting: 4 };
/** `priority filter - 10`. */
const CHAIN_PRIORITY = -10;

/** nft's datatype numbers (the set key types it declares). */
const TYPE = { ipv4_addr: 7, ipv6_addr: 8, inet_proto: 12, inet_service: 13, icmpv6_type: 29 } as const;
// libnftnl user data TLVs.
const UDATA_COMMENT = 0; // rule, chain and set element comment
const UDATA_SET_KEYBYTEORDER = 0;
const UDATA_SET_DATABYTEORDER = 1;
const UDATA_SET_DATA_INTERVAL = 6;
const UDATA_SET_ELEM_FLAGS = 1;
const SET_ELEM_F_INTERVAL_OPEN = 1;
const BYTEORDER_BIG_ENDIAN = 2;

const META = { NFPROTO: 15, L4PROTO: 16 } as const;
const NFPROTO: Record<Family, number> = { 4: 2, 6: 10 };
const L4: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
const IPPROTO_ICMPV6 = 58;
const CT = { STATE: 0, STATUS: 2, PROTO_DST: 12 } as const;
const CT_STATE_ESTABLISHED_RELATED = 0x2 | 0x4;
const IPS_DST_NAT = 0x20;
const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
const FIB_RESULT_ADDRTYPE = 3;
const FIB_F = { saddr: 1, daddr: 2 } as const;
const RTN_LOCAL = 2;
const CMP_EQ = 0;
const CMP_NEQ = 1;
const REG_VERDICT = 0;
const REG_1 = 1;

/**
 * The two anonymous sets moat's rules use (`meta l4proto != { tcp, udp, sctp }`, the ICMPv6
 * neighbour-discovery types): key type, elements, and the user data nft 1.0.6 stores with them
 * (key byte order and the `typeof` expression it prints them by), copied byte for byte.
 */
const ANON = {
  l4other: { keyType: TYPE.inet_proto, values: [6, 17, 132], udata: '000401000000030e0004090000000106000410000000' },
  nd: { keyType: TYPE.icmpv6_type, values: [135, 136, 133, 134], udata: '0004020000000314000407000000010c00040e000000010401000000' },
} as const;

// ---- a growable buffer of netlink messages and attributes -----------------------------------

/** Appends netlink messages and attributes to one buffer; lengths are written when a nest closes. */
export class NlWriter {
  buf: Buffer;
  off = 0;
  constructor(size = 1 << 20) {
    this.buf = Buffer.allocUnsafe(size);
  }
  /** Makes room for `n` more bytes (callers ask before writing; every write below is bounded). */
  room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }
  private pad(): void {
    while (this.off & 3) this.buf[this.off++] = 0;
  }
  private le16(v: number, at: number): void {
    this.buf[at] = v & 255;
    this.buf[at + 1] = (v >>> 8) & 255;
  }
  private wbe32(v: number, at: number): void {
    const b = this.buf;
    b[at] = (v >>> 24) & 255;
    b[at + 1] = (v >>> 16) & 255;
    b[at + 2] = (v >>> 8) & 255;
    b[at + 3] = v & 255;
  }
  /** ASCII text (names, comments and prefixes are validated to ASCII before they get here). */
  private ascii(s: string): void {
    const b = this.buf;
    let o = this.off;
    for (let i = 0; i < s.length; i++) b[o++] = s.charCodeAt(i) & 0x7f;
    this.off = o;
  }
  /** Starts a message (nlmsghdr + nfgenmsg); returns its offset for `endMsg`. */
  msg(type: number, flags: number, seq: number, family: number, resId = 0): number {
    this.room(20);
    const at = this.off;
    const b = this.buf;
    b.fill(0, at, at + 20);
    this.le16(type, at + 4);
    this.le16(flags, at + 6);
    b.writeUInt32LE(seq >>> 0, at + 8);
    b[at + 16] = family;
    b[at + 18] = (resId >>> 8) & 255; // res_id, big-endian
    b[at + 19] = resId & 255;
    this.off += 20;
    return at;
  }
  endMsg(at: number): void {
    this.buf.writeUInt32LE(this.off - at, at);
  }
  /** Starts a nested attribute; returns its offset for `close`. */
  nest(type: number): number {
    this.room(4);
    const at = this.off;
    this.le16(type | NLA_F_NESTED, at + 2);
    this.off += 4;
    return at;
  }
  close(at: number): void {
    const len = this.off - at;
    if (len > 0xffff) throw new Error('netlink attribute over 64 KiB');
    this.le16(len, at);
  }
  private head(type: number, payload: number): void {
    this.room(4 + payload + 3);
    this.le16(4 + payload, this.off);
    this.le16(type, this.off + 2);
    this.off += 4;
  }
  be32(type: number, v: number): void {
    this.head(type, 4);
    this.wbe32(v, this.off);
    this.off += 4;
  }
  be16(type: number, v: number): void {
    this.head(type, 2);
    this.buf[this.off++] = (v >>> 8) & 255;
    this.buf[this.off++] = v & 255;
    this.pad();
  }
  u8(type: number, v: number): void {
    this.head(type, 1);
    this.buf[this.off++] = v;
    this.pad();
  }
  /** A NUL-terminated string. */
  str(type: number, s: string): void {
    this.head(type, s.length + 1);
    this.ascii(s);
    this.buf[this.off++] = 0;
    this.pad();
  }
  bytes(type: number, data: Uint8Array): void {
    this.head(type, data.length);
    for (let i = 0; i < data.length; i++) this.buf[this.off++] = data[i];
    this.pad();
  }
  /** A u32 in host (little-endian) byte order, as registers hold `ct state`, `fib` results and masks. */
  u32host(type: number, v: number): void {
    this.head(type, 4);
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
  }
  /** `NFTA_DATA_VALUE` of an IPv4 address (a u32 in network byte order) in a `KEY` nest. */
  keyV4(n: number): void {
    this.room(12);
    const at = this.off;
    this.le16(12, at);
    this.le16(ELEM.KEY | NLA_F_NESTED, at + 2);
    this.le16(8, at + 4);
    this.le16(DATA_VALUE, at + 6);
    this.wbe32(n, at + 8);
    this.off += 12;
  }
  key(bytes: Uint8Array): void {
    const k = this.nest(ELEM.KEY);
    this.bytes(DATA_VALUE, bytes);
    this.close(k);
  }
  /**
   * User data of libnftnl TLVs: a comment (type 0, length, text and its NUL) and, for a range open at
   * the top of the address space, nft's element flag INTERVAL_OPEN.
   */
  udata(type: number, text: string | undefined, open = false): void {
    const tlv = (text === undefined ? 0 : text.length + 3) + (open ? 6 : 0);
    if (text !== undefined && text.length + 1 > 255) throw new Error('comment too long');
    this.head(type, tlv);
    const b = this.buf;
    if (text !== undefined) {
      b[this.off++] = UDATA_COMMENT;
      b[this.off++] = text.length + 1;
      this.ascii(text);
      b[this.off++] = 0;
    }
    if (open) {
      b[this.off++] = UDATA_SET_ELEM_FLAGS;
      b[this.off++] = 4;
      b.writeUInt32LE(SET_ELEM_F_INTERVAL_OPEN, this.off);
      this.off += 4;
    }
    this.pad();
  }
  /** Bytes already encoded as netlink attributes (lengths and padding included). */
  raw(data: Uint8Array): void {
    this.room(data.length);
    this.buf.set(data, this.off);
    this.off += data.length;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

// ---- keys -------------------------------------------------------------------------------------

/**
 * Parses dotted-quad IPv4 with an optional prefix (`10.0.0.0/24`) into [first address, prefix]
 * without a regular expression (the hot path: tens of thousands of elements); undefined when the
 * text is not that.
 */
function v4(s: string): [number, number] | undefined {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch >= 48 && ch <= 57) {
      part = part * 10 + (ch - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else if (ch === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else break;
  }
  if (dots !== 3 || digits === 0) return undefined;
  n = n * 256 + part;
  let prefix = 32;
  if (i < s.length) {
    if (s.charCodeAt(i) !== 47 || i + 1 >= s.length || s.length - i - 1 > 2) return undefined;
    prefix = 0;
    for (let j = i + 1; j < s.length; j++) {
      const ch = s.charCodeAt(j);
      if (ch < 48 || ch > 57) return undefined;
      prefix = prefix * 10 + (ch - 48);
    }
    if (prefix > 32) return undefined;
  }
  const size = 2 ** (32 - prefix);
  return [n - (n % size), prefix];
}

const ZERO: Record<Family, Uint8Array> = { 4: new Uint8Array(4), 6: new Uint8Array(16) };

// ---- the batch --------------------------------------------------------------------------------

/** Elements per NEWSETELEM message are bounded by bytes: the element list is one attribute (< 64 KiB). */
const ELEMENTS_BYTES = 48 * 1024;

interface Ctx {
  w: NlWriter;
  table: string;
  seq: number;
  setId: number;
  /** Set name -> batch id (lookups and element messages name both, as nft does). */
  ids: Map<string, number>;
  group: number;
  /** Offset of the last message begun (it asks for the acknowledgement). */
  lastMsg: number;
  /** What each message of the batch is, by index (for the kernel's errors). */
  labels: string[];
  /**
   * Sets the kernel already holds (a change batch): rules name them without a batch id, and the
   * kernel finds them by name.
   */
  existing?: ReadonlySet<string>;
}

function begin(c: Ctx, type: number, flags: number, label: string): number {
  c.labels.push(label);
  return (c.lastMsg = c.w.msg((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | flags, c.seq++, NFPROTO_INET));
}

/**
 * `n` elements of one set (or map), in as many NEWSETELEM messages as their size needs: `one(i)`
 * writes element i (an interval element writes its start and end elements together).
 */
function elementMessages(c: Ctx, set: string, id: number, n: number, one: (i: number) => void): void {
  const { w } = c;
  let i = 0;
  while (i < n) {
    const m = begin(c, MSG.NEWSETELEM, NLM_F_CREATE, `elements of ${set}`);
    w.str(ELEM_LIST.TABLE, c.table);
    w.str(ELEM_LIST.SET, set);
    w.be32(ELEM_LIST.SET_ID, id);
    const list = w.nest(ELEM_LIST.ELEMENTS);
    while (i < n && w.off - list < ELEMENTS_BYTES) one(i++);
    w.close(list);
    w.endMsg(m);
  }
}

/** An interval set's end element (flagged INTERVAL_END). */
function endElement(w: NlWriter, key: Uint8Array | number): void {
  const e = w.nest(LIST_ELEM);
  w.be32(ELEM.FLAGS, NFT_SET_ELEM_INTERVAL_END);
  if (typeof key === 'number') w.keyV4(key);
  else w.key(key);
  w.close(e);
}

/**
 * The elements of an interval set as nft writes them: an end element at zero first unless the first
 * range starts there, then per range a start element (with its owner) and an end element after it
 * (none for a range that reaches the top of the space). `ranges` are in address order.
 */
function intervalElements(c: Ctx, set: string, id: number, family: Family | 'port', n: number, rangeAt: (i: number) => { start: Uint8Array | number; end?: Uint8Array | number }, ownerAt: (i: number) => string | undefined): void {
  elementMessages(c, set, id, n, (i) => {
    const { w } = c;
    const r = rangeAt(i);
    if (i === 0 && (typeof r.start === 'number' ? r.start !== 0 : r.start.some((x) => x !== 0))) endElement(w, family === 4 ? 0 : family === 'port' ? new Uint8Array(2) : ZERO[family]);
    const e = w.nest(LIST_ELEM);
    if (typeof r.start === 'number') w.keyV4(r.start);
    else w.key(r.start);
    const owner = ownerAt(i);
    if (owner !== undefined || r.end === undefined) w.udata(ELEM.USERDATA, owner === undefined ? undefined : safeComment(owner), r.end === undefined);
    w.close(e);
    if (r.end !== undefined) endElement(w, r.end);
  });
}

/** The range of an IPv4 element as numbers (fast path), else as bytes. */
function rangeOf(value: string, family: Family): { start: Uint8Array | number; end?: Uint8Array | number } {
  if (family === 4) {
    const p = v4(value);
    if (p) {
      const end = p[0] + 2 ** (32 - p[1]);
      return { start: p[0], end: end >= 2 ** 32 ? undefined : end };
    }
  }
  return intervalOf(value, family);
}

/** A host address's key (map keys, elements of sets without intervals); throws for anything else. */
function hostKey(value: string, family: Family, what: string): Uint8Array | number {
  if (family === 4) {
    const p = v4(value);
    if (p && p[1] === 32) return p[0];
  } else if (!value.includes('/') || value.endsWith('/128')) {
    return intervalOf(value, 6).start;
  }
  throw new Error(`${what} ${JSON.stringify(value)} is not an IPv${family} address`);
}

function newSet(c: Ctx, name: string, flags: number, keyType: number, keyLen: number, udata: Uint8Array, opts: { map?: boolean; size?: number } = {}): number {
  const { w } = c;
  const id = ++c.setId;
  const m = begin(c, MSG.NEWSET, NLM_F_CREATE, `set ${name}`);
  w.str(SET.TABLE, c.table);
  w.str(SET.NAME, name);
  w.be32(SET.FLAGS, flags);
  w.be32(SET.KEY_TYPE, keyType);
  w.be32(SET.KEY_LEN, keyLen);
  if (opts.map) {
    w.be32(SET.DATA_TYPE, NFT_DATA_VERDICT);
    w.be32(SET.DATA_LEN, 0);
  }
  w.be32(SET.ID, id);
  if (opts.size !== undefined) {
    const d = w.nest(SET.DESC);
    w.be32(SET_DESC_SIZE, opts.size);
    w.close(d);
  }
  w.bytes(SET.USERDATA, udata);
  w.endMsg(m);
  return id;
}

const UDATA_KEY_BE = Uint8Array.of(UDATA_SET_KEYBYTEORDER, 4, BYTEORDER_BIG_ENDIAN, 0, 0, 0);
const UDATA_MAP = Uint8Array.of(UDATA_SET_KEYBYTEORDER, 4, BYTEORDER_BIG_ENDIAN, 0, 0, 0, UDATA_SET_DATABYTEORDER, 4, 0, 0, 0, 0, UDATA_SET_DATA_INTERVAL, 4, 0, 0, 0, 0);

function portSet(c: Ctx, name: string, ranges: PortRanges): void {
  const id = newSet(c, assertName(name, 'set name'), NFT_SET_INTERVAL, TYPE.inet_service, 2, UDATA_KEY_BE);
  c.ids.set(name, id);
  const be16 = (p: number) => Uint8Array.of(p >> 8, p & 255);
  intervalElements(c, name, id, 'port', ranges.length, (i) => ({ start: be16(ranges[i][0]), end: ranges[i][1] >= 65535 ? undefined : be16(ranges[i][1] + 1) }), () => undefined);
}

function addressSet(c: Ctx, s: AddressSet): void {
  const name = assertName(s.name, 'set name');
  const id = newSet(c, name, s.exact ? 0 : NFT_SET_INTERVAL, s.family === 4 ? TYPE.ipv4_addr : TYPE.ipv6_addr, s.family === 4 ? 4 : 16, UDATA_KEY_BE, { size: s.size === undefined ? undefined : validSize(s.size, name) });
  c.ids.set(name, id);
  const els = s.elements;
  if (!s.exact) {
    intervalElements(c, name, id, s.family, els.length, (i) => rangeOf(els[i].value, s.family), (i) => els[i].owner);
    return;
  }
  const { w } = c;
  elementMessages(c, name, id, els.length, (i) => {
    const k = hostKey(els[i].value, s.family, `element of ${name}`);
    const e = w.nest(LIST_ELEM);
    if (typeof k === 'number') w.keyV4(k);
    else w.key(k);
    w.udata(ELEM.USERDATA, safeComment(els[i].owner));
    w.close(e);
  });
}

function verdictMap(c: Ctx, m: VerdictMap): void {
  const name = assertName(m.name, 'map name');
  const id = newSet(c, name, NFT_SET_MAP, m.family === 4 ? TYPE.ipv4_addr : TYPE.ipv6_addr, m.family === 4 ? 4 : 16, UDATA_MAP, { map: true, size: m.size === undefined ? undefined : validSize(m.size, name) });
  c.ids.set(name, id);
  const { w } = c;
  const chains = new Set<string>();
  elementMessages(c, name, id, m.elements.length, (i) => {
    const el = m.elements[i];
    const k = hostKey(el.key, m.family, `map key of ${name}:`);
    // `goto` the address's chain (the base chain's vmap verdict is final), `accept` when it has none.
    if (el.chain !== '' && !chains.has(el.chain)) chains.add(assertName(el.chain, 'chain name'));
    mapElement(w, k, el.chain, safeComment(el.owner));
  });
}

/**
 * One verdict map element, as nft 1.0.6 writes `10.0.0.9 comment "ctr:y" : goto c`: its key, then
 * (`chain` given: an addition) `goto` the chain or, for `''`, `accept`, and the owner as user data.
 * A deletion names the key alone. `chain` must be a checked name (assertName).
 */
function mapElement(w: NlWriter, key: Uint8Array | number, chain?: string, owner?: string): void {
  const e = w.nest(LIST_ELEM);
  if (typeof key === 'number') w.keyV4(key);
  else w.key(key);
  if (chain !== undefined) {
    const d = w.nest(ELEM.DATA);
    const v = w.nest(DATA_VERDICT);
    if (chain === '') w.be32(VERDICT_CODE, VERDICT.accept);
    else {
      w.be32(VERDICT_CODE, VERDICT.goto);
      w.str(VERDICT_CHAIN, chain);
    }
    w.close(v);
    w.close(d);
  }
  if (owner !== undefined) w.udata(ELEM.USERDATA, owner);
  w.close(e);
}

/**
 * One element of an ElementChange: a map element (mapElement), an exact set's key, or an interval
 * set's start element and end element (none at the top of the space); owners on additions only.
 */
function changeElement(w: NlWriter, c: ElementChange, e: ElementChange['elements'][number]): void {
  const add = c.verb === 'add';
  const owner = add && e.owner ? e.owner : undefined;
  if (c.kind === 'map') {
    const k = hostKey(e.value, c.family, 'map key');
    // `goto` the address's chain (plan-model.ts MapElement), `accept` when it has none ('').
    mapElement(w, k, add ? (e.chain === '' ? '' : assertName(e.chain ?? '', 'chain name')) : undefined, owner);
    return;
  }
  const r = c.exact ? { start: hostKey(e.value, c.family, `element of ${c.name}`) } : rangeOf(e.value, c.family);
  const s = w.nest(LIST_ELEM);
  if (typeof r.start === 'number') w.keyV4(r.start);
  else w.key(r.start);
  if (owner !== undefined) w.udata(ELEM.USERDATA, owner);
  w.close(s);
  if (!c.exact && r.end !== undefined) endElement(w, r.end);
}

function newChain(c: Ctx, ch: PlanChain): void {
  const { w } = c;
  const m = begin(c, MSG.NEWCHAIN, NLM_F_CREATE, `chain ${ch.name}`);
  w.str(CHAIN.TABLE, c.table);
  w.str(CHAIN.NAME, assertName(ch.name, 'chain name'));
  if (ch.hook) {
    w.str(CHAIN.TYPE, 'filter');
    w.be32(CHAIN.POLICY, VERDICT.accept);
    const h = w.nest(CHAIN.HOOK);
    w.be32(HOOK.NUM, NF_HOOK_NUM[NFT_HOOK[ch.hook]]);
    w.be32(HOOK.PRIORITY, CHAIN_PRIORITY);
    w.close(h);
  }
  w.udata(CHAIN.USERDATA, chainComment(ch));
  w.endMsg(m);
}

// ---- expressions --------------------------------------------------------------------------------

/**
 * The fixed start of each expression, written in one copy: its `EXPR_ELEM` nest, its name and its
 * `EXPR_DATA` nest (the two nests' lengths are filled in by `shut`). One rule has ~8 expressions and
 * the 10,000-endpoint table ~45,000 of them, so no closure or name encoding per expression.
 */
class ExprHead {
  readonly bytes: Uint8Array;
  constructor(name: string) {
    const nameAttr = (4 + name.length + 1 + 3) & ~3;
    const b = new Uint8Array(4 + nameAttr + 4);
    const le16 = (v: number, at: number) => {
      b[at] = v & 255;
      b[at + 1] = v >>> 8;
    };
    le16(EXPR_ELEM | NLA_F_NESTED, 2);
    le16(4 + name.length + 1, 4);
    le16(EXPR_NAME, 6);
    for (let i = 0; i < name.length; i++) b[8 + i] = name.charCodeAt(i);
    le16(EXPR_DATA | NLA_F_NESTED, 4 + nameAttr + 2);
    this.bytes = b;
  }
}
const H = {
  meta: new ExprHead('meta'),
  cmp: new ExprHead('cmp'),
  payload: new ExprHead('payload'),
  lookup: new ExprHead('lookup'),
  ct: new ExprHead('ct'),
  bitwise: new ExprHead('bitwise'),
  fib: new ExprHead('fib'),
  counter: new ExprHead('counter'),
  log: new ExprHead('log'),
  immediate: new ExprHead('immediate'),
} as const;

/** Begins an expression; returns its offset for `shut`. */
function open(w: NlWriter, h: ExprHead): number {
  const n = h.bytes.length;
  w.room(n);
  const at = w.off;
  w.buf.set(h.bytes, at);
  w.off += n;
  return at;
}
function shut(w: NlWriter, at: number, h: ExprHead): void {
  w.close(at + h.bytes.length - 4);
  w.close(at);
}

function meta(w: NlWriter, k: number): void {
  const e = open(w, H.meta);
  w.be32(2, k); // NFTA_META_KEY
  w.be32(1, REG_1); // NFTA_META_DREG
  shut(w, e, H.meta);
}
/** `cmp` of register 1 with a value of `len` bytes (1: u8; 2: big-endian u16; 4: host-order u32). */
function cmp(w: NlWriter, op: number, len: 1 | 2 | 4, v: number): void {
  const e = open(w, H.cmp);
  w.be32(1, REG_1); // NFTA_CMP_SREG
  w.be32(2, op); // NFTA_CMP_OP
  const d = w.nest(3); // NFTA_CMP_DATA
  if (len === 1) w.u8(DATA_VALUE, v);
  else if (len === 2) w.be16(DATA_VALUE, v);
  else w.u32host(DATA_VALUE, v);
  w.close(d);
  shut(w, e, H.cmp);
}
/** `cmp <op> reg 1 <bytes>` (addresses: network order). */
function cmpBytes(w: NlWriter, op: number, data: Uint8Array): void {
  const e = open(w, H.cmp);
  w.be32(1, REG_1); // NFTA_CMP_SREG
  w.be32(2, op); // NFTA_CMP_OP
  const d = w.nest(3); // NFTA_CMP_DATA
  w.bytes(DATA_VALUE, data);
  w.close(d);
  shut(w, e, H.cmp);
}
// A rule's CIDR checked and read once (the same few CIDRs come back in thousands of rules of a table:
// a parse each, with its BigInt arithmetic, was a visible part of a whole-table encode).
const cidrBytesMemo = new Map<string, { prefix: number; net: Buffer }>();
function cidrBytes(cidr: string, family: Family): { prefix: number; net: Buffer } {
  const key = `${family}|${cidr}`;
  let v = cidrBytesMemo.get(key);
  if (!v) {
    const c = canonicalCidr(cidrText(cidr, family));
    if (cidrBytesMemo.size > 10_000) cidrBytesMemo.clear();
    cidrBytesMemo.set(key, (v = { prefix: c.prefix, net: intervalOf(c.text, family).start }));
  }
  return v;
}
/**
 * `ip saddr 10.0.0.0/8` (a `cidr` match) as nft encodes it: a prefix of whole bytes loads just those
 * bytes and compares them; any other loads the address, masks it and compares.
 */
function cidrMatch(w: NlWriter, m: Extract<Match, { kind: 'cidr' }>): void {
  const { prefix, net } = cidrBytes(m.cidr, m.family);
  const size = m.family === 4 ? 4 : 16;
  const op = m.negate ? CMP_NEQ : CMP_EQ;
  const at = ADDR_OFFSET[m.family][m.dir];
  if (prefix > 0 && prefix % 8 === 0) {
    payload(w, PAYLOAD_BASE.network, at, prefix / 8);
    cmpBytes(w, op, net.subarray(0, prefix / 8));
    return;
  }
  payload(w, PAYLOAD_BASE.network, at, size);
  const mask = Buffer.alloc(size);
  for (let i = 0; i < prefix; i++) mask[i >> 3] |= 0x80 >> (i & 7);
  const e = open(w, H.bitwise);
  w.be32(1, REG_1); // NFTA_BITWISE_SREG
  w.be32(2, REG_1); // NFTA_BITWISE_DREG
  w.be32(3, size); // NFTA_BITWISE_LEN
  const mk = w.nest(4); // NFTA_BITWISE_MASK
  w.bytes(DATA_VALUE, mask);
  w.close(mk);
  const x = w.nest(5); // NFTA_BITWISE_XOR
  w.bytes(DATA_VALUE, Buffer.alloc(size));
  w.close(x);
  shut(w, e, H.bitwise);
  cmpBytes(w, op, net);
}
function payload(w: NlWriter, base: number, offset: number, len: number): void {
  const e = open(w, H.payload);
  w.be32(1, REG_1); // NFTA_PAYLOAD_DREG
  w.be32(2, base); // NFTA_PAYLOAD_BASE
  w.be32(3, offset); // NFTA_PAYLOAD_OFFSET
  w.be32(4, len); // NFTA_PAYLOAD_LEN
  shut(w, e, H.payload);
}
const LOOKUP_INVERT = 1;
const LOOKUP_VMAP = 2;
function lookup(c: Ctx, set: string, id: number | undefined, flags = 0): void {
  const { w } = c;
  const setId = id ?? c.ids.get(set);
  if (setId === undefined && !c.existing?.has(set)) throw new Error(`rule refers to set ${JSON.stringify(set)}, which the plan does not declare`);
  const e = open(w, H.lookup);
  w.be32(2, REG_1); // NFTA_LOOKUP_SREG
  if (flags & LOOKUP_VMAP) w.be32(3, REG_VERDICT); // NFTA_LOOKUP_DREG
  w.str(1, set); // NFTA_LOOKUP_SET
  if (setId !== undefined) w.be32(4, setId); // NFTA_LOOKUP_SET_ID
  if (flags & LOOKUP_INVERT) w.be32(5, 1); // NFTA_LOOKUP_FLAGS: NFT_LOOKUP_F_INV
  shut(w, e, H.lookup);
}
/** `ct <key>` into register 1 (`dir`: NFTA_CT_DIRECTION, for keys of one direction). */
function ct(w: NlWriter, k: number, dir?: number): void {
  const e = open(w, H.ct);
  w.be32(2, k); // NFTA_CT_KEY
  w.be32(1, REG_1); // NFTA_CT_DREG
  if (dir !== undefined) w.u8(3, dir); // NFTA_CT_DIRECTION
  shut(w, e, H.ct);
}
/** `ct <key> & mask != 0` (ct state / ct status flags). */
function ctFlags(w: NlWriter, k: number, mask: number): void {
  ct(w, k);
  const e = open(w, H.bitwise);
  w.be32(1, REG_1); // NFTA_BITWISE_SREG
  w.be32(2, REG_1); // NFTA_BITWISE_DREG
  w.be32(3, 4); // NFTA_BITWISE_LEN
  const m = w.nest(4); // NFTA_BITWISE_MASK
  w.u32host(DATA_VALUE, mask);
  w.close(m);
  const x = w.nest(5); // NFTA_BITWISE_XOR
  w.u32host(DATA_VALUE, 0);
  w.close(x);
  shut(w, e, H.bitwise);
  cmp(w, CMP_NEQ, 4, 0);
}
function fib(w: NlWriter, flags: number): void {
  const e = open(w, H.fib);
  w.be32(3, flags); // NFTA_FIB_FLAGS
  w.be32(2, FIB_RESULT_ADDRTYPE); // NFTA_FIB_RESULT
  w.be32(1, REG_1); // NFTA_FIB_DREG
  shut(w, e, H.fib);
}
function verdict(w: NlWriter, code: number, target?: string): void {
  const e = open(w, H.immediate);
  w.be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
  const d = w.nest(2); // NFTA_IMMEDIATE_DATA
  const vv = w.nest(DATA_VERDICT);
  w.be32(VERDICT_CODE, code);
  if (target !== undefined) w.str(VERDICT_CHAIN, target);
  w.close(vv);
  w.close(d);
  shut(w, e, H.immediate);
}
function anonSet(c: Ctx, which: keyof typeof ANON): number {
  const a = ANON[which];
  const id = newSet(c, '__set%d', NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, a.keyType, 1, Buffer.from(a.udata, 'hex'), { size: a.values.length });
  elementMessages(c, '__set%d', id, a.values.length, (i) => {
    const e = c.w.nest(LIST_ELEM);
    c.w.key(Uint8Array.of(a.values[i]));
    c.w.close(e);
  });
  return id;
}

const ADDR_OFFSET: Record<Family, Record<'src' | 'dst', number>> = { 4: { src: 12, dst: 16 }, 6: { src: 8, dst: 24 } };

/** `meta nfproto <f>`: nft checks the layer-3 protocol once per rule before the first address match of a family. */
function family(w: NlWriter, f: Family): Family {
  meta(w, META.NFPROTO);
  cmp(w, CMP_EQ, 1, NFPROTO[f]);
  return f;
}

/** One rule; anonymous sets it needs go right before it, as nft sends them. */
function newRule(c: Ctx, chain: string, r: PlanRule): void {
  const { w } = c;
  // Anonymous sets first (their messages cannot sit inside the rule's).
  const anon = new Map<Match, number>();
  for (const m of r.matches) if (m.kind === 'l4other' || m.kind === 'nd') anon.set(m, anonSet(c, m.kind));
  const msg = begin(c, MSG.NEWRULE, NLM_F_CREATE | NLM_F_APPEND, `rule "${r.comment}" in chain ${chain}`);
  w.str(RULE.TABLE, c.table);
  w.str(RULE.CHAIN, chain);
  const list = w.nest(RULE.EXPRESSIONS);
  let nfproto: Family | undefined; // the family checked so far (family())
  for (const m of r.matches) {
    switch (m.kind) {
      case 'set':
        if (nfproto !== m.family) nfproto = family(w, m.family);
        payload(w, PAYLOAD_BASE.network, ADDR_OFFSET[m.family][m.dir], m.family === 4 ? 4 : 16);
        lookup(c, assertName(m.set, 'set name'), undefined, m.negate ? LOOKUP_INVERT : 0);
        break;
      case 'cidr':
        if (nfproto !== m.family) nfproto = family(w, m.family);
        cidrMatch(w, m);
        break;
      case 'local':
        fib(w, FIB_F[m.dir === 'src' ? 'saddr' : 'daddr']);
        cmp(w, m.negate ? CMP_NEQ : CMP_EQ, 4, RTN_LOCAL);
        break;
      case 'l4':
        meta(w, META.L4PROTO);
        cmp(w, CMP_EQ, 1, L4[m.proto]);
        if (m.ports) {
          payload(w, PAYLOAD_BASE.transport, 2, 2);
          if (m.ports.length === 1 && m.ports[0][0] === m.ports[0][1]) cmp(w, CMP_EQ, 2, m.ports[0][0]);
          else if (m.ports.length === 1) {
            // A single range: nft writes `th dport a-b` as two comparisons.
            const [a, b] = m.ports[0];
            cmp(w, 5, 2, a); // NFT_CMP_GTE
            cmp(w, 3, 2, b); // NFT_CMP_LTE
          } else lookup(c, portSetName(m.ports), undefined);
        }
        break;
      case 'l4other':
        meta(w, META.L4PROTO);
        lookup(c, '__set%d', anon.get(m), LOOKUP_INVERT);
        break;
      case 'published':
        ctFlags(w, CT.STATUS, IPS_DST_NAT);
        meta(w, META.L4PROTO);
        cmp(w, CMP_EQ, 1, L4[m.proto]);
        ct(w, CT.PROTO_DST, 0); // direction: original
        cmp(w, CMP_EQ, 2, m.hostPort);
        break;
      case 'established':
        ctFlags(w, CT.STATE, CT_STATE_ESTABLISHED_RELATED);
        break;
      case 'nd':
        if (nfproto !== 6) nfproto = family(w, 6);
        meta(w, META.L4PROTO);
        cmp(w, CMP_EQ, 1, IPPROTO_ICMPV6);
        payload(w, PAYLOAD_BASE.transport, 0, 1);
        lookup(c, '__set%d', anon.get(m));
        break;
    }
  }
  if (r.counter) shut(w, open(w, H.counter), H.counter);
  if (r.log && r.verdict.kind === 'drop') {
    const prefix = safeLogPrefix(r.log);
    const e = open(w, H.log);
    w.str(2, prefix); // NFTA_LOG_PREFIX
    w.be16(1, c.group); // NFTA_LOG_GROUP
    shut(w, e, H.log);
  }
  const v = r.verdict;
  switch (v.kind) {
    case 'accept':
    case 'drop':
    case 'return':
      verdict(w, VERDICT[v.kind]);
      break;
    case 'jump':
      verdict(w, VERDICT.jump, assertName(v.chain, 'chain name'));
      break;
    case 'vmap':
      if (nfproto !== v.family) nfproto = family(w, v.family);
      payload(w, PAYLOAD_BASE.network, ADDR_OFFSET[v.family][v.dir], v.family === 4 ? 4 : 16);
      lookup(c, assertName(v.map, 'map name'), undefined, LOOKUP_VMAP);
      break;
  }
  w.close(list);
  w.udata(RULE.USERDATA, safeComment(r.comment));
  w.endMsg(msg);
}

export interface TableBatch {
  buffer: Buffer;
  /** Sequence numbers of the messages that ask for an answer (the last one). */
  seqs: number[];
  firstSeq: number;
  lastSeq: number;
  messages: number;
  label: (index: number) => string;
}

/**
 * The batch that replaces `inet <table>` with the plan, atomically: the same transaction as
 * `nft -f` of `renderReplace(plan)`. `commit: false` leaves out `BATCH_END`, so the kernel checks
 * every message and the table's validity and then throws the batch away (`nft -c`).
 */
export function encodeTableBatch(plan: RulesetPlan, table: string, firstSeq: number, opts: { commit?: boolean } = {}): TableBatch {
  const t = tableName({ table });
  const w = new NlWriter(1 << 23);
  const c: Ctx = { w, table: t, seq: firstSeq, setId: 0, ids: new Map(), group: plan.nflogGroup, lastMsg: 0, labels: ['the transaction (commit or validation)'] };
  if (!Number.isInteger(c.group) || c.group < 0 || c.group > 65535) throw new Error(`invalid NFLOG group: ${c.group}`);
  w.endMsg(w.msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  const table2 = (type: number) => {
    const m = begin(c, type, type === MSG.NEWTABLE ? NLM_F_CREATE : 0, `${type === MSG.NEWTABLE ? 'add' : 'delete'} table ${t}`);
    w.str(TABLE_NAME, t);
    if (type === MSG.NEWTABLE) w.be32(TABLE_FLAGS, 0);
    w.endMsg(m);
  };
  // `table inet T` (exists afterwards whether or not it did), `delete table`, the new definition.
  table2(MSG.NEWTABLE);
  table2(MSG.DELTABLE);
  table2(MSG.NEWTABLE);
  // The render's order: per-identity chains, then base chains; sets (port sets first) and maps; rules.
  const [base, per] = [plan.chains.filter((ch) => ch.hook), plan.chains.filter((ch) => !ch.hook)];
  const chains = [...per, ...base];
  for (const ch of chains) newChain(c, ch);
  for (const [name, ranges] of portSetRanges(plan)) portSet(c, name, ranges);
  for (const s of plan.sets) addressSet(c, s);
  for (const m of plan.maps) verdictMap(c, m);
  for (const ch of chains) for (const r of ch.rules) newRule(c, ch.name, r);
  // Only the last message asks for an acknowledgement: errors come back for any message, and the
  // acknowledgement of the last one says the kernel got through the batch (with BATCH_END: committed).
  const last = c.seq - 1;
  w.buf.writeUInt16LE(w.buf.readUInt16LE(c.lastMsg + 6) | NLM_F_ACK, c.lastMsg + 6);
  if (opts.commit !== false) w.endMsg(w.msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  return { buffer: w.result(), seqs: [last], firstSeq, lastSeq: c.seq - 1, messages: c.seq - firstSeq, label: (i) => c.labels[i] ?? 'the end of the batch' };
}

/**
 * Replaces `inet <table>` with the plan in one transaction over `nl` (`check`: validate the same
 * batch without committing it, as `nft -c` does). Throws NetlinkError, the kernel keeping what it
 * had, when the kernel refuses any part; BatchTooLarge when the batch does not fit the socket.
 */
export async function replaceTable(nl: NftNetlink, plan: RulesetPlan, table: string, opts: { check?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const errors = await nl.transact((first) => encodeTableBatch(plan, table, first, { commit: !opts.check }), opts.timeoutMs ?? 10_000);
  if (errors.length) throw new NetlinkError(`nf_tables ${opts.check ? 'check' : 'transaction'} of table inet ${table} failed: ${errors.slice(0, 5).join('; ')}${errors.length > 5 ? ` (and ${errors.length - 5} more)` : ''}`);
}

/**
 * A change of the table the kernel holds, as the incremental diff finds it (incremental.ts): new
 * port sets, address sets and chains (with their elements and rules), element changes of the sets
 * and maps the kernel already holds (deletions first), and chains and sets no longer used.
 */
export interface TableChange {
  portSets: { name: string; ranges: PortRanges }[];
  /** New sets, and the sets created anew (`setsReplaced`), with their elements. */
  sets: AddressSet[];
  chains: PlanChain[];
  elements: ElementChange[];
  chainsRemoved: string[];
  setsRemoved: string[];
  /**
   * Sets the kernel holds that are deleted and declared again from `sets` (another capacity): the
   * chains that use them are flushed first (`chainsReloaded`, whose rules are loaded again after the
   * new chains', and `chainsFlushedFirst`, removed chains, deleted at the end as usual).
   */
  setsReplaced?: string[];
  chainsReloaded?: PlanChain[];
  chainsFlushedFirst?: string[];
  /**
   * Verdict maps the kernel holds that are deleted and declared again with their elements (another
   * capacity), after the new chains are declared; the base chains that use them are in `chainsReloaded`.
   */
  mapsReplaced?: VerdictMap[];
}

/**
 * One batch for a TableChange, in the order `nft -f` of the incremental script runs it: the sets
 * created anew deleted (after the chains that use them are flushed), new sets (port sets first) and
 * chains with their rules, the flushed chains' rules again, element deletions, element additions, then the
 * chains that are no longer used flushed and deleted, and the sets no longer used deleted.
 * `existing`: the names of the sets and maps the kernel holds (rules of new chains refer to them by
 * name). The kernel commits it whole or not at all (an element to delete that is absent, a chain
 * still referenced, a set missing: nothing changes).
 */
export function encodeChangeBatch(change: TableChange, table: string, group: number, existing: ReadonlySet<string>, firstSeq: number): TableBatch {
  const t = tableName({ table });
  const w = new NlWriter(1 << 16);
  const c: Ctx = { w, table: t, seq: firstSeq, setId: 0, ids: new Map(), group, lastMsg: 0, labels: ['the transaction'], existing };
  if (!Number.isInteger(c.group) || c.group < 0 || c.group > 65535) throw new Error(`invalid NFLOG group: ${c.group}`);
  w.endMsg(w.msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  /** A message of two attributes: the table's name and an object's name. */
  const named = (type: number, label: string, tableAttr: number, nameAttr: number, name: string) => {
    const m = begin(c, type, 0, label);
    w.str(tableAttr, t);
    w.str(nameAttr, name);
    w.endMsg(m);
  };
  // `flush chain`: DELRULE naming the chain and no rule.
  const flush = (name: string) => named(MSG.DELRULE, `flush chain ${name}`, RULE.TABLE, RULE.CHAIN, assertName(name, 'chain name'));
  // Sets created anew: the chains that use them flushed, then the sets deleted (declared below).
  // (A base chain's flush and reload, in one transaction, leaves its hook and policy as they are.)
  const reloaded = change.chainsReloaded ?? [];
  for (const ch of reloaded) flush(ch.name);
  for (const name of change.chainsFlushedFirst ?? []) flush(name);
  for (const name of change.setsReplaced ?? []) named(MSG.DELSET, `delete set ${name}`, SET.TABLE, SET.NAME, assertName(name, 'set name'));
  for (const m of change.mapsReplaced ?? []) named(MSG.DELSET, `delete map ${m.name}`, SET.TABLE, SET.NAME, assertName(m.name, 'map name'));
  for (const p of change.portSets) portSet(c, p.name, p.ranges);
  for (const s of change.sets) addressSet(c, s);
  for (const ch of change.chains) {
    if (ch.hook) throw new Error(`base chain ${ch.name} cannot be added by a change batch`);
    newChain(c, ch);
  }
  // Maps created anew after the chains their elements name.
  for (const m of change.mapsReplaced ?? []) verdictMap(c, m);
  for (const ch of change.chains) for (const r of ch.rules) newRule(c, ch.name, r);
  for (const ch of reloaded) for (const r of ch.rules) newRule(c, ch.name, r);
  for (const e of change.elements) elementChange(c, e);
  for (const name of change.chainsRemoved) {
    // The chain flushed, then deleted.
    flush(name);
    named(MSG.DELCHAIN, `delete chain ${name}`, CHAIN.TABLE, CHAIN.NAME, assertName(name, 'chain name'));
  }
  for (const name of change.setsRemoved) named(MSG.DELSET, `delete set ${name}`, SET.TABLE, SET.NAME, assertName(name, 'set name'));
  if (c.lastMsg === 0) throw new Error('empty change batch');
  const last = c.seq - 1;
  w.buf.writeUInt16LE(w.buf.readUInt16LE(c.lastMsg + 6) | NLM_F_ACK, c.lastMsg + 6);
  w.endMsg(w.msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  return { buffer: w.result(), seqs: [last], firstSeq, lastSeq: c.seq - 1, messages: c.seq - firstSeq, label: (i) => c.labels[i] ?? 'the end of the batch' };
}

/** Element additions or deletions of a set or map the kernel holds (changeElement). */
function elementChange(c: Ctx, e: ElementChange): void {
  const { w } = c;
  const name = assertName(e.name, e.kind === 'map' ? 'map name' : 'set name');
  let i = 0;
  while (i < e.elements.length) {
    const m = begin(c, e.verb === 'add' ? MSG.NEWSETELEM : MSG.DELSETELEM, e.verb === 'add' ? NLM_F_CREATE : 0, `${e.verb} elements of ${name}`);
    w.str(ELEM_LIST.TABLE, c.table);
    w.str(ELEM_LIST.SET, name);
    const list = w.nest(ELEM_LIST.ELEMENTS);
    // An interval's start and end elements stay in one message.
    while (i < e.elements.length && w.off - list < ELEMENTS_BYTES) changeElement(w, e, e.elements[i++]);
    w.close(list);
    w.endMsg(m);
  }
}

/**
 * Element changes alone (the controller's usual change: containers come and go) as one batch: begin,
 * the NEWSETELEM / DELSETELEM messages, end; the last message asks for the acknowledgement (an error
 * comes back for any message the kernel refuses, and then nothing is committed).
 */
export function encodeElementBatch(table: string, changes: ElementChange[], firstSeq: number): TableBatch {
  const w = new NlWriter(64 * 1024);
  const c: Ctx = { w, table: assertName(table, 'table name'), seq: firstSeq, setId: 0, ids: new Map(), group: 0, lastMsg: 0, labels: ['the transaction'] };
  w.endMsg(w.msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  for (const e of changes) elementChange(c, e);
  if (c.lastMsg === 0) throw new Error('empty element batch');
  const last = c.seq - 1;
  w.buf.writeUInt16LE(w.buf.readUInt16LE(c.lastMsg + 6) | NLM_F_ACK, c.lastMsg + 6);
  w.endMsg(w.msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, c.seq++, 0, NFNL_SUBSYS_NFTABLES));
  return { buffer: w.result(), seqs: [last], firstSeq, lastSeq: c.seq - 1, messages: c.seq - firstSeq, label: (i) => c.labels[i] ?? 'the end of the batch' };
}

/**
 * Applies element additions and deletions to `inet <table>` in one transaction over `nl`. Throws
 * NetlinkError (the kernel keeping what it had) when any element cannot be applied, e.g. a set or
 * chain that does not exist, an element to delete that is absent, or overlapping intervals.
 */
export async function applyElements(nl: NftNetlink, table: string, changes: ElementChange[], opts: { timeoutMs?: number } = {}): Promise<void> {
  if (changes.every((c) => c.elements.length === 0)) return;
  const errors = await nl.transact((first) => encodeElementBatch(table, changes.filter((c) => c.elements.length), first), opts.timeoutMs ?? 5000);
  if (errors.length) throw new NetlinkError(`nf_tables netlink transaction failed: ${errors.join('; ')}`);
}

/**
 * Applies a TableChange to `inet <table>` in one transaction over `nl`. Throws NetlinkError, the
 * kernel keeping what it had, when the kernel refuses any part of it.
 */
export async function applyTableChange(nl: NftNetlink, change: TableChange, table: string, group: number, existing: ReadonlySet<string>, opts: { timeoutMs?: number } = {}): Promise<void> {
  const errors = await nl.transact((first) => encodeChangeBatch(change, table, group, existing, first), opts.timeoutMs ?? 10_000);
  if (errors.length) throw new NetlinkError(`nf_tables change of table inet ${table} failed: ${errors.slice(0, 5).join('; ')}${errors.length > 5 ? ` (and ${errors.length - 5} more)` : ''}`);
}

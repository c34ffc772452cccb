// A direct nf_tables netlink writer for set and map element changes: the incremental path of the
// nft backend. `nft` 1.0.6 loads the table's sets, chains and rules into its cache before it runs any
// command, so even one `add element` costs about as much as listing the table (≈90 ms with 7,000
// rules). The kernel needs none of that for elements: this module encodes NFT_MSG_NEWSETELEM /
// NFT_MSG_DELSETELEM messages (the same attributes `nft --debug=netlink` shows) inside one
// NFNL_MSG_BATCH_BEGIN ... BATCH_END batch, which the kernel commits as one transaction or not at
// all, exactly like `nft -f`. Whole tables and changes with new or removed chains and sets are
// batches of netlink-table.ts, which encodes their elements with `encodeElements` below.
//
// The socket is created in the calling process's network namespace; callers that target another
// namespace (tests with `netns`) use `nft -f` instead.
import { createRequire } from 'node:module';
import { parseCidr, type Family } from '../../../model/address.js';

const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
const NFPROTO_INET = 1;
const NLA_F_NESTED = 0x8000;
// enum nft_set_elem_list_attributes / nft_set_elem_attributes / nft_data_attributes / nft_verdict_attributes
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_SET_ELEM_USERDATA = 6;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFT_GOTO = -4;
const NF_ACCEPT = 1;
const NFT_SET_ELEM_INTERVAL_END = 0x1;
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
/** Elements per message: keeps every message well under the socket's buffer (64 kB). */
const ELEMENTS_PER_MESSAGE = 200;

export interface ElementChange {
  verb: 'add' | 'delete';
  /** A set or a verdict map (exact keys). */
  kind: 'set' | 'map';
  /** A set of host addresses declared without `flags interval` (no end elements); default: interval. */
  exact?: boolean;
  name: string;
  family: Family;
  elements: { value: string; owner?: string; chain?: string }[];
}

// ---- encoding -------------------------------------------------------------------------------

/** A netlink attribute (type, payload) padded to 4 bytes. */
function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}
const nest = (type: number, children: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(children));
const strz = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`, 'utf8'));
function be32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v, 0);
  return attr(type, b);
}

function message(type: number, flags: number, seq: number, family: number, resId: number, body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const head = Buffer.alloc(20);
  head.writeUInt32LE(20 + payload.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  head.writeUInt32LE(0, 12);
  head.writeUInt8(family, 16);
  head.writeUInt8(0, 17); // NFNETLINK_V0
  head.writeUInt16BE(resId, 18);
  return Buffer.concat([head, payload]);
}

function bigintBytes(n: bigint, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    b[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return b;
}

/** [start, end-exclusive or undefined when the range reaches the top of the address space] */
export function intervalOf(value: string, family: Family): { start: Buffer; end?: Buffer } {
  const c = parseCidr(value.trim());
  if (!c) throw new Error(`invalid address range: ${JSON.stringify(value)}`);
  if (c.family !== family) throw new Error(`element ${value} is not IPv${family}`);
  let n = 0n;
  for (const byte of c.addr.toByteArray()) n = (n << 8n) | BigInt(byte);
  const bits = family === 4 ? 32 : 128;
  const bytes = bits / 8;
  const size = 1n << BigInt(bits - c.prefix);
  const start = (n / size) * size;
  const end = start + size;
  return { start: bigintBytes(start, bytes), end: end >= 1n << BigInt(bits) ? undefined : bigintBytes(end, bytes) };
}

function comment(owner: string): Buffer {
  const text = Buffer.from(`${owner}\0`, 'utf8');
  if (text.length > 255) throw new Error('element comment too long');
  return attr(NFTA_SET_ELEM_USERDATA, Buffer.concat([Buffer.from([NFTNL_UDATA_SET_ELEM_COMMENT, text.length]), text]));
}

const key = (bytes: Buffer) => nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, bytes)]);

/** Map keys and elements of sets without intervals are host addresses of the change's family. */
function assertHost(value: string, family: Family, what: string): void {
  const a = parseCidr(value.trim());
  if (!a || a.family !== family || a.prefix !== (family === 4 ? 32 : 128)) throw new Error(`${what} ${JSON.stringify(value)} is not an IPv${family} address`);
}

/** The list elements of one change, per element (interval sets: a start element and an end element per range). */
export function encodeElements(c: ElementChange): Buffer[][] {
  const out: Buffer[][] = [];
  for (const e of c.elements) {
    if (c.kind === 'map') {
      assertHost(e.value, c.family, 'map key');
      const { start } = intervalOf(e.value, c.family);
      const parts = [key(start)];
      if (c.verb === 'add') {
        // `goto` the address's chain (plan-model.ts MapElement), `accept` when it has none ('').
        if (e.chain === '') parts.push(nest(NFTA_SET_ELEM_DATA, [nest(NFTA_DATA_VERDICT, [be32(NFTA_VERDICT_CODE, NF_ACCEPT)])]));
        else {
          if (!e.chain || !/^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/.test(e.chain)) throw new Error(`invalid chain name for map element: ${JSON.stringify(e.chain)}`);
          parts.push(nest(NFTA_SET_ELEM_DATA, [nest(NFTA_DATA_VERDICT, [be32(NFTA_VERDICT_CODE, NFT_GOTO), strz(NFTA_VERDICT_CHAIN, e.chain)])]));
        }
        if (e.owner) parts.push(comment(e.owner));
      }
      out.push([nest(NFTA_LIST_ELEM, parts)]);
      continue;
    }
    if (c.exact) assertHost(e.value, c.family, `element of ${c.name}`);
    const { start, end } = intervalOf(e.value, c.family);
    const first = [key(start)];
    if (c.verb === 'add' && e.owner) first.push(comment(e.owner));
    const pair = [nest(NFTA_LIST_ELEM, first)];
    if (end && !c.exact) pair.push(nest(NFTA_LIST_ELEM, [be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END), key(end)]));
    out.push(pair);
  }
  return out;
}

/** The whole batch (begin, one message per chunk of elements, end) and the sequence numbers to ack. */
export function encodeBatch(table: string, changes: ElementChange[], firstSeq: number): { buffer: Buffer; seqs: number[]; lastSeq: number } {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,255}$/.test(table)) throw new Error(`invalid table name: ${JSON.stringify(table)}`);
  let seq = firstSeq;
  const msgs: Buffer[] = [message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES, [])];
  const seqs: number[] = [];
  for (const c of changes) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,255}$/.test(c.name)) throw new Error(`invalid set name: ${JSON.stringify(c.name)}`);
    const elems = encodeElements(c);
    // The start and end elements of one range stay in the same message.
    for (let i = 0; i < elems.length; i += ELEMENTS_PER_MESSAGE) {
      const chunk = elems.slice(i, i + ELEMENTS_PER_MESSAGE).flat();
      const type = (NFNL_SUBSYS_NFTABLES << 8) | (c.verb === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
      const flags = NLM_F_REQUEST | NLM_F_ACK | (c.verb === 'add' ? NLM_F_CREATE : 0);
      seqs.push(seq);
      msgs.push(message(type, flags, seq++, NFPROTO_INET, 0, [strz(NFTA_SET_ELEM_LIST_TABLE, table), strz(NFTA_SET_ELEM_LIST_SET, c.name), nest(NFTA_SET_ELEM_LIST_ELEMENTS, chunk)]));
    }
  }
  msgs.push(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, []));
  return { buffer: Buffer.concat(msgs), seqs, lastSeq: seq };
}

// ---- transport ------------------------------------------------------------------------------

interface RawSocket {
  send(msg: Uint8Array, options?: object, cb?: (err?: Error) => void): void;
  on(ev: 'message', fn: (msg: Buffer) => void): void;
  on(ev: 'error', fn: (err: Error) => void): void;
  close(): void;
  ref(): void;
  unref(): void;
  setRecvBufferSize(n: number): void;
  setSendBufferSize(n: number): void;
  getSendBufferSize(): number;
}

export class NetlinkError extends Error {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
  }
}

/** A batch larger than the socket may send at once (see NftNetlink.fitSendBuffer). */
export class BatchTooLarge extends NetlinkError {
  constructor(
    readonly bytes: number,
    readonly sendBuffer: number,
  ) {
    // The kernel doubles what SO_SNDBUF asks for, up to twice net.core.wmem_max.
    super(`the nf_tables batch (${bytes} bytes) is larger than the netlink socket's send buffer (${sendBuffer} bytes; net.core.wmem_max limits it): sysctl -w net.core.wmem_max=${2 ** Math.ceil(Math.log2((bytes + 4096) / 2))} lets it through`);
  }
}

const ERRNO: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 12: 'ENOMEM', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 34: 'ERANGE', 39: 'ENOTEMPTY', 95: 'EOPNOTSUPP' };

/** One NETLINK_NETFILTER socket; transactions run one at a time. */
export class NftNetlink {
  private seq = Math.floor(Math.random() * 0x3fffffff) + 1;
  private pending?: { first: number; last: number; seqs: Set<number>; errors: string[]; done: () => void; gen?: number; label?: (index: number) => string };
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly sock: RawSocket) {
    sock.on('message', (buf) => this.onMessage(buf));
    sock.on('error', (err) => {
      const p = this.pending;
      if (p) {
        p.errors.push(err.message);
        p.done();
      }
    });
    sock.unref();
  }

  /** Opens a socket, or returns undefined when the netlink module cannot load here. */
  static open(): NftNetlink | undefined {
    try {
      const require = createRequire(import.meta.url);
      const mod = require('netlink') as { RawNetlinkSocket: new (protocol: number, options?: object) => RawSocket };
      const s = new mod.RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 22 } as object);
      return new NftNetlink(s);
    } catch {
      return undefined;
    }
  }

  private onMessage(buf: Buffer): void {
    const p = this.pending;
    for (let off = 0; off + 16 <= buf.length; ) {
      const len = buf.readUInt32LE(off);
      if (len < 16) break;
      const type = buf.readUInt16LE(off + 4);
      const seq = buf.readUInt32LE(off + 8);
      // Acks and errors for this batch (an error may also name the batch's begin or end message).
      if (p && type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) && seq >= p.first && seq <= p.last) {
        // The answer to GETGEN: attributes after the 4-byte nfgenmsg.
        for (let a = off + 20; a + 4 <= off + len; ) {
          const alen = buf.readUInt16LE(a);
          if (alen < 4) break;
          if ((buf.readUInt16LE(a + 2) & 0x3fff) === NFTA_GEN_ID && alen >= 8) p.gen = buf.readUInt32BE(a + 4);
          a += (alen + 3) & ~3;
        }
      }
      if (p && type === NLMSG_ERROR && seq >= p.first && seq <= p.last) {
        const errno = -buf.readInt32LE(off + 16);
        if (errno !== 0) p.errors.push(`${ERRNO[errno] ?? `errno ${errno}`} (${p.label?.(seq - p.first) ?? `message ${seq - p.first} of the batch`})`);
        p.seqs.delete(seq);
      }
      off += (len + 3) & ~3;
    }
    if (p && (p.seqs.size === 0 || p.errors.length)) p.done();
  }

  /**
   * Sends `buffer` (messages numbered `first`..`last`, of which `acked` ask for an answer) and waits
   * until each of those is answered, an error comes back, or the time is up. One exchange at a time.
   */
  private exchange(buffer: Buffer, first: number, last: number, acked: number[], timeoutMs: number, label?: (index: number) => string): Promise<{ errors: string[]; gen?: number }> {
    const run = () =>
      new Promise<{ errors: string[]; gen?: number }>((resolve) => {
        const timer = setTimeout(() => {
          state.errors.push(`no answer from the kernel in ${timeoutMs} ms`);
          state.done();
        }, timeoutMs);
        const state: NonNullable<NftNetlink['pending']> = {
          first,
          last,
          seqs: new Set(acked),
          errors: [],
          label,
          done: () => {
            clearTimeout(timer);
            this.pending = undefined;
            this.sock.unref();
            resolve({ errors: state.errors, gen: state.gen });
          },
        };
        this.pending = state;
        this.sock.ref();
        this.sock.send(buffer, {}, (err?: Error) => {
          if (err) {
            state.errors.push(err.message);
            state.done();
          }
        });
      });
    const p = this.chain.then(run, run);
    this.chain = p.then(() => undefined);
    return p;
  }

  /** The next `n` sequence numbers. */
  private take(n: number): number {
    const first = this.seq;
    this.seq = (first + n) % 0x7fffffff || 1;
    return first;
  }

  /**
   * Sends one batch, built by `build` from the first free sequence number, and waits for the kernel's
   * answer to it: the errors it reported (empty: every message was taken; with `BATCH_END`, committed).
   * `label` names a message of the batch (by its index) in the errors.
   */
  async transact(build: (firstSeq: number) => { buffer: Buffer; seqs: number[]; lastSeq: number; label?: (index: number) => string }, timeoutMs = 5000): Promise<string[]> {
    const first = this.seq;
    const b = build(first);
    this.take(b.lastSeq - first + 1);
    this.fitSendBuffer(b.buffer.length);
    const { errors } = await this.exchange(b.buffer, first, b.lastSeq, b.seqs, timeoutMs, b.label);
    return errors;
  }

  /**
   * A batch is one `sendmsg`, which the kernel refuses when it is larger than the socket's send
   * buffer (`SO_SNDBUF`, at most twice `net.core.wmem_max`). Raises the buffer as far as allowed;
   * throws BatchTooLarge when the batch still does not fit (the caller then uses `nft -f`, which
   * raises it with `SO_SNDBUFFORCE`).
   */
  private fitSendBuffer(bytes: number): void {
    const need = bytes + 4096;
    if (this.sock.getSendBufferSize() >= need) return;
    try {
      this.sock.setSendBufferSize(need);
    } catch {
      /* keep the size it has */
    }
    const have = this.sock.getSendBufferSize();
    if (have < need) throw new BatchTooLarge(bytes, have);
  }

  /**
   * Applies the element changes to `inet <table>` in one transaction. Throws NetlinkError (and the
   * kernel keeps what it had) when any element cannot be applied, e.g. a set or chain that does not
   * exist, an element to delete that is absent, or overlapping intervals.
   */
  async apply(table: string, changes: ElementChange[], timeoutMs = 5000): Promise<void> {
    if (changes.every((c) => c.elements.length === 0)) return;
    const errors = await this.transact((first) => encodeBatch(table, changes, first), timeoutMs);
    if (errors.length) throw new NetlinkError(`nf_tables netlink transaction failed: ${errors.join('; ')}`);
  }

  /**
   * The ruleset generation: the kernel increments it on every nf_tables commit, by anyone (nft,
   * iptables-nft, firewalld, Docker). An unchanged generation means an unchanged ruleset.
   */
  async generation(timeoutMs = 5000): Promise<number> {
    const seq = this.take(1);
    const msg = message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, seq, 0, 0, []);
    const { errors, gen } = await this.exchange(msg, seq, seq, [seq], timeoutMs);
    if (gen === undefined || errors.length) throw new NetlinkError(`cannot read the nf_tables generation: ${errors.join('; ') || 'no answer'}`);
    return gen;
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }
}

let shared: NftNetlink | null | undefined;
/** One netlink socket per process (opened on first use), shared by the backends and the controller. */
export function sharedNetlink(): NftNetlink | undefined {
  if (shared === undefined) shared = NftNetlink.open() ?? null;
  return shared ?? undefined;
}

// The nf_tables netlink socket of the nft backend: one NETLINK_NETFILTER socket per process, over
// which netlink-table.ts's batches go (a whole table, a change of the table, or element changes
// alone: the controller's usual change). `nft` 1.0.6 loads the table's sets, chains and rules into
// its cache before it runs any command, so even one `add element` costs about as much as listing the
// table (≈90 ms with 7,000 rules); the kernel needs none of that. A batch (NFNL_MSG_BATCH_BEGIN ...
// BATCH_END) is committed by the kernel as one transaction or not at all, exactly like `nft -f`. Also
// here: the ruleset generation, and the intervals of address elements.
//
// The socket is created in the calling process's network namespace; callers that target another
// namespace (tests with `netns`) use `nft -f` instead.
import { createRequire } from 'node:module';
import { parseCidr, type Family } from '../../../model/address.js';

const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;

/** Element additions or deletions of one set or verdict map of the table (netlink-table.ts applyElements). */
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

/** A message without attributes (nlmsghdr + nfgenmsg). */
function message(type: number, flags: number, seq: number, family: number, resId: number): Buffer {
  const head = Buffer.alloc(20);
  head.writeUInt32LE(20, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  head.writeUInt32LE(0, 12);
  head.writeUInt8(family, 16);
  head.writeUInt8(0, 17); // NFNETLINK_V0
  head.writeUInt16BE(resId, 18);
  return head;
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
   * The ruleset generation: the kernel increments it on every nf_tables commit, by anyone (nft,
   * iptables-nft, firewalld, Docker). An unchanged generation means an unchanged ruleset.
   */
  async generation(timeoutMs = 5000): Promise<number> {
    const seq = this.take(1);
    const msg = message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, seq, 0, 0);
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

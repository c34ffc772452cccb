// Connection sets: which protocols and ports a flow may use. Immutable and interned, so that
// the analyzer can compare and combine millions of them by identity and memoize the results.
import { PROTOCOLS, type Protocol } from './world.js';

/** Sorted, disjoint, non-adjacent closed ranges of ports in 1..65535. */
export type PortRanges = readonly (readonly [number, number])[];

export const MIN_PORT = 1;
export const MAX_PORT = 65535;

export function normalizeRanges(ranges: Iterable<readonly [number, number]>): PortRanges {
  const sorted = [...ranges]
    .map(([a, b]) => [Math.max(MIN_PORT, Math.min(a, b)), Math.min(MAX_PORT, Math.max(a, b))] as [number, number])
    .filter(([a, b]) => a <= b)
    .sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

function unionRanges(a: PortRanges, b: PortRanges): PortRanges {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return normalizeRanges([...a, ...b]);
}

function intersectRanges(a: PortRanges, b: PortRanges): PortRanges {
  const out: [number, number][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i][0], b[j][0]);
    const hi = Math.min(a[i][1], b[j][1]);
    if (lo <= hi) out.push([lo, hi]);
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return out;
}

function subtractRanges(a: PortRanges, b: PortRanges): PortRanges {
  const out: [number, number][] = [];
  for (const [lo0, hi] of a) {
    let lo = lo0;
    for (const [blo, bhi] of b) {
      if (bhi < lo || blo > hi) continue;
      if (blo > lo) out.push([lo, blo - 1]);
      lo = Math.max(lo, bhi + 1);
      if (lo > hi) break;
    }
    if (lo <= hi) out.push([lo, hi]);
  }
  return out;
}

function rangesContain(a: PortRanges, port: number): boolean {
  for (const [lo, hi] of a) if (port >= lo && port <= hi) return true;
  return false;
}

const FULL: PortRanges = [[MIN_PORT, MAX_PORT]];

/**
 * A set of connections: port ranges per port protocol (TCP, UDP, SCTP), plus `other`, which stands
 * for every protocol without ports (ICMP, ICMPv6, ...). "All" is every port of every protocol and `other`.
 * Instances are interned: two equal sets are the same object, so `===` is equality.
 */
export class ConnSet {
  private static readonly table = new Map<string, ConnSet>();
  private static readonly unionMemo = new Map<string, ConnSet>();
  private static readonly intersectMemo = new Map<string, ConnSet>();

  readonly key: string;
  private constructor(
    readonly tcp: PortRanges,
    readonly udp: PortRanges,
    readonly sctp: PortRanges,
    readonly other: boolean,
    key: string,
  ) {
    this.key = key;
  }

  static of(parts: { TCP?: PortRanges; UDP?: PortRanges; SCTP?: PortRanges; other?: boolean }): ConnSet {
    const tcp = normalizeRanges(parts.TCP ?? []);
    const udp = normalizeRanges(parts.UDP ?? []);
    const sctp = normalizeRanges(parts.SCTP ?? []);
    const other = parts.other ?? false;
    const key = `${fmt(tcp)}|${fmt(udp)}|${fmt(sctp)}|${other ? 1 : 0}`;
    let set = ConnSet.table.get(key);
    if (!set) {
      set = new ConnSet(tcp, udp, sctp, other, key);
      ConnSet.table.set(key, set);
    }
    return set;
  }

  static readonly none: ConnSet = ConnSet.of({});
  static readonly all: ConnSet = ConnSet.of({ TCP: FULL, UDP: FULL, SCTP: FULL, other: true });

  static ports(protocol: Protocol, from: number, to: number = from): ConnSet {
    return ConnSet.of({ [protocol]: [[from, to]] });
  }

  static allPortsOf(protocol: Protocol): ConnSet {
    return ConnSet.of({ [protocol]: FULL });
  }

  rangesOf(protocol: Protocol): PortRanges {
    return protocol === 'TCP' ? this.tcp : protocol === 'UDP' ? this.udp : this.sctp;
  }

  get isEmpty(): boolean {
    return this === ConnSet.none;
  }

  get isAll(): boolean {
    return this === ConnSet.all;
  }

  union(other: ConnSet): ConnSet {
    if (this === other || other.isEmpty || this.isAll) return this;
    if (this.isEmpty || other.isAll) return other;
    const k = this.key < other.key ? `${this.key}#${other.key}` : `${other.key}#${this.key}`;
    let r = ConnSet.unionMemo.get(k);
    if (!r) {
      r = ConnSet.of({
        TCP: unionRanges(this.tcp, other.tcp),
        UDP: unionRanges(this.udp, other.udp),
        SCTP: unionRanges(this.sctp, other.sctp),
        other: this.other || other.other,
      });
      ConnSet.unionMemo.set(k, r);
    }
    return r;
  }

  intersect(other: ConnSet): ConnSet {
    if (this === other || other.isAll) return this;
    if (this.isAll) return other;
    if (this.isEmpty || other.isEmpty) return ConnSet.none;
    const k = this.key < other.key ? `${this.key}#${other.key}` : `${other.key}#${this.key}`;
    let r = ConnSet.intersectMemo.get(k);
    if (!r) {
      r = ConnSet.of({
        TCP: intersectRanges(this.tcp, other.tcp),
        UDP: intersectRanges(this.udp, other.udp),
        SCTP: intersectRanges(this.sctp, other.sctp),
        other: this.other && other.other,
      });
      ConnSet.intersectMemo.set(k, r);
    }
    return r;
  }

  subtract(other: ConnSet): ConnSet {
    if (other.isEmpty || this.isEmpty) return this;
    if (other.isAll || this === other) return ConnSet.none;
    return ConnSet.of({
      TCP: subtractRanges(this.tcp, other.tcp),
      UDP: subtractRanges(this.udp, other.udp),
      SCTP: subtractRanges(this.sctp, other.sctp),
      other: this.other && !other.other,
    });
  }

  contains(protocol: Protocol | 'other', port?: number): boolean {
    if (protocol === 'other') return this.other;
    const ranges = this.rangesOf(protocol);
    return port === undefined ? ranges.length > 0 : rangesContain(ranges, port);
  }

  /** Compact text: `All`, `None`, `TCP 80,443 UDP 53`, `TCP 8000-8100`, `TCP all`, `ICMP/other`. */
  toString(): string {
    if (this.isAll) return 'All';
    if (this.isEmpty) return 'None';
    const parts: string[] = [];
    for (const p of PROTOCOLS) {
      const r = this.rangesOf(p);
      if (r.length === 0) continue;
      parts.push(`${p} ${r.length === 1 && r[0][0] === MIN_PORT && r[0][1] === MAX_PORT ? 'all' : fmt(r)}`);
    }
    if (this.other) parts.push('ICMP/other');
    return parts.join(' ');
  }

  /** JSON form: `{ "all": true }` or `{ "TCP": [[80,80],[443,443]], "other": false }`. */
  toJSON(): Record<string, unknown> {
    if (this.isAll) return { all: true };
    const out: Record<string, unknown> = {};
    for (const p of PROTOCOLS) {
      const r = this.rangesOf(p);
      if (r.length) out[p] = r.map(([a, b]) => [a, b]);
    }
    if (this.other) out.other = true;
    return out;
  }
}

function fmt(r: PortRanges): string {
  return r.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
}

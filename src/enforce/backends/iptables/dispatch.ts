// Verdict maps for iptables: a prefix tree of chains instead of one rule per identity.
//
// nft looks a packet's address up in a verdict map in one step. iptables has no such thing without
// skb marks (`-j SET --map-mark` is refused in filter FORWARD by iptables-nft 1.8.9, and marks are
// shared with other tools), so a map becomes a tree of dispatch chains over its addresses: each
// chain splits its addresses by the next bits after their common prefix into at most `fanout`
// groups (`-d <prefix>/<len> -g <child>`, path-compressed: a child's prefix is its own addresses'
// common prefix), and a chain with at most `bucket` addresses holds one `-d <addr>/32 -g <identity
// chain>` rule per address, commented with the address' owner. A new connection walks a few rules
// per level, O(log n) in all, instead of one rule per identity.
//
// Every jump inside the tree is a goto (`-g`): when the identity chain returns (RETURN, or the end
// of the chain), processing goes on in the chain that jumped (`-j`) to the root, right after that
// jump, as after an nft vmap jump. The prefixes of one chain are disjoint, so at most one rule of a
// chain matches, and an address not in the map falls off the end of one chain back to the caller.
//
// Chain names are content hashes (`<prefix>-D<12 hex>`, a Merkle hash: a chain's rules name its
// children), so an unchanged subtree keeps its names across applies and a changed one gets new
// chains; chains no longer used are deleted by the caller's stale-chain logic.
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { Family } from '../../../model/address.js';
import { assertName, canonicalAddress, safeComment, xtablesString } from '../../validate.js';
import { canonicalIPv4Value } from '../../compile/ipv4.js';

/** Chosen by measurement (bench/README.md, "Data plane"; docs/enforcement.md "Costs and limits"). */
export const DEFAULT_FANOUT = 8;
export const DEFAULT_BUCKET = 32;

/**
 * At most this many dispatch chains on a path: nf_tables refuses a chain 16 jumps or gotos away from
 * a base chain ("Too many links"); FORWARD -> DOCKER-USER -> MOAT -> 8 dispatch chains -> the
 * identity chain is 11, and the log chain a drop there goes to (render.ts) 12, which leaves room. A chain at the last level holds all its addresses' rules
 * (long only for address layouts the prefix split cannot divide, never for Docker's dense subnets).
 */
export const MAX_DEPTH = 8;

export interface DispatchOptions {
  /** At most this many child rules per inner chain (2..256). */
  fanout?: number;
  /** A chain with at most this many addresses holds the per-address rules (1..256). */
  bucket?: number;
}

export interface DispatchEntry {
  /** Host address (canonicalised here). */
  address: string;
  /** The iptables chain the address dispatches to. */
  target: string;
  /** Owner for the rule's comment (e.g. `ctr:<id>`). */
  owner: string;
}

export interface DispatchChain {
  name: string;
  /** Rule arguments after `-A <name> `. */
  rules: string[];
}

export interface DispatchTree {
  /** The chain to jump to (`-j`) from the rule that stood for the verdict map; undefined when the map is empty. */
  root?: string;
  /** All chains of the tree, children before parents, each once. */
  chains: DispatchChain[];
}

interface Item {
  value: bigint;
  text: string;
  target: string;
  owner: string;
}

/** The name of a dispatch chain for a chain prefix and a 12-hex-digit hash. */
export function dispatchChainPattern(chainPrefix: string): RegExp {
  return new RegExp(`^${chainPrefix}-D[0-9a-f]{12}$`);
}

function toBigInt(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBigInt(v: bigint, family: Family): string {
  const len = family === 4 ? 4 : 16;
  const bytes: number[] = new Array<number>(len);
  for (let i = len - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

function bounded(v: number | undefined, def: number, lo: number, hi: number, what: string): number {
  const x = v ?? def;
  if (!Number.isInteger(x) || x < lo || x > hi) throw new Error(`invalid dispatch ${what}: ${x}`);
  return x;
}

/**
 * The dispatch tree for one verdict map in one direction (`src`: `-s`, `dst`: `-d`).
 * Entries must be of `family`; a repeated address keeps its first entry (as the plan does).
 */
export function dispatchTree(entries: DispatchEntry[], family: Family, dir: 'src' | 'dst', chainPrefix: string, options: DispatchOptions = {}): DispatchTree {
  const fanout = bounded(options.fanout, DEFAULT_FANOUT, 2, 256, 'fan-out');
  const bucket = bounded(options.bucket, DEFAULT_BUCKET, 1, 256, 'bucket size');
  const width = family === 4 ? 32 : 128;
  const flag = dir === 'src' ? '-s' : '-d';
  const seen = new Set<bigint>();
  const items: Item[] = [];
  for (const e of entries) {
    // Canonical dotted-quad text (what plans hold) is read without ipaddr.js: the same value and text.
    const v4 = family === 4 ? canonicalIPv4Value(e.address) : -1;
    let value: bigint;
    let text: string;
    if (v4 >= 0) {
      value = BigInt(v4);
      text = e.address;
    } else {
      const a = canonicalAddress(e.address);
      if (a.family !== family) throw new Error(`address ${a.text} in an IPv${family} map`);
      value = toBigInt(ipaddr.parse(a.text).toByteArray());
      text = a.text;
    }
    if (seen.has(value)) continue;
    seen.add(value);
    items.push({ value, text, target: assertName(e.target, 'chain name'), owner: safeComment(e.owner) });
  }
  if (items.length === 0) return { chains: [] };
  items.sort((x, y) => (x.value < y.value ? -1 : x.value > y.value ? 1 : 0));

  const chains = new Map<string, DispatchChain>();
  const W = BigInt(width);
  const leafRule = (it: Item) => `${flag} ${it.text}/${width} -m comment --comment ${xtablesString(it.owner)} -g ${it.target}`;
  /** Length of the common prefix of the (sorted) items lo..hi-1: that of the first and the last. */
  const commonPrefix = (lo: number, hi: number): number => {
    const diff = items[lo].value ^ items[hi - 1].value;
    return diff === 0n ? width : width - diff.toString(2).length;
  };
  const groupsAt = (lo: number, hi: number, shift: bigint): number[] => {
    const starts = [lo];
    for (let i = lo + 1; i < hi; i++) if (items[i].value >> shift !== items[i - 1].value >> shift) starts.push(i);
    return starts;
  };
  const emit = (rules: string[]): string => {
    const h = createHash('sha256').update(`${family}|${dir}|${rules.join('\n')}`).digest('hex').slice(0, 12);
    const name = assertName(`${chainPrefix}-D${h}`, 'chain name');
    if (!chains.has(name)) chains.set(name, { name, rules });
    return name;
  };
  const build = (lo: number, hi: number, depth: number): string => {
    if (hi - lo <= bucket || depth >= MAX_DEPTH) return emit(items.slice(lo, hi).map(leafRule));
    const p = commonPrefix(lo, hi);
    // Split on the bits after the common prefix (at least one: the first and the last address
    // differ there): the fewest bits that leave no group above `bucket`, else the most bits that
    // give at most `fanout` groups.
    const fits = (st: number[]) => st.every((a, g) => (g + 1 < st.length ? st[g + 1] : hi) - a <= bucket);
    let starts = groupsAt(lo, hi, W - BigInt(p + 1));
    for (let k = 2; p + k <= width && !fits(starts); k++) {
      const next = groupsAt(lo, hi, W - BigInt(p + k));
      if (next.length > fanout) break;
      starts = next;
    }
    const rules: string[] = [];
    for (let g = 0; g < starts.length; g++) {
      const a = starts[g];
      const b = g + 1 < starts.length ? starts[g + 1] : hi;
      if (b - a === 1) {
        rules.push(leafRule(items[a]));
        continue;
      }
      const len = commonPrefix(a, b);
      const net = (items[a].value >> BigInt(width - len)) << BigInt(width - len);
      // No comment here: in iptables-nft a comment is an xt match, run for every rule that matches.
      rules.push(`${flag} ${fromBigInt(net, family)}/${len} -g ${build(a, b, depth + 1)}`);
    }
    return emit(rules);
  };
  const root = build(0, items.length, 1);
  return { root, chains: [...chains.values()] };
}

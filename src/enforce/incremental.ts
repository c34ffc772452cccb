// Incremental updates for the nft backend: from the plan the kernel holds to the next one with
// element, map and chain changes only (`add element`, `delete element`, `add chain` ...), in one
// `nft -f` transaction. Used by the controller when a container comes or goes: set and chain names
// are stable under membership changes (peer sets are named by the peer's identity in the policy,
// per-identity chains by their rules), so one new container is a handful of element changes.
// A set or verdict map whose capacity changed (it filled up) is replaced in the same transaction: the
// kernel cannot resize one in place, so the chains that use it (base chains for a map) are flushed,
// it is deleted and created anew with its elements, and the chains' rules are loaded again. Anything
// else (a base chain changed, the NFLOG group changed, a chain's rules changed under the same name) is
// not incremental: the caller does a whole-table replace.
import type { AddressSet, PlanChain, RulesetPlan, VerdictMap } from './plan-model.js';
import { chainComment, mapElementText, portItems, portSetRanges, renderRule, tableName, validSize } from './backends/nft/render.js';
import { assertName, elementText, safeComment } from './validate.js';
import type { ElementChange } from './backends/nft/netlink.js';
import type { TableChange } from './backends/nft/netlink-table.js';

export interface IncrementalChanges {
  setsAdded: string[];
  setsRemoved: string[];
  /** Sets and verdict maps created anew with another capacity (their elements count as added). */
  setsResized: string[];
  /** Chains whose rules were loaded again because a set or map they use was created anew. */
  chainsReloaded: string[];
  chainsAdded: string[];
  chainsRemoved: string[];
  elementsAdded: number;
  elementsRemoved: number;
  mapElementsAdded: number;
  mapElementsRemoved: number;
}

export type IncrementalDiff =
  | {
      incremental: true;
      script: string;
      changes: IncrementalChanges;
      empty: boolean;
      /**
       * The same change as element operations only, in the script's order (deletions first), when
       * no set or chain is added or removed: what the netlink writer can apply without `nft`.
       */
      elementOps?: ElementChange[];
      /**
       * The same change for the netlink writer (netlink-table.ts encodeChangeBatch), and the names of
       * the sets and maps the kernel holds before it, which rules of new chains refer to by name.
       */
      netlink: { change: TableChange; existing: ReadonlySet<string> };
    }
  | { incremental: false; reason: string };

const setKey = (v: string, owner: string) => `${elementText(v).text}\u0000${owner}`;

/** A set's element change for the netlink writer (deleting names the value only). */
function setChange(verb: 'add' | 'delete', s: AddressSet, elements: AddressSet['elements']): ElementChange {
  return { verb, kind: 'set', name: s.name, family: s.family, exact: s.exact, elements: elements.map((e) => (verb === 'add' ? { value: e.value, owner: e.owner } : { value: e.value })) };
}

function elemText(value: string, owner: string): string {
  return `${elementText(value).text} comment "${safeComment(owner)}"`;
}

/**
 * Elements of `a` not in `b` and of `b` not in `a`, by `key`. Plans list elements in a stable order,
 * so one added or removed container leaves a long common prefix and suffix: only the middle is hashed.
 */
function changed<T>(a: T[], b: T[], same: (x: T, y: T) => boolean, key: (x: T) => string): { gone: T[]; come: T[] } {
  // The same object is the same element (a compile session's delta keeps the others' elements): no
  // comparison call for the 10,000 of a map.
  let lo = 0;
  const n = Math.min(a.length, b.length);
  while (lo < n && a[lo] === b[lo]) lo++;
  while (lo < n && same(a[lo], b[lo])) lo++;
  let ha = a.length;
  let hb = b.length;
  while (ha > lo && hb > lo && (a[ha - 1] === b[hb - 1] || same(a[ha - 1], b[hb - 1]))) {
    ha--;
    hb--;
  }
  let ma = a.slice(lo, ha);
  let mb = b.slice(lo, hb);
  if (ma.length === 0 || mb.length === 0) return { gone: ma, come: mb };
  // Elements that are the same objects in both (a compile session's policy delta keeps the others'
  // elements, wherever its changes sit in the list) need no key text; the rest are compared by key.
  const objsA = new Set(ma);
  const objsB = new Set(mb);
  ma = ma.filter((x) => !objsB.has(x));
  mb = mb.filter((x) => !objsA.has(x));
  if (ma.length === 0 || mb.length === 0) return { gone: ma, come: mb };
  const before = new Set(ma.map(key));
  const after = new Set(mb.map(key));
  return { gone: ma.filter((x) => !after.has(key(x))), come: mb.filter((x) => !before.has(key(x))) };
}

/** Same length and the same name at every position. */
function aligned<T extends { name: string }>(a: T[], b: T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && a[i].name !== b[i].name) return false;
  return true;
}

const chainSigs = new WeakMap<PlanChain, string>();
function chainSig(c: PlanChain): string {
  let sig = chainSigs.get(c);
  if (sig === undefined) {
    sig = JSON.stringify({ hook: c.hook ?? null, rules: c.rules });
    chainSigs.set(c, sig);
  }
  return sig;
}

/**
 * The nft script taking the kernel from `prev` to `next` with element-level changes, or the reason
 * why that is not possible. The script fails as a whole (nothing changes) if the kernel does not hold
 * `prev` (e.g. an element to delete is absent), so the caller can fall back to a full replace.
 */
export function incrementalScript(prev: RulesetPlan, next: RulesetPlan, options: { table?: string } = {}): IncrementalDiff {
  const t = tableName(options);
  if (prev.nflogGroup !== next.nflogGroup) return { incremental: false, reason: 'NFLOG group changed' };
  // The compile session keeps the chains' and sets' order: when the names line up one to one (a
  // container came or went), nothing was added or removed, and no lookup tables are needed (at
  // 10,000 endpoints they were half of this function's allocations, which the garbage collector pays).
  const chainsAligned = aligned(prev.chains, next.chains);
  const prevChains = chainsAligned ? undefined : new Map(prev.chains.map((c) => [c.name, c]));
  const nextChains = chainsAligned ? undefined : new Map(next.chains.map((c) => [c.name, c]));
  for (let i = 0; i < next.chains.length; i++) {
    const c = next.chains[i];
    const p = chainsAligned ? prev.chains[i] : prevChains!.get(c.name);
    // Per-identity chains are named by a hash of their rules: the same name is the same rules.
    // Base chains keep their names: compare their rules.
    if (p && p !== c && (c.hook || p.hook) && chainSig(p) !== chainSig(c)) return { incremental: false, reason: `chain ${c.name} changed` };
    if (!p && c.hook) return { incremental: false, reason: `base chain ${c.name} added` };
  }
  if (nextChains) for (const c of prev.chains) if (c.hook && !nextChains.has(c.name)) return { incremental: false, reason: `base chain ${c.name} removed` };
  const setsAligned = aligned(prev.sets, next.sets);
  const prevSets = setsAligned ? undefined : new Map(prev.sets.map((s) => [s.name, s]));
  const nextSets = setsAligned ? undefined : new Map(next.sets.map((s) => [s.name, s]));
  const prevSet = (s: AddressSet, i: number) => (setsAligned ? prev.sets[i] : prevSets!.get(s.name));
  const resized = new Set<string>();
  for (let i = 0; i < next.sets.length; i++) {
    const s = next.sets[i];
    const p = prevSet(s, i);
    if (p && p.family !== s.family) return { incremental: false, reason: `set ${s.name} changed family` };
    // A set declared with or without intervals is a different kernel set (e.g. a plan recorded by an
    // earlier moat, whose known-address sets had intervals): replace the table.
    if (p && !!p.exact !== !!s.exact) return { incremental: false, reason: `set ${s.name} changed type` };
    // The kernel's set has the capacity of the plan that created it: another capacity is another set.
    if (p && p.size !== s.size) resized.add(s.name);
    if (s.size !== undefined && s.elements.length > s.size) return { incremental: false, reason: `set ${s.name} is full` };
  }
  const prevMaps = new Map(prev.maps.map((m) => [m.name, m]));
  const resizedMaps = new Set<string>();
  for (const m of next.maps) {
    const p = prevMaps.get(m.name);
    if (!p || p.family !== m.family) return { incremental: false, reason: `map ${m.name} added or changed` };
    // The kernel's map has the capacity of the plan that created it: another capacity is another map.
    if (p.size !== m.size) resizedMaps.add(m.name);
    if (m.size !== undefined && m.elements.length > m.size) return { incremental: false, reason: `map ${m.name} is full` };
  }
  for (const m of prev.maps) if (!next.maps.some((x) => x.name === m.name)) return { incremental: false, reason: `map ${m.name} removed` };

  // The chains that use a set or map created anew (a base chain uses the maps): flushed before it
  // goes and, unless they go too, loaded again after it is back, in the same transaction.
  const reloaded: PlanChain[] = [];
  const flushedFirst: string[] = [];
  if (resized.size || resizedMaps.size) {
    const nextByName = nextChains ?? new Map(next.chains.map((c) => [c.name, c]));
    const uses = (c: PlanChain) => c.rules.some((r) => (r.verdict.kind === 'vmap' && resizedMaps.has(r.verdict.map)) || r.matches.some((m) => m.kind === 'set' && resized.has(m.set)));
    for (const c of prev.chains) {
      if (!uses(c)) continue;
      const n = nextByName.get(c.name);
      if (n) reloaded.push(n);
      else flushedFirst.push(c.name);
    }
  }

  const replacedMaps = resizedMaps.size ? next.maps.filter((m) => resizedMaps.has(m.name)) : [];
  const changes: IncrementalChanges = { setsAdded: [], setsRemoved: [], setsResized: [...resized, ...resizedMaps], chainsReloaded: reloaded.map((c) => c.name), chainsAdded: [], chainsRemoved: [], elementsAdded: 0, elementsRemoved: 0, mapElementsAdded: 0, mapElementsRemoved: 0 };
  // Element changes of the sets and maps the kernel holds (a new set's elements come with it).
  const addOps: ElementChange[] = [];
  const delOps: ElementChange[] = [];
  // For the netlink writer: new sets and chains whole, and the element changes above.
  const change: TableChange = { portSets: [], sets: [], chains: [], elements: [], chainsRemoved: [], setsRemoved: [], setsReplaced: [...resized], chainsReloaded: reloaded, chainsFlushedFirst: flushedFirst, mapsReplaced: replacedMaps };
  const head: string[] = []; // new sets and chains (before anything refers to them)
  const dels: string[] = []; // element deletions (before additions: interval sets must not overlap)
  const adds: string[] = [];
  const tail: string[] = []; // chains and sets no longer used (after the map elements leave them)

  for (let i = 0; i < next.sets.length; i++) {
    const s = next.sets[i];
    const p = prevSet(s, i);
    if (!p || resized.has(s.name)) {
      if (!p) changes.setsAdded.push(s.name);
      change.sets.push(s);
      head.push(`add set inet ${t} ${assertName(s.name, 'set name')} { type ${s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'};${s.exact ? '' : ' flags interval;'}${s.size === undefined ? '' : ` size ${validSize(s.size, s.name)};`} }`);
      if (s.elements.length) {
        adds.push(elementCommand('add', t, s, s.elements));
        changes.elementsAdded += s.elements.length;
      }
      continue;
    }
    // The compile session hands unchanged sets over as the same objects: nothing to compare.
    if (p === s || p.elements === s.elements) continue;
    const { gone, come } = changed(p.elements, s.elements, (x, y) => x.value === y.value && x.owner === y.owner, (e) => setKey(e.value, e.owner));
    if (gone.length) {
      dels.push(elementCommand('delete', t, s, gone));
      delOps.push(setChange('delete', s, gone));
    }
    if (come.length) {
      adds.push(elementCommand('add', t, s, come));
      addOps.push(setChange('add', s, come));
    }
    changes.elementsRemoved += gone.length;
    changes.elementsAdded += come.length;
  }
  if (prevChains) for (const c of next.chains) {
    if (prevChains.has(c.name)) continue;
    changes.chainsAdded.push(c.name);
    change.chains.push(c);
    head.push(`add chain inet ${t} ${assertName(c.name, 'chain name')} { comment "${chainComment(c)}"; }`);
    for (const r of c.rules) head.push(`add rule inet ${t} ${c.name} ${renderRule(r, next.nflogGroup)}`);
  }
  for (const m of next.maps) {
    const p = prevMaps.get(m.name)!;
    if (resizedMaps.has(m.name)) {
      // Created anew (below), with all its elements.
      if (m.elements.length) adds.push(`add element inet ${t} ${assertName(m.name, 'map name')} { ${m.elements.map(mapElementText).join(', ')} }`);
      changes.mapElementsAdded += m.elements.length;
      continue;
    }
    if (p === m || p.elements === m.elements) continue;
    const key = (e: VerdictMap['elements'][number]) => `${e.key}\u0000${e.chain}\u0000${e.owner}`;
    const { gone, come } = changed(p.elements, m.elements, (x, y) => x.key === y.key && x.chain === y.chain && x.owner === y.owner, key);
    // Deleting a map element names the key only.
    if (gone.length) {
      dels.push(`delete element inet ${t} ${assertName(m.name, 'map name')} { ${gone.map((e) => elementText(e.key).text).join(', ')} }`);
      delOps.push({ verb: 'delete', kind: 'map', name: m.name, family: m.family, elements: gone.map((e) => ({ value: e.key })) });
    }
    if (come.length) {
      adds.push(`add element inet ${t} ${assertName(m.name, 'map name')} { ${come.map(mapElementText).join(', ')} }`);
      addOps.push({ verb: 'add', kind: 'map', name: m.name, family: m.family, elements: come.map((e) => ({ value: e.key, owner: e.owner, chain: e.chain })) });
    }
    changes.mapElementsRemoved += gone.length;
    changes.mapElementsAdded += come.length;
  }
  if (nextChains) for (const c of prev.chains) {
    if (nextChains.has(c.name)) continue;
    changes.chainsRemoved.push(c.name);
    change.chainsRemoved.push(c.name);
    tail.push(`flush chain inet ${t} ${assertName(c.name, 'chain name')}`, `delete chain inet ${t} ${c.name}`);
  }
  if (nextSets) for (const s of prev.sets) {
    if (nextSets.has(s.name)) continue;
    changes.setsRemoved.push(s.name);
    change.setsRemoved.push(s.name);
    tail.push(`delete set inet ${t} ${assertName(s.name, 'set name')}`);
  }
  // Shared port sets (render.ts portSetName) change only with chains: declare the new ones before
  // the chains that use them, delete the unused ones after the chains that used them.
  // Rules of new and reloaded chains name the sets the kernel holds (those of the previous plan, less
  // the ones created anew, which the batch declares) by name.
  const existing = new Set<string>();
  let before: Map<string, unknown> | undefined;
  if (changes.chainsAdded.length || changes.chainsRemoved.length) {
    before = portSetRanges(prev);
    const after = portSetRanges(next);
    const fresh: string[] = [];
    for (const [name, ranges] of after) {
      if (before.has(name)) continue;
      changes.setsAdded.push(name);
      change.portSets.push({ name, ranges });
      fresh.push(`add set inet ${t} ${assertName(name, 'set name')} { type inet_service; flags interval; elements = { ${portItems(ranges).join(', ')} }; }`);
    }
    head.unshift(...fresh);
    for (const name of before.keys()) {
      if (after.has(name)) continue;
      changes.setsRemoved.push(name);
      change.setsRemoved.push(name);
      tail.push(`delete set inet ${t} ${assertName(name, 'set name')}`);
    }
  }
  if (change.chains.length || reloaded.length) {
    for (const x of prev.sets) if (!resized.has(x.name)) existing.add(x.name);
    for (const x of prev.maps) if (!resizedMaps.has(x.name)) existing.add(x.name);
    // The reloaded chains' port sets are the kernel's (the chains had them); new chains' may be any.
    for (const name of (before ?? portSetRanges({ chains: reloaded })).keys()) existing.add(name);
  }
  if (resized.size || resizedMaps.size) {
    // Ahead of everything else: the chains that use them flushed, the sets and maps deleted, the maps
    // declared anew (the new sets' declarations follow in `head`, the maps' elements in `adds`); the
    // reloaded chains' rules after the new chains' rules.
    const first = [...reloaded.map((c) => c.name), ...flushedFirst].map((c) => `flush chain inet ${t} ${assertName(c, 'chain name')}`);
    for (const name of resized) first.push(`delete set inet ${t} ${assertName(name, 'set name')}`);
    for (const name of resizedMaps) first.push(`delete map inet ${t} ${assertName(name, 'map name')}`);
    for (const m of replacedMaps) first.push(`add map inet ${t} ${m.name} { type ${m.family === 4 ? 'ipv4_addr' : 'ipv6_addr'} : verdict;${m.size === undefined ? '' : ` size ${validSize(m.size, m.name)};`} }`);
    head.unshift(...first);
    for (const c of reloaded) for (const r of c.rules) head.push(`add rule inet ${t} ${c.name} ${renderRule(r, next.nflogGroup)}`);
  }
  change.elements = [...delOps, ...addOps];
  const lines = [...head, ...dels, ...adds, ...tail];
  const elementOps = head.length === 0 && tail.length === 0 ? change.elements : undefined;
  return { incremental: true, script: lines.length ? `${lines.join('\n')}\n` : '', changes, empty: lines.length === 0, elementOps, netlink: { change, existing } };
}

function elementCommand(verb: 'add' | 'delete', table: string, s: AddressSet, elements: AddressSet['elements']): string {
  // Deleting names the element only (comments are not part of the key).
  const items = elements.map((e) => (verb === 'add' ? elemText(e.value, e.owner) : elementText(e.value).text));
  return `${verb} element inet ${table} ${assertName(s.name, 'set name')} { ${items.join(', ')} }`;
}

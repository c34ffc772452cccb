// A plain JS tree (objects, arrays, scalars) read from YAML, with the source position of every
// node kept on the side (a WeakMap keyed by the containing object/array), so positions survive
// interpolation, merging and `extends`.
import YAML, { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node as YNode } from 'yaml';
import type { SourcePos } from '../../model/diagnostics.js';
import { UserError } from '../../model/diagnostics.js';

export type Scalar = string | number | boolean | null;
export type Value = Scalar | Obj | Arr;
export interface Obj {
  [key: string]: Value;
}
export type Arr = Value[];

/** Compose merge tags (Compose 2.24.4+): `!reset` removes the attribute, `!override` replaces it instead of merging. */
export type MergeTag = 'reset' | 'override';

interface PosInfo {
  self?: SourcePos;
  children: Map<string | number, SourcePos>;
  /** Merge tags of the children that carried one in the YAML source. */
  tags?: Map<string, MergeTag>;
}

const positions = new WeakMap<object, PosInfo>();

function info(container: object): PosInfo {
  let i = positions.get(container);
  if (!i) {
    i = { children: new Map() };
    positions.set(container, i);
  }
  return i;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Position of the container itself. */
export function selfPos(container: object): SourcePos | undefined {
  return positions.get(container)?.self;
}

export function setSelfPos(container: object, pos: SourcePos | undefined): void {
  if (pos) info(container).self = pos;
}

/** Position of the child `key` of `container` (the value node). */
export function childPos(container: object, key: string | number): SourcePos | undefined {
  const child = (container as Record<string | number, unknown>)[key];
  if (typeof child === 'object' && child !== null) {
    const p = positions.get(child)?.self;
    if (p) return p;
  }
  return positions.get(container)?.children.get(key) ?? positions.get(container)?.self;
}

export function setChildPos(container: object, key: string | number, pos: SourcePos | undefined): void {
  if (pos) info(container).children.set(key, pos);
}

/** The Compose merge tag (`!reset`, `!override`) written on the value of `container[key]`, if any. */
export function childTag(container: object, key: string): MergeTag | undefined {
  return positions.get(container)?.tags?.get(key);
}

export function setChildTag(container: object, key: string, tag: MergeTag | undefined): void {
  const i = info(container);
  if (tag) (i.tags ??= new Map()).set(key, tag);
  else i.tags?.delete(key);
}

/** Copies the position of `from[fromKey]` to `to[toKey]`. */
export function copyChildPos(from: object, fromKey: string | number, to: object, toKey: string | number): void {
  const p = positions.get(from)?.children.get(fromKey) ?? childPos(from, fromKey);
  setChildPos(to, toKey, p);
}

/** Follows a path through the tree and returns the deepest known position. */
export function positionAt(root: Value, path: (string | number)[]): SourcePos | undefined {
  let cur: Value = root;
  let best: SourcePos | undefined = typeof root === 'object' && root !== null ? selfPos(root) : undefined;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) break;
    const next: Value | undefined = (cur as Record<string | number, Value>)[key];
    if (next === undefined) break;
    best = childPos(cur, key) ?? best;
    cur = next;
  }
  return best;
}

/** Sets a key without ever touching the prototype (a YAML key may be `__proto__`). */
export function setKey(o: Obj, key: string, v: Value): void {
  Object.defineProperty(o, key, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Deep copy that keeps positions. */
export function clone<T extends Value>(v: T): T {
  if (Array.isArray(v)) {
    const out: Arr = v.map((x) => clone(x));
    const i = positions.get(v);
    if (i) positions.set(out, { self: i.self, children: new Map(i.children) });
    return out as T;
  }
  if (isObj(v)) {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) setKey(out, k, clone(x));
    const i = positions.get(v);
    if (i) positions.set(out, { self: i.self, children: new Map(i.children), tags: i.tags && new Map(i.tags) });
    return out as T;
  }
  return v;
}

const MAX_NODES = 2_000_000;

/** Parses a YAML file into a positioned tree. Resolves aliases and merge keys (`<<: *a`, `<<: [*a, *b]`). */
export function parseYamlTree(text: string, file: string): Value {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, {
    lineCounter,
    merge: true,
    uniqueKeys: true,
    prettyErrors: false,
  });
  const posAt = (offset: number | undefined): SourcePos => {
    if (offset === undefined) return { file, line: 0, col: 0 };
    const lp = lineCounter.linePos(offset);
    return { file, line: lp.line, col: lp.col };
  };
  if (doc.errors.length) {
    throw new UserError(
      doc.errors.map((e) => ({
        severity: 'error' as const,
        code: 'compose.yaml',
        message: `malformed YAML: ${e.message.split('\n')[0]}`,
        fix: 'Correct the YAML syntax at this position (indentation, quotes, brackets).',
        pos: e.linePos ? { file, line: e.linePos[0].line, col: e.linePos[0].col } : posAt(e.pos[0]),
      })),
    );
  }
  // Anchors collected once (document order); an alias refers to the closest anchor of its name before it.
  const anchors = new Map<string, { at: number; node: YNode }[]>();
  YAML.visit(doc, (_key, node) => {
    const n = node as YNode;
    if (!isAlias(n) && n.anchor) {
      let list = anchors.get(n.anchor);
      if (!list) anchors.set(n.anchor, (list = []));
      list.push({ at: n.range?.[0] ?? 0, node: n });
    }
  });
  const anchorFor = (name: string, at: number): YNode | undefined => {
    const list = anchors.get(name);
    if (!list) return undefined;
    // Visit order is document order; binary search for the last anchor starting before `at`.
    let lo = 0;
    let hi = list.length - 1;
    let found: YNode | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].at < at) {
        found = list[mid].node;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
  let budget = MAX_NODES;
  const convert = (node: YNode | null | undefined, depth: number): Value => {
    if (--budget < 0 || depth > 200) {
      throw new UserError({
        severity: 'error',
        code: 'compose.yaml',
        message: 'YAML document too large or too deeply nested after expanding aliases',
        fix: 'Reduce the use of nested aliases.',
        pos: posAt(node?.range?.[0]),
      });
    }
    if (node == null) return null;
    if (isAlias(node)) {
      const target = anchorFor(node.source, node.range?.[0] ?? Number.MAX_SAFE_INTEGER);
      if (!target) {
        throw new UserError({
          severity: 'error',
          code: 'compose.yaml',
          message: `unknown YAML alias *${node.source}`,
          fix: 'Define the anchor (&name) before using the alias.',
          pos: posAt(node.range?.[0]),
        });
      }
      return convert(target as YNode, depth + 1);
    }
    if (isScalar(node)) {
      let v = node.value;
      // A merge tag leaves a plain scalar unresolved (a string): read it as the core schema would.
      if ((node.tag === '!override' || node.tag === '!reset') && node.type === 'PLAIN' && typeof v === 'string') {
        const typed: unknown = YAML.parse(v);
        if (typed === null || typeof typed === 'number' || typeof typed === 'boolean') v = typed;
      }
      if (v === null || v === undefined) return null;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
      if (typeof v === 'bigint') return Number(v);
      return String(v);
    }
    if (isSeq(node)) {
      const out: Arr = [];
      setSelfPos(out, posAt(node.range?.[0]));
      node.items.forEach((item, i) => {
        const n = item as YNode;
        out.push(convert(n, depth + 1));
        setChildPos(out, i, posAt(n?.range?.[0] ?? node.range?.[0]));
      });
      return out;
    }
    if (isMap(node)) {
      const out: Obj = {};
      setSelfPos(out, posAt(node.range?.[0]));
      const merges: Obj[] = [];
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = pair.key as YNode | null;
        if (isScalar(k) && (typeof k.value === 'symbol' || (k.value === '<<' && k.type === 'PLAIN'))) {
          const v = convert(pair.value as YNode, depth + 1);
          const sources = Array.isArray(v) ? v : [v];
          for (const s of sources) {
            if (!isObj(s)) {
              throw new UserError({
                severity: 'error',
                code: 'compose.yaml',
                message: 'merge key << needs a mapping or a list of mappings',
                fix: 'Use `<<: *anchor` or `<<: [*a, *b]` where the anchors name mappings.',
                pos: posAt(k.range?.[0]),
              });
            }
            merges.push(s);
          }
          continue;
        }
        let key: string;
        if (isScalar(k)) key = k.value === null || k.value === undefined ? '' : String(k.value);
        else {
          throw new UserError({
            severity: 'error',
            code: 'compose.yaml',
            message: 'mapping keys must be scalars',
            fix: 'Use a plain string as the key.',
            pos: posAt(k?.range?.[0] ?? node.range?.[0]),
          });
        }
        const vnode = pair.value as YNode | null;
        setKey(out, key, convert(vnode, depth + 1));
        setChildPos(out, key, posAt(vnode?.range?.[0] ?? k.range?.[0]));
        const tag = vnode?.tag === '!reset' ? 'reset' : vnode?.tag === '!override' ? 'override' : undefined;
        if (tag) setChildTag(out, key, tag);
      }
      // YAML merge: explicit keys win; among the merged mappings the first one wins.
      for (const m of merges) {
        for (const [key, v] of Object.entries(m)) {
          if (Object.prototype.hasOwnProperty.call(out, key)) continue;
          setKey(out, key, v);
          copyChildPos(m, key, out, key);
        }
      }
      return out;
    }
    return null;
  };
  return convert(doc.contents as YNode | null, 0);
}

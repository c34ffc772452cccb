// Compose merge rules (Compose Specification, "Merge and override"), applied to trees whose
// list-or-map fields were already made maps (see canonical.ts):
//  - mappings merge recursively, the later file winning per key (environment, labels, networks, depends_on...);
//  - sequences are appended (ports, expose, dns, volumes, cap_add, security_opt, ...); duplicates of the
//    fields Compose keeps unique are dropped later, when the service is normalised;
//  - `command`, `entrypoint` and `healthcheck.test` are replaced;
//  - scalars are replaced;
//  - merge tags (Compose 2.24.4+) on a value of the override: `!reset` removes the attribute (the value
//    written is ignored), `!override` replaces the base value instead of merging or appending.
import { childPos, childTag, clone, isObj, selfPos, setChildPos, setChildTag, setKey, setSelfPos, type Arr, type Obj, type Value } from './tree.js';

const REPLACE = ['services.*.command', 'services.*.entrypoint', 'services.*.healthcheck.test', 'name'];
/** null in the override keeps the base mapping (a bare `net:` in an override file). */
const NULL_KEEPS = ['services.*.networks.*', 'services.*.depends_on.*', 'networks.*', 'volumes.*', 'services.*'];

function matches(pattern: string, path: string[]): boolean {
  const p = pattern.split('.');
  if (p.length !== path.length) return false;
  return p.every((seg, i) => seg === '*' || seg === path[i]);
}

function rule(list: string[], path: string[]): boolean {
  return list.some((p) => matches(p, path));
}

/** Deep copy of an override value with its `!reset` attributes removed (nothing to reset below a new value). */
function fresh<T extends Value>(v: T): T {
  const out = clone(v);
  const strip = (x: Value): void => {
    if (Array.isArray(x)) x.forEach(strip);
    else if (isObj(x)) {
      for (const k of Object.keys(x)) {
        if (childTag(x, k) === 'reset') {
          delete x[k];
          setChildTag(x, k, undefined);
        } else strip(x[k]);
      }
    }
  };
  strip(out);
  return out;
}

/** Merges `over` onto `base` and returns a fresh tree (inputs are not modified). `path` is the location in the model. */
export function mergeValue(base: Value | undefined, over: Value, path: string[]): Value {
  if (base === undefined) return fresh(over);
  if (rule(REPLACE, path)) return fresh(over);
  if (over === null && base !== null && typeof base === 'object' && rule(NULL_KEEPS, path)) return clone(base);
  if (isObj(base) && isObj(over)) {
    const out: Obj = {};
    setSelfPos(out, selfPos(base) ?? selfPos(over));
    for (const [k, v] of Object.entries(base)) {
      setKey(out, k, clone(v));
      setChildPos(out, k, childPos(base, k));
    }
    for (const [k, v] of Object.entries(over)) {
      const tag = childTag(over, k);
      if (tag === 'reset') {
        delete out[k];
        continue;
      }
      const had = Object.prototype.hasOwnProperty.call(out, k);
      setKey(out, k, had && tag !== 'override' ? mergeValue(out[k], v, [...path, k]) : fresh(v));
      setChildPos(out, k, childPos(over, k));
      setChildTag(out, k, tag);
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over)) {
    const out: Arr = [];
    setSelfPos(out, selfPos(base) ?? selfPos(over));
    for (const src of [base, over]) {
      src.forEach((v, i) => {
        out.push(clone(v));
        setChildPos(out, out.length - 1, childPos(src, i));
      });
    }
    return out;
  }
  return fresh(over);
}

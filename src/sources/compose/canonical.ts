// Per-file canonical forms, applied before `extends` and merging so that list and map forms merge
// by key: environment/labels/annotations/sysctls/build.args/deploy.labels become maps, service
// `networks` and `depends_on` lists become maps, `build: ctx` becomes {context}, short volume
// strings become long-form mappings, and relative paths are made absolute against `baseDir`.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import { UserError } from '../../model/diagnostics.js';
import { childPos, isObj, selfPos, setChildPos, setKey, setSelfPos, type Obj, type Value } from './tree.js';

function err(message: string, pos: SourcePos | undefined, fix: string): never {
  throw new UserError({ severity: 'error', code: 'compose.schema', message, fix, pos });
}

function scalarText(v: Value): string | null {
  if (v === null) return null;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * A list of "KEY=VALUE" (or bare "KEY") or a mapping, as a mapping of strings.
 * `bareValue` is what a bare KEY means: null for environment (taken from the environment later), '' for labels.
 */
export function toKeyValueMap(v: Value, pos: SourcePos | undefined, what: string, bareValue: string | null): Obj {
  const out: Obj = {};
  if (v === null) return out;
  if (Array.isArray(v)) {
    setSelfPos(out, selfPos(v));
    v.forEach((item, i) => {
      if (item === null || typeof item === 'object') err(`${what}: list entries must be strings "KEY=VALUE"`, childPos(v, i) ?? pos, `Write each ${what} entry as "KEY=VALUE".`);
      const s = String(item);
      const eq = s.indexOf('=');
      const key = eq < 0 ? s : s.slice(0, eq);
      setKey(out, key, eq < 0 ? bareValue : s.slice(eq + 1));
      setChildPos(out, key, childPos(v, i));
    });
    return out;
  }
  if (isObj(v)) {
    setSelfPos(out, selfPos(v));
    for (const [k, x] of Object.entries(v)) {
      setKey(out, k, scalarText(x));
      setChildPos(out, k, childPos(v, k));
    }
    return out;
  }
  return err(`${what} must be a list or a mapping`, pos, `Write ${what} as a mapping (KEY: value) or a list of "KEY=VALUE".`);
}

/** A list of names or a mapping name -> options (or null), as a mapping. */
function listToMap(v: Value, pos: SourcePos | undefined, what: string, valueFor: (name: string) => Value): Obj {
  if (isObj(v)) return v;
  const out: Obj = {};
  if (v === null) return out;
  if (!Array.isArray(v)) err(`${what} must be a list or a mapping`, pos, `Write ${what} as a list of names or a mapping.`);
  setSelfPos(out, selfPos(v));
  v.forEach((item, i) => {
    if (typeof item !== 'string') err(`${what}: entries must be names`, childPos(v, i) ?? pos, `Write ${what} as a list of names.`);
    setKey(out, item, valueFor(item));
    setChildPos(out, item, childPos(v, i));
  });
  return out;
}

export function resolvePath(p: string, baseDir: string): string {
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

function isPathLike(source: string): boolean {
  return source.startsWith('.') || source.startsWith('/') || source.startsWith('~') || /^[A-Za-z]:[\\/]/.test(source);
}

/** Short volume syntax `[SOURCE:]TARGET[:MODE]` as the long form Compose prints. */
export function parseShortVolume(spec: string, baseDir: string, pos: SourcePos | undefined, warnings?: Diagnostic[]): Obj {
  let parts = spec.split(':');
  if (parts.length > 1 && parts[0] === '' && warnings) {
    // `${UNSET}:/data`: docker compose stops here ("empty section between colons"); a static reader carries on.
    warnings.push({
      severity: 'warning',
      code: 'compose.volume-empty-source',
      message: `volume "${spec}" has an empty source (an unset variable?); taken as an anonymous volume`,
      fix: 'Set the variable that names the host path (docker compose refuses this volume as written).',
      pos,
    });
    parts = parts.slice(1);
  }
  // Windows drive letters (C:\x:/y) keep their colon.
  if (parts.length > 1 && /^[A-Za-z]$/.test(parts[0]) && /^[\\/]/.test(parts[1] ?? '')) {
    parts = [`${parts[0]}:${parts[1]}`, ...parts.slice(2)];
  }
  if (parts.length > 3 || parts.some((p, i) => p === '' && i < parts.length)) {
    err(`invalid volume specification "${spec}"`, pos, 'Write volumes as [SOURCE:]TARGET[:MODE], e.g. "./data:/data:ro".');
  }
  const out: Obj = {};
  setSelfPos(out, pos);
  if (parts.length === 1) {
    out.type = 'volume';
    out.target = parts[0];
    return out;
  }
  const [source, target, mode] = parts;
  const bind = isPathLike(source);
  out.type = bind ? 'bind' : 'volume';
  out.source = bind ? resolvePath(source, baseDir) : source;
  out.target = target;
  if (mode !== undefined) {
    const opts = mode.split(',');
    if (opts.includes('ro')) out.read_only = true;
    const rest = opts.filter((o) => o !== 'ro' && o !== 'rw');
    if (bind) {
      const sel = rest.find((o) => o === 'z' || o === 'Z');
      const prop = rest.find((o) => /^r?(shared|slave|private)$/.test(o));
      if (sel || prop) {
        const b: Obj = {};
        if (sel) b.selinux = sel;
        if (prop) b.propagation = prop;
        out.bind = b;
      }
    } else if (rest.includes('nocopy')) out.volume = { nocopy: true };
  }
  return out;
}

/** Canonical form of one service mapping, in place. */
export function canonicalService(svc: Obj, baseDir: string, svcPos: SourcePos | undefined, warnings: Diagnostic[] = []): void {
  for (const key of ['environment', 'labels', 'annotations', 'sysctls']) {
    if (key in svc) {
      const p = childPos(svc, key) ?? svcPos;
      setKey(svc, key, toKeyValueMap(svc[key], p, key, key === 'environment' ? null : ''));
      setChildPos(svc, key, p);
    }
  }
  if ('networks' in svc) {
    const p = childPos(svc, 'networks') ?? svcPos;
    svc.networks = listToMap(svc.networks, p, 'networks', () => null);
    setChildPos(svc, 'networks', p);
  }
  if ('depends_on' in svc) {
    const p = childPos(svc, 'depends_on') ?? svcPos;
    svc.depends_on = listToMap(svc.depends_on, p, 'depends_on', () => ({ condition: 'service_started', required: true }));
    setChildPos(svc, 'depends_on', p);
  }
  if ('build' in svc) {
    const p = childPos(svc, 'build');
    if (typeof svc.build === 'string') {
      const b: Obj = { context: svc.build };
      setSelfPos(b, p);
      svc.build = b;
    }
    if (isObj(svc.build)) {
      const b = svc.build;
      if (typeof b.context === 'string' && !/^[a-z]+:\/\/|^git@|\.git(#|$)/.test(b.context)) b.context = resolvePath(b.context, baseDir);
      if ('args' in b) b.args = toKeyValueMap(b.args, childPos(b, 'args') ?? p, 'build.args', null);
      if ('labels' in b) b.labels = toKeyValueMap(b.labels, childPos(b, 'labels') ?? p, 'build.labels', '');
    }
  }
  if (isObj(svc.deploy) && 'labels' in svc.deploy) {
    svc.deploy.labels = toKeyValueMap(svc.deploy.labels, childPos(svc.deploy, 'labels'), 'deploy.labels', '');
  }
  for (const key of ['dns', 'dns_search', 'env_file', 'tmpfs', 'cap_add', 'cap_drop', 'security_opt', 'expose', 'ports', 'volumes', 'profiles']) {
    const v = svc[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v)) {
      if (['dns', 'dns_search', 'env_file', 'tmpfs'].includes(key) && typeof v === 'string') {
        const arr = [v];
        setSelfPos(arr, childPos(svc, key));
        setChildPos(arr, 0, childPos(svc, key));
        svc[key] = arr;
      } else {
        err(`${key} must be a list`, childPos(svc, key) ?? svcPos, `Write ${key} as a YAML list.`);
      }
    }
  }
  if (Array.isArray(svc.env_file)) {
    const list = svc.env_file;
    list.forEach((e, i) => {
      if (typeof e === 'string') list[i] = resolvePath(e, baseDir);
      else if (isObj(e) && typeof e.path === 'string') e.path = resolvePath(e.path, baseDir);
    });
  }
  if (Array.isArray(svc.volumes)) {
    const list = svc.volumes;
    list.forEach((v, i) => {
      const p = childPos(list, i);
      if (typeof v === 'string') {
        list[i] = parseShortVolume(v, baseDir, p, warnings);
        setChildPos(list, i, p);
      } else if (isObj(v)) {
        if (v.type === 'bind' && typeof v.source === 'string') v.source = resolvePath(v.source, baseDir);
      } else {
        err('volumes entries must be strings or mappings', p ?? svcPos, 'Write "SOURCE:TARGET[:MODE]" or the long syntax (type, source, target).');
      }
    });
  }
}

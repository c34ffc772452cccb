// Static Compose resolution: the files, .env, interpolation, include, extends, merging, profiles and
// the default network, the way `docker compose config` resolves them (Compose Specification).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import { UserError } from '../../model/diagnostics.js';
import { isIp, ipFamily } from '../../model/address.js';
import { canonicalService, resolvePath, toKeyValueMap } from './canonical.js';
import { parseDotEnv } from './dotenv.js';
import { interpolateString, type Lookup } from './interpolate.js';
import { mergeValue } from './merge.js';
import { parseExpose, parsePortEntry, portKey, type ExposedPort, type ResolvedPort } from './ports.js';
import { childPos, clone, isObj, parseYamlTree, positionAt, setChildPos, setKey, type Obj, type Value } from './tree.js';
import type { ComposeOptions, ComposeProject, ResolvedNetwork, ResolvedService, ResolvedVolume, ServiceNetwork } from './types.js';

export const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'];
const OVERRIDE_FILES = ['compose.override.yaml', 'compose.override.yml', 'docker-compose.override.yml', 'docker-compose.override.yaml'];

const TOP_LEVEL_KEYS = new Set(['version', 'name', 'include', 'services', 'networks', 'volumes', 'secrets', 'configs', 'models']);
const SERVICE_KEYS = new Set([
  'annotations', 'attach', 'blkio_config', 'build', 'cap_add', 'cap_drop', 'cgroup', 'cgroup_parent', 'command', 'configs',
  'container_name', 'cpu_count', 'cpu_percent', 'cpu_period', 'cpu_quota', 'cpu_rt_period', 'cpu_rt_runtime', 'cpu_shares',
  'cpus', 'cpuset', 'credential_spec', 'depends_on', 'deploy', 'develop', 'device_cgroup_rules', 'devices', 'dns', 'dns_opt',
  'dns_search', 'domainname', 'driver_opts', 'entrypoint', 'env_file', 'environment', 'expose', 'extends', 'external_links',
  'extra_hosts', 'gpus', 'group_add', 'healthcheck', 'hostname', 'image', 'init', 'ipc', 'isolation', 'label_file', 'labels',
  'links', 'logging', 'mac_address', 'mem_limit', 'mem_reservation', 'mem_swappiness', 'memswap_limit', 'models',
  'network_mode', 'networks', 'oom_kill_disable', 'oom_score_adj', 'pid', 'pids_limit', 'platform', 'ports', 'post_start',
  'pre_stop', 'privileged', 'profiles', 'provider', 'pull_policy', 'read_only', 'restart', 'runtime', 'scale', 'secrets',
  'security_opt', 'shm_size', 'stdin_open', 'stop_grace_period', 'stop_signal', 'storage_opt', 'sysctls', 'tmpfs', 'tty',
  'ulimits', 'use_api_socket', 'user', 'userns_mode', 'uts', 'volumes', 'volumes_from', 'working_dir',
]);
const NETWORK_KEYS = new Set(['name', 'driver', 'driver_opts', 'attachable', 'enable_ipv6', 'enable_ipv4', 'external', 'internal', 'ipam', 'labels']);
const MAX_DEPTH = 32;

interface Ctx {
  lookup: Lookup;
  warnings: Diagnostic[];
  unset: Set<string>;
  /** Files loaded for `extends: {file}` (parsed, interpolated, canonical), by absolute path. */
  cache: Map<string, Obj>;
}

function fail(code: string, message: string, pos: SourcePos | undefined, fix: string): never {
  throw new UserError({ severity: 'error', code, message, fix, pos });
}

function readText(file: string, pos: SourcePos | undefined, what: string): string {
  try {
    if (!statSync(file).isFile()) fail('compose.file', `${what} ${file} is not a file`, pos ?? { file, line: 0, col: 0 }, 'Name a Compose file, not a directory.');
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof UserError) throw e;
    return fail('compose.file', `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, pos ?? { file, line: 0, col: 0 }, 'Check the path (relative paths are relative to the current directory for -f, to the project directory otherwise).');
  }
}

function interpolateTree(v: Value, ctx: Ctx): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      if (typeof x === 'string') v[i] = interpolateString(x, interpCtx(ctx), childPos(v, i));
      else interpolateTree(x, ctx);
    });
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'string') setKey(v, k, interpolateString(x, interpCtx(ctx), childPos(v, k)));
      else interpolateTree(x, ctx);
    }
  }
}

function interpCtx(ctx: Ctx) {
  return {
    lookup: ctx.lookup,
    onUnset: (name: string, pos: SourcePos | undefined) => {
      if (ctx.unset.has(name)) return;
      ctx.unset.add(name);
      ctx.warnings.push({
        severity: 'warning',
        code: 'compose.unset-variable',
        message: `the "${name}" variable is not set; defaulting to a blank string`,
        fix: `Set ${name} in the environment or the .env file, or give a default: \${${name}:-value}.`,
        pos,
      });
    },
  };
}

/** Reads one Compose file: parse, interpolate, canonical forms (relative paths against baseDir). */
function loadFile(file: string, baseDir: string, ctx: Ctx, pos?: SourcePos): Obj {
  const text = readText(file, pos, 'Compose file');
  const tree = parseYamlTree(text, file);
  if (tree === null) fail('compose.empty', `empty compose file ${file}`, { file, line: 1, col: 1 }, 'Add a `services:` section.');
  if (!isObj(tree)) fail('compose.schema', 'a Compose file must be a mapping at top level', { file, line: 1, col: 1 }, 'Start the file with `services:`.');
  interpolateTree(tree, ctx);
  for (const key of Object.keys(tree)) {
    if (key.startsWith('x-')) continue;
    if (!TOP_LEVEL_KEYS.has(key)) {
      ctx.warnings.push({ severity: 'warning', code: 'compose.unknown-key', message: `unknown top-level key "${key}" ignored`, fix: 'Remove it or prefix it with x- to mark it as an extension.', pos: childPos(tree, key) });
    }
  }
  if (tree.version !== undefined) {
    ctx.warnings.push({ severity: 'warning', code: 'compose.version-obsolete', message: 'the attribute `version` is obsolete and ignored', fix: 'Remove the `version:` line.', pos: childPos(tree, 'version') });
  }
  const services = tree.services;
  if (services !== undefined && services !== null && !isObj(services)) fail('compose.schema', '`services` must be a mapping', childPos(tree, 'services'), 'Write services as `name:` keys under `services:`.');
  for (const kind of ['networks', 'volumes', 'secrets', 'configs']) {
    const v = tree[kind];
    if (v !== undefined && v !== null && !isObj(v)) fail('compose.schema', `\`${kind}\` must be a mapping`, childPos(tree, kind), `Write ${kind} as \`name:\` keys under \`${kind}:\`.`);
  }
  if (isObj(services)) {
    for (const [name, svc] of Object.entries(services)) {
      if (svc === null) {
        const empty: Obj = {};
        setKey(services, name, empty);
        continue;
      }
      if (!isObj(svc)) fail('compose.schema', `service "${name}" must be a mapping`, childPos(services, name), 'Write the service as a mapping of its attributes.');
      canonicalService(svc, baseDir, childPos(services, name), ctx.warnings);
    }
  }
  return tree;
}

function servicesOf(model: Obj): Obj {
  if (!isObj(model.services)) model.services = {};
  return model.services as Obj;
}

/** Applies `extends` to every service of a file model, in place. */
function applyExtends(model: Obj, file: string, ctx: Ctx): void {
  const services = servicesOf(model);
  for (const name of Object.keys(services)) resolveExtends(model, file, name, ctx, []);
}

function resolveExtends(model: Obj, file: string, name: string, ctx: Ctx, stack: string[]): Obj {
  const services = servicesOf(model);
  const svc = services[name] as Obj;
  if (!('extends' in svc)) return svc;
  const here = `${file}#${name}`;
  const extPos = childPos(svc, 'extends');
  if (stack.includes(here) || stack.length > MAX_DEPTH) {
    fail('compose.extends-cycle', `circular extends: ${[...stack, here].map((s) => s.split('#')[1]).join(' -> ')}`, extPos, 'Remove the cycle between the services that extend each other.');
  }
  const ext = svc.extends;
  let baseName: string;
  let baseFile: string | undefined;
  if (typeof ext === 'string') baseName = ext;
  else if (isObj(ext) && typeof ext.service === 'string') {
    baseName = ext.service;
    if (ext.file !== undefined && ext.file !== null) baseFile = resolvePath(String(ext.file), dirname(file));
  } else {
    return fail('compose.extends', `service "${name}": extends needs a service name`, extPos, 'Write `extends: other` or `extends: {service: other, file: other.yml}`.');
  }
  let baseModel = model;
  let baseModelFile = file;
  if (baseFile !== undefined && resolve(baseFile) !== resolve(file)) {
    let m = ctx.cache.get(baseFile);
    if (!m) {
      m = loadFile(baseFile, dirname(baseFile), ctx, extPos);
      ctx.cache.set(baseFile, m);
    }
    baseModel = m;
    baseModelFile = baseFile;
  }
  const baseServices = servicesOf(baseModel);
  if (!isObj(baseServices[baseName])) {
    fail('compose.unknown-service', `service "${name}" extends undefined service "${baseName}"${baseFile ? ` in ${baseFile}` : ''}`, extPos, `Define service "${baseName}" there or correct the name.`);
  }
  const base = resolveExtends(baseModel, baseModelFile, baseName, ctx, [...stack, here]);
  const own = clone(svc);
  delete own.extends;
  const merged = mergeValue(base, own, ['services', name]) as Obj;
  setKey(services, name, merged);
  return merged;
}

interface IncludeStack {
  files: string[];
}

/** Loads a list of files into one merged model (include and extends applied per file). */
function loadModel(files: string[], projectDir: string, ctx: Ctx, stack: IncludeStack): Obj {
  let model: Obj = {};
  for (const file of files) {
    const m = loadFile(file, projectDir, ctx);
    if (m.include !== undefined && m.include !== null) applyInclude(m, file, projectDir, ctx, stack);
    delete m.include;
    applyExtends(m, file, ctx);
    model = mergeValue(model, m, []) as Obj;
  }
  return model;
}

function applyInclude(m: Obj, file: string, baseDir: string, ctx: Ctx, stack: IncludeStack): void {
  const inc = m.include;
  const incPos = childPos(m, 'include');
  if (!Array.isArray(inc)) fail('compose.schema', '`include` must be a list', incPos, 'Write include as a list of paths or {path, project_directory, env_file} entries.');
  inc.forEach((entry, i) => {
    const pos = childPos(inc, i) ?? incPos;
    let paths: string[];
    let projectDirectory: string | undefined;
    let envFiles: string[] | undefined;
    if (typeof entry === 'string') paths = [entry];
    else if (isObj(entry)) {
      const p = entry.path;
      paths = Array.isArray(p) ? p.map(String) : typeof p === 'string' ? [p] : fail('compose.schema', 'include entry has no path', pos, 'Add `path: other/compose.yaml`.');
      if (entry.project_directory != null) projectDirectory = resolvePath(String(entry.project_directory), baseDir);
      if (entry.env_file != null) envFiles = (Array.isArray(entry.env_file) ? entry.env_file : [entry.env_file]).map((e) => resolvePath(String(e), baseDir));
    } else return fail('compose.schema', 'invalid include entry', pos, 'Write a path or {path, project_directory, env_file}.');
    const absPaths = paths.map((p) => resolvePath(p, baseDir));
    for (const p of absPaths) {
      if (stack.files.includes(p)) fail('compose.include-cycle', `include cycle: ${p} includes itself`, pos, 'Remove the circular include.');
      if (!existsSync(p)) fail('compose.file', `included file ${p} not found`, pos, 'Correct the include path (relative to the including file\'s project directory).');
    }
    const subDir = projectDirectory ?? dirname(absPaths[0]);
    const envList = envFiles ?? (existsSync(resolve(subDir, '.env')) ? [resolve(subDir, '.env')] : []);
    let vars: Record<string, string> = {};
    for (const ef of envList) {
      const text = readText(ef, pos, 'env file');
      vars = { ...vars, ...parseDotEnv(text, ef, (n) => ctx.lookup(n) ?? vars[n]) };
    }
    const parentLookup = ctx.lookup;
    const subCtx: Ctx = {
      lookup: (n) => parentLookup(n) ?? (Object.prototype.hasOwnProperty.call(vars, n) ? vars[n] : undefined),
      warnings: ctx.warnings,
      unset: ctx.unset,
      cache: new Map(),
    };
    const sub = loadModel(absPaths, subDir, subCtx, { files: [...stack.files, file, ...absPaths] });
    for (const kind of ['services', 'networks', 'volumes', 'secrets', 'configs']) {
      const from = sub[kind];
      if (!isObj(from)) continue;
      if (!isObj(m[kind])) m[kind] = {};
      const into = m[kind] as Obj;
      for (const [k, v] of Object.entries(from)) {
        if (Object.prototype.hasOwnProperty.call(into, k)) {
          fail('compose.include-conflict', `${kind}.${k} is defined both in ${file} and in included ${absPaths.join(', ')}`, childPos(into, k) ?? pos, `Rename one of them, or override ${kind}.${k} from a later -f file instead.`);
        }
        setKey(into, k, v);
        setChildPos(into, k, childPos(from, k));
      }
    }
  });
}

function definedEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Compose's project name normalisation: lower case, only [a-z0-9_-], no leading _ or -. */
export function normalizeProjectName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[_-]+/, '');
}

function validProjectName(s: string): boolean {
  return /^[a-z0-9][a-z0-9_-]*$/.test(s);
}

function toBool(v: Value | undefined, pos: SourcePos | undefined, what: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['true', 'yes', 'y', 'on', '1'].includes(s)) return true;
  if (['false', 'no', 'n', 'off', '0', ''].includes(s)) return false;
  return fail('compose.schema', `${what}: "${String(v)}" is not a boolean`, pos, `Write ${what}: true or false.`);
}

function toInt(v: Value | undefined, pos: SourcePos | undefined, what: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = String(v);
  if (!/^\d+$/.test(s)) fail('compose.schema', `${what}: "${s}" is not a whole number`, pos, `Write ${what} as a number.`);
  return Number(s);
}

function strList(v: Value | undefined, pos: SourcePos | undefined, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail('compose.schema', `${what} must be a list`, pos, `Write ${what} as a YAML list.`);
  return v.map((x) => (x === null ? '' : typeof x === 'object' ? JSON.stringify(x) : String(x)));
}

function unique<T>(items: T[], key: (t: T) => string, keepLast = false): T[] {
  const seen = new Map<string, number>();
  const out: T[] = [];
  for (const it of items) {
    const k = key(it);
    const at = seen.get(k);
    if (at === undefined) {
      seen.set(k, out.length);
      out.push(it);
    } else if (keepLast) out[at] = it;
  }
  return out;
}

function stringMap(v: Value | undefined, pos: SourcePos | undefined, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const m = toKeyValueMap(v, pos, what, '');
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) out[k] = x === null ? '' : String(x);
  return out;
}

function findDefaultFiles(dir: string): string[] {
  const base = DEFAULT_FILES.map((f) => resolve(dir, f)).find((f) => existsSync(f));
  if (!base) return [];
  const over = OVERRIDE_FILES.map((f) => resolve(dir, f)).find((f) => existsSync(f));
  return over ? [base, over] : [base];
}

export async function loadComposeProject(options: ComposeOptions): Promise<ComposeProject> {
  const cwd = process.cwd();
  let files = options.files.map((f) => resolve(cwd, f));
  if (files.length === 0) {
    const dir = options.projectDirectory ? resolve(cwd, options.projectDirectory) : cwd;
    files = findDefaultFiles(dir);
    if (files.length === 0) {
      fail('compose.file', `no Compose file found in ${dir}`, { file: dir, line: 0, col: 0 }, `Pass -f FILE or create one of ${DEFAULT_FILES.join(', ')}.`);
    }
  }
  for (const f of files) {
    if (!existsSync(f)) fail('compose.file', `Compose file ${f} not found`, { file: f, line: 0, col: 0 }, 'Check the -f path (relative paths are relative to the current directory).');
  }
  const directory = options.projectDirectory ? resolve(cwd, options.projectDirectory) : dirname(files[0]);
  const procEnv = definedEnv(options.env ?? process.env);
  const envFiles = options.envFiles ? options.envFiles.map((f) => resolve(cwd, f)) : existsSync(resolve(directory, '.env')) ? [resolve(directory, '.env')] : [];
  let dot: Record<string, string> = {};
  for (const ef of envFiles) {
    if (!existsSync(ef)) fail('compose.env-file', `env file ${ef} not found`, { file: ef, line: 0, col: 0 }, 'Check the --env-file path.');
    const vars = parseDotEnv(readText(ef, undefined, 'env file'), ef, (n) => procEnv[n] ?? dot[n]);
    dot = { ...dot, ...vars };
  }
  const environment: Record<string, string> = { ...dot, ...procEnv };
  const lookup: Lookup = (n) => (Object.prototype.hasOwnProperty.call(environment, n) ? environment[n] : undefined);
  // Project name, before interpolation: Compose offers it to the files as COMPOSE_PROJECT_NAME.
  let name: string;
  if (options.projectName !== undefined || environment.COMPOSE_PROJECT_NAME) {
    name = options.projectName ?? environment.COMPOSE_PROJECT_NAME;
    if (!validProjectName(name)) {
      fail('compose.project-name', `"${name}" is not a valid project name`, options.projectName === undefined ? { file: envFiles[0] ?? 'COMPOSE_PROJECT_NAME', line: 0, col: 0 } : undefined, 'Use lower-case letters, digits, dashes and underscores, starting with a letter or digit.');
    }
  } else {
    let fromFile: { name: string; pos?: SourcePos } | undefined;
    for (const f of files) {
      const tree = parseYamlTree(readText(f, undefined, 'Compose file'), f);
      if (isObj(tree) && tree.name !== undefined && tree.name !== null && tree.name !== '') {
        const pos = childPos(tree, 'name');
        fromFile = { name: interpolateString(String(tree.name), { lookup }, pos), pos };
      }
    }
    if (fromFile && fromFile.name !== '') {
      name = fromFile.name;
      if (!validProjectName(name)) fail('compose.project-name', `"${name}" is not a valid project name`, fromFile.pos, 'Use lower-case letters, digits, dashes and underscores, starting with a letter or digit.');
    } else {
      name = normalizeProjectName(basename(directory));
      if (name === '') fail('compose.project-name', `cannot derive a project name from directory ${directory}`, undefined, 'Pass --project-name or set `name:` in the Compose file.');
    }
  }
  if (!environment.COMPOSE_PROJECT_NAME) environment.COMPOSE_PROJECT_NAME = name;
  const warnings: Diagnostic[] = [];
  const ctx: Ctx = { lookup, warnings, unset: new Set(), cache: new Map() };
  const model = loadModel(files, directory, ctx, { files: [...files] });

  // Profiles.
  const profiles = unique([...(options.profiles ?? []), ...(environment.COMPOSE_PROFILES ?? '').split(',')].map((p) => p.trim()).filter((p) => p !== ''), (p) => p);
  const all = profiles.includes('*');

  const servicesRaw = isObj(model.services) ? model.services : {};
  const declaredNetworks = isObj(model.networks) ? model.networks : {};
  const resolved: Record<string, ResolvedService> = {};
  const disabled: string[] = [];
  for (const [svcName, raw] of Object.entries(servicesRaw)) {
    const svc = resolveService(svcName, raw as Obj, servicesRaw, declaredNetworks, environment, warnings, childPos(servicesRaw, svcName));
    const active = svc.profiles.length === 0 || all || svc.profiles.some((p) => profiles.includes(p));
    if (active) resolved[svcName] = svc;
    else disabled.push(svcName);
  }
  // References between active services.
  for (const svc of Object.values(resolved)) {
    const mode = svc.networkMode;
    if (mode?.startsWith('service:')) {
      const other = mode.slice(8);
      const pos = childPos(svc.config, 'network_mode');
      if (!(other in servicesRaw)) fail('compose.unknown-service', `service "${svc.name}": network_mode refers to undefined service "${other}"`, pos, `Define service "${other}" or correct the name.`);
      if (!(other in resolved)) warnings.push({ severity: 'warning', code: 'compose.disabled-service', message: `service "${svc.name}" shares the network of "${other}", which no enabled profile activates`, fix: `Enable a profile of "${other}" (--profile or COMPOSE_PROFILES).`, pos });
    }
    for (const dep of svc.dependsOn) {
      const pos = positionAt(svc.config, ['depends_on', dep]);
      if (!(dep in servicesRaw)) fail('compose.unknown-service', `service "${svc.name}" depends on undefined service "${dep}"`, pos, `Define service "${dep}" or remove it from depends_on.`);
      if (!(dep in resolved)) warnings.push({ severity: 'warning', code: 'compose.disabled-service', message: `service "${svc.name}" depends on "${dep}", which no enabled profile activates`, fix: `Enable a profile of "${dep}" (--profile or COMPOSE_PROFILES).`, pos });
    }
  }

  // Networks in use (Compose drops declared networks no enabled service uses).
  const used = new Set<string>();
  for (const svc of Object.values(resolved)) for (const n of Object.keys(svc.networks)) used.add(n);
  const networks: Record<string, ResolvedNetwork> = {};
  for (const key of used) {
    const raw = Object.prototype.hasOwnProperty.call(declaredNetworks, key) ? declaredNetworks[key] : undefined;
    networks[key] = resolveNetwork(key, raw === undefined ? null : raw, name, childPos(declaredNetworks, key), warnings);
  }

  const project: ComposeProject = {
    name,
    directory,
    files,
    services: resolved,
    disabledServices: disabled,
    networks,
    profiles,
    environment,
    warnings,
    positionOf(path) {
      const [head, key, field, index, ...rest] = path;
      if (head === 'services' && typeof key === 'string') {
        const svc = resolved[key];
        if (!svc) return positionAt(model, path);
        if (field === undefined) return svc.pos;
        if ((field === 'ports' || field === 'expose') && typeof index === 'number') {
          const entry = svc[field][index];
          return entry?.pos ?? positionAt(svc.config, [field]) ?? svc.pos;
        }
        return positionAt(svc.config, path.slice(2)) ?? svc.pos;
      }
      if (head === 'networks' && typeof key === 'string' && networks[key]) {
        return path.length === 2 ? networks[key].pos : positionAt(networks[key].config, path.slice(2)) ?? networks[key].pos;
      }
      void rest;
      return positionAt(model, path);
    },
  };
  return project;
}

function resolveService(
  name: string,
  svc: Obj,
  all: Obj,
  declaredNetworks: Obj,
  environment: Record<string, string>,
  warnings: Diagnostic[],
  pos: SourcePos | undefined,
): ResolvedService {
  const at = (k: string) => childPos(svc, k) ?? pos;
  for (const key of Object.keys(svc)) {
    if (!SERVICE_KEYS.has(key) && !key.startsWith('x-')) {
      warnings.push({ severity: 'warning', code: 'compose.unknown-key', message: `service "${name}": unknown key "${key}" ignored`, fix: 'Check the spelling against the Compose Specification, or prefix it with x-.', pos: at(key) });
    }
  }
  void all;
  // Ports and expose, normalised and de-duplicated as Compose does.
  const ports: ResolvedPort[] = [];
  if (svc.ports != null) {
    const list = svc.ports as Value[];
    list.forEach((p, i) => ports.push(...parsePortEntry(p, childPos(list, i) ?? at('ports'))));
  }
  const expose: ExposedPort[] = [];
  if (svc.expose != null) {
    const list = svc.expose as Value[];
    list.forEach((p, i) => expose.push(...parseExpose(p, childPos(list, i) ?? at('expose'))));
  }
  // Networks.
  let networkMode: string | undefined;
  if (svc.network_mode != null && svc.network_mode !== '') {
    networkMode = String(svc.network_mode);
    if (/^(service|container):$/.test(networkMode)) fail('compose.network-mode', `service "${name}": network_mode "${networkMode}" names nothing`, at('network_mode'), 'Write network_mode: service:NAME or container:NAME.');
  }
  const netMap = isObj(svc.networks) ? svc.networks : {};
  if (networkMode !== undefined && Object.keys(netMap).length > 0) {
    fail('compose.network-mode', `service "${name}" declares mutually exclusive \`network_mode\` and \`networks\``, at('network_mode'), 'Remove either network_mode or networks from the service.');
  }
  const networks: Record<string, ServiceNetwork> = {};
  for (const [key, v] of Object.entries(netMap)) {
    const npos = childPos(netMap, key) ?? at('networks');
    if (key !== 'default' && !Object.prototype.hasOwnProperty.call(declaredNetworks, key)) {
      fail('compose.undefined-network', `service "${name}" refers to undefined network "${key}"`, npos, `Declare "${key}" under the top-level networks: section, or correct the name.`);
    }
    const sn: ServiceNetwork = { aliases: [] };
    if (v !== null && !isObj(v)) fail('compose.schema', `service "${name}": options of network "${key}" must be a mapping`, npos, 'Write aliases/ipv4_address/ipv6_address under the network name.');
    if (isObj(v)) {
      sn.aliases = unique(strList(v.aliases, childPos(v, 'aliases') ?? npos, 'aliases'), (a) => a);
      if (v.ipv4_address != null && v.ipv4_address !== '') {
        const a = String(v.ipv4_address);
        if (ipFamily(a) !== 4) fail('compose.address', `service "${name}": ipv4_address "${a}" is not an IPv4 address`, childPos(v, 'ipv4_address') ?? npos, 'Write a dotted IPv4 address inside the network\'s subnet.');
        sn.ipv4Address = a;
      }
      if (v.ipv6_address != null && v.ipv6_address !== '') {
        const a = String(v.ipv6_address);
        if (ipFamily(a) !== 6) fail('compose.address', `service "${name}": ipv6_address "${a}" is not an IPv6 address`, childPos(v, 'ipv6_address') ?? npos, 'Write an IPv6 address inside the network\'s subnet.');
        sn.ipv6Address = a;
      }
      const prio = toInt(v.priority, childPos(v, 'priority'), 'priority');
      if (prio !== undefined) sn.priority = prio;
      if (v.mac_address != null) sn.macAddress = String(v.mac_address);
    }
    networks[key] = sn;
  }
  if (networkMode === undefined && Object.keys(networks).length === 0) networks.default = { aliases: [] };
  // Environment: env_file values, then `environment`, then keys without value from the interpolation environment.
  const environmentOut: Record<string, string | null> = {};
  if (Array.isArray(svc.env_file)) {
    const list = svc.env_file;
    list.forEach((e, i) => {
      const path = typeof e === 'string' ? e : isObj(e) ? String(e.path) : '';
      const required = isObj(e) ? e.required !== false && e.required !== 'false' : true;
      if (!existsSync(path)) {
        if (required) warnings.push({ severity: 'warning', code: 'compose.env-file-missing', message: `service "${name}": env_file ${path} not found (docker compose would stop here); its variables are unknown`, fix: 'Create the file, or mark it `required: false`.', pos: childPos(list, i) ?? at('env_file') });
        return;
      }
      Object.assign(environmentOut, parseDotEnv(readText(path, childPos(list, i), 'env file'), path, (n) => environment[n]));
    });
  }
  const envMap = isObj(svc.environment) ? svc.environment : {};
  for (const [k, v] of Object.entries(envMap)) {
    environmentOut[k] = v === null ? (Object.prototype.hasOwnProperty.call(environment, k) ? environment[k] : null) : String(v);
  }
  const volumes: ResolvedVolume[] = [];
  if (Array.isArray(svc.volumes)) {
    const list = svc.volumes;
    list.forEach((v, i) => {
      if (!isObj(v)) return;
      const vpos = childPos(list, i) ?? at('volumes');
      if (v.target == null || v.target === '') fail('compose.schema', `service "${name}": volume without target`, vpos, 'Add `target: /path/in/container`.');
      const vol: ResolvedVolume = { type: v.type == null ? 'volume' : String(v.type), target: String(v.target), readOnly: toBool(v.read_only, vpos, 'read_only'), pos: vpos };
      if (v.source != null && v.source !== '') vol.source = String(v.source);
      volumes.push(vol);
    });
  }
  const labelsRaw = isObj(svc.labels) ? svc.labels : {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(labelsRaw)) labels[k] = v === null ? '' : String(v);
  const deploy = isObj(svc.deploy) ? svc.deploy : undefined;
  const replicas = toInt(deploy?.replicas, deploy ? childPos(deploy, 'replicas') : undefined, 'deploy.replicas') ?? toInt(svc.scale, at('scale'), 'scale');
  const cmd = (v: Value | undefined): string | string[] | undefined =>
    v === undefined || v === null ? undefined : Array.isArray(v) ? v.map((x) => String(x)) : String(v);
  const out: ResolvedService = {
    name,
    config: svc,
    profiles: strList(svc.profiles, at('profiles'), 'profiles'),
    networks,
    ports: unique(ports, portKey),
    expose: unique(expose, (e) => `${e.port}/${e.protocol}`),
    labels,
    environment: environmentOut,
    volumes: unique(volumes, (v) => v.target, true),
    privileged: toBool(svc.privileged, at('privileged'), 'privileged'),
    readOnly: toBool(svc.read_only, at('read_only'), 'read_only'),
    capAdd: unique(strList(svc.cap_add, at('cap_add'), 'cap_add'), (c) => c),
    capDrop: unique(strList(svc.cap_drop, at('cap_drop'), 'cap_drop'), (c) => c),
    securityOpt: strList(svc.security_opt, at('security_opt'), 'security_opt'),
    dependsOn: isObj(svc.depends_on) ? Object.keys(svc.depends_on) : [],
    pos,
  };
  if (svc.image != null) out.image = String(svc.image);
  if (svc.container_name != null && svc.container_name !== '') out.containerName = String(svc.container_name);
  if (svc.hostname != null) out.hostname = String(svc.hostname);
  if (networkMode !== undefined) out.networkMode = networkMode;
  if (svc.user != null) out.user = String(svc.user);
  const c = cmd(svc.command);
  if (c !== undefined) out.command = c;
  const ep = cmd(svc.entrypoint);
  if (ep !== undefined) out.entrypoint = ep;
  if (replicas !== undefined) out.replicas = replicas;
  return out;
}

function resolveNetwork(key: string, raw: Value, project: string, pos: SourcePos | undefined, warnings: Diagnostic[]): ResolvedNetwork {
  const n: Obj = isObj(raw) ? raw : {};
  if (raw !== null && !isObj(raw)) fail('compose.schema', `network "${key}" must be a mapping`, pos, 'Write the network\'s options as a mapping (or leave it empty).');
  for (const k of Object.keys(n)) {
    if (!NETWORK_KEYS.has(k) && !k.startsWith('x-')) warnings.push({ severity: 'warning', code: 'compose.unknown-key', message: `network "${key}": unknown key "${k}" ignored`, fix: 'Check the spelling against the Compose Specification.', pos: childPos(n, k) });
  }
  const at = (k: string) => childPos(n, k) ?? pos;
  let external = false;
  let name: string | undefined = n.name != null && n.name !== '' ? String(n.name) : undefined;
  if (isObj(n.external)) {
    external = true;
    if (n.external.name != null) name = String(n.external.name);
  } else external = toBool(n.external, at('external'), 'external');
  const resolvedName = name ?? (external ? key : `${project}_${key}`);
  const ipamRaw = isObj(n.ipam) ? n.ipam : {};
  const config: ResolvedNetwork['ipam']['config'] = [];
  if (Array.isArray(ipamRaw.config)) {
    const list = ipamRaw.config;
    list.forEach((c, i) => {
      if (!isObj(c)) return;
      const cpos = childPos(list, i) ?? at('ipam');
      const entry: { subnet?: string; gateway?: string; ipRange?: string } = {};
      if (c.subnet != null) {
        const s = String(c.subnet);
        const [addr, prefix] = s.split('/');
        if (!isIp(addr) || prefix === undefined || !/^\d{1,3}$/.test(prefix)) fail('compose.address', `network "${key}": subnet "${s}" is not a CIDR`, childPos(c, 'subnet') ?? cpos, 'Write the subnet as ADDRESS/PREFIX, e.g. 172.28.0.0/16.');
        entry.subnet = s;
      }
      if (c.gateway != null) entry.gateway = String(c.gateway);
      if (c.ip_range != null) entry.ipRange = String(c.ip_range);
      config.push(entry);
    });
  }
  const out: ResolvedNetwork = {
    key,
    name: resolvedName,
    driver: n.driver != null && n.driver !== '' ? String(n.driver) : 'bridge',
    driverOpts: stringMap(n.driver_opts, at('driver_opts'), 'driver_opts'),
    internal: toBool(n.internal, at('internal'), 'internal'),
    external,
    enableIpv6: toBool(n.enable_ipv6, at('enable_ipv6'), 'enable_ipv6'),
    attachable: toBool(n.attachable, at('attachable'), 'attachable'),
    labels: stringMap(n.labels, at('labels'), 'labels'),
    ipam: { config: unique(config, (c) => c.subnet ?? JSON.stringify(c), true) },
    config: n,
    pos,
  };
  if (ipamRaw.driver != null) out.ipam.driver = String(ipamRaw.driver);
  return out;
}


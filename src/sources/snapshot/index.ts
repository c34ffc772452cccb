// The snapshot source: a versioned JSON form of the World (`"moatSnapshot": 1`, docs/snapshot.md).
// Written by `worldToSnapshot`, read by `readSnapshot`/`parseSnapshot`, validated with zod; every
// mistake is a Diagnostic at file:line:col (the JSON is parsed a second time as YAML for node positions).
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { cidrContains, isIp, parseCidr } from '../../model/address.js';
import { DiagnosticBag, userError, type SourcePos } from '../../model/diagnostics.js';
import {
  completeNamespaces,
  DEFAULT_NAMESPACE,
  NAMESPACE_NAME_LABEL,
  type Attachment,
  type DeclaredPort,
  type Endpoint,
  type Network,
  type NetworkMode,
  type Protocol,
  type PublishedPort,
  type World,
} from '../../model/world.js';

export const SNAPSHOT_VERSION = 1;
const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

// ------------------------------------------------------------------ schema

const labels = z.record(z.string(), z.string());
const port = z.number().int().min(1).max(65535);
const protocol = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(['TCP', 'UDP', 'SCTP']));
const nonEmpty = z.string().min(1);

const attachmentSchema = z.strictObject({
  network: nonEmpty,
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
  aliases: z.array(nonEmpty).optional(),
});

const declaredPortSchema = z.strictObject({
  port,
  protocol: protocol.default('TCP'),
  name: nonEmpty.optional(),
});

const publishedPortSchema = z.strictObject({
  hostIp: z.string().default(''),
  hostPort: port.optional(),
  containerPort: port,
  protocol: protocol.default('TCP'),
});

const networkModeSchema = z.string().regex(/^(bridge|host|none|container:.+)$/, {
  message: 'expected "bridge", "host", "none" or "container:<endpoint id>"',
});

const endpointSchema = z.strictObject({
  id: nonEmpty.optional(),
  name: nonEmpty,
  namespace: nonEmpty.default(DEFAULT_NAMESPACE),
  containerName: nonEmpty.optional(),
  composeService: nonEmpty.optional(),
  labels: labels.default({}),
  networkMode: networkModeSchema.default('bridge'),
  attachments: z.array(attachmentSchema).default([]),
  declaredPorts: z.array(declaredPortSchema).default([]),
  publishedPorts: z.array(publishedPortSchema).default([]),
  running: z.boolean().optional(),
  pid: z.number().int().min(1).optional(),
  image: z.string().optional(),
});

const networkSchema = z.strictObject({
  name: nonEmpty,
  id: nonEmpty.optional(),
  namespace: nonEmpty.optional(),
  driver: nonEmpty.default('bridge'),
  subnets: z.array(z.string()).default([]),
  gateways: z.array(z.string()).optional(),
  internal: z.boolean().default(false),
  options: labels.default({}),
  icc: z.boolean().optional(),
  enableIPv6: z.boolean().default(false),
  external: z.boolean().optional(),
  labels: labels.optional(),
});

export const snapshotSchema = z.strictObject({
  moatSnapshot: z.literal(SNAPSHOT_VERSION),
  origin: z.string().optional(),
  namespaces: z.array(z.strictObject({ name: nonEmpty, labels: labels.default({}) })).default([]),
  networks: z.array(networkSchema).default([]),
  endpoints: z.array(endpointSchema).default([]),
  externals: z.array(z.strictObject({ name: nonEmpty, cidrs: z.array(z.string()).min(1) })).default([]),
  host: z
    .strictObject({ addresses: z.array(z.string()).default([]), userlandProxy: z.boolean().optional() })
    .default({ addresses: [] }),
  warnings: z.array(z.string()).default([]),
});

/** The snapshot file as written (defaults filled in). */
export type SnapshotV1 = z.input<typeof snapshotSchema>;
type ParsedSnapshot = z.output<typeof snapshotSchema>;

// ------------------------------------------------------------------ World -> snapshot

function modeText(mode: NetworkMode): string {
  return mode.kind === 'container' ? `container:${mode.of}` : mode.kind;
}

/** The snapshot of a World. Fields the World leaves out stay out; the origin is kept for information. */
export function worldToSnapshot(world: World): SnapshotV1 {
  const clean = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  return {
    moatSnapshot: SNAPSHOT_VERSION,
    origin: world.origin,
    namespaces: world.namespaces.map((ns) => {
      const l = { ...ns.labels };
      if (l[NAMESPACE_NAME_LABEL] === ns.name) delete l[NAMESPACE_NAME_LABEL]; // implied
      return { name: ns.name, labels: l };
    }),
    networks: world.networks.map((n) =>
      clean({
        name: n.name,
        id: n.id,
        namespace: n.namespace,
        driver: n.driver,
        subnets: [...n.subnets],
        gateways: n.gateways ? [...n.gateways] : undefined,
        internal: n.internal,
        options: { ...n.options },
        icc: n.icc,
        enableIPv6: n.enableIPv6,
        external: n.external,
        labels: n.labels ? { ...n.labels } : undefined,
      }),
    ),
    endpoints: world.endpoints.map((e) =>
      clean({
        id: e.id,
        name: e.name,
        namespace: e.namespace,
        containerName: e.containerName,
        composeService: e.composeService,
        labels: { ...e.labels },
        networkMode: modeText(e.networkMode),
        attachments: e.attachments.map((a) =>
          clean({ network: a.network, ipv4: a.ipv4, ipv6: a.ipv6, aliases: a.aliases ? [...a.aliases] : undefined }),
        ),
        declaredPorts: e.declaredPorts.map((p) => clean({ port: p.port, protocol: p.protocol, name: p.name })),
        publishedPorts: e.publishedPorts.map((p) =>
          clean({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol }),
        ),
        running: e.running,
        pid: e.pid,
        image: e.image,
      }),
    ),
    externals: world.externals.map((x) => ({ name: x.name, cidrs: [...x.cidrs] })),
    host: clean({ addresses: [...world.host.addresses], userlandProxy: world.host.userlandProxy }),
    warnings: [...world.warnings],
  };
}

/** The snapshot as the text of a file (pretty JSON, final newline). */
export function formatSnapshot(world: World): string {
  return `${JSON.stringify(worldToSnapshot(world), null, 2)}\n`;
}

// ------------------------------------------------------------------ snapshot -> World

/** Reads a snapshot file into a World (origin `snapshot:FILE`). Throws UserError on any mistake. */
export function readSnapshot(file: string): World {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw userError('snapshot.unreadable', `cannot read snapshot ${file}: ${code ?? String(err)}`, {
      pos: { file, line: 0, col: 0 },
      fix: code === 'ENOENT' ? 'check the path, or write one with `moat snapshot > FILE`' : 'check the file permissions',
    });
  }
  return parseSnapshot(text, file);
}

/** 1-based line and column of a character offset. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < Math.min(offset, text.length); i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

type PathKey = string | number;

/** Offset of the first JSON syntax error in `text` (a small strict scanner; JSON.parse does not always say). */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  class Bad extends Error {}
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const fail = (): never => {
    throw new Bad();
  };
  const str = () => {
    if (text[i] !== '"') fail();
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail();
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') return void i++;
        fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') return void i++;
        fail();
      }
    }
    if (c === '"') return str();
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
    return text.length;
  } catch (err) {
    if (err instanceof Bad) return Math.min(i, text.length);
    throw err;
  }
}

function pathText(path: readonly PathKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out ? `.${k}` : k;
  return out || '(top level)';
}

/** Finds the YAML node at `path`; with `key`, the key node of that entry of the map at `path`. */
function nodeAt(doc: Document, path: readonly PathKey[], key?: string): YamlNode | undefined {
  let node: unknown = doc.contents;
  let last: YamlNode | undefined = node as YamlNode;
  for (const k of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown })?.value === k);
      if (!pair) break;
      node = pair.value;
    } else if (isSeq(node) && typeof k === 'number') {
      node = node.items[k];
    } else break;
    if (!node) break;
    last = node as YamlNode;
  }
  if (key !== undefined && isMap(last)) {
    const pair = last.items.find((p) => (p.key as { value?: unknown })?.value === key);
    if (pair?.key) return pair.key as YamlNode;
  }
  return last;
}

/** Parses snapshot text (the contents of `file`, used in positions) into a World. Throws UserError. */
export function parseSnapshot(text: string, file: string): World {
  const bag = new DiagnosticBag();
  const posOf = (offset: number): SourcePos => ({ file, ...lineCol(text, offset) });

  // 1. Strict JSON syntax (YAML would accept more).
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const m = /at position (\d+)/.exec(msg);
    const offset = m ? Number(m[1]) : jsonErrorOffset(text);
    const what = /^Unexpected token/.test(msg) ? `unexpected character ${JSON.stringify(text[offset] ?? '')}` : msg.replace(/ in JSON at position \d+.*$/, '');
    throw userError('snapshot.syntax', `not valid JSON: ${what}`, {
      pos: posOf(offset),
      fix: 'a snapshot is one JSON object; write one with `moat snapshot`',
    });
  }

  // 2. Node positions (and duplicate keys, which JSON.parse silently accepts).
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  for (const e of doc.errors) {
    bag.error('snapshot.syntax', e.message.split('\n')[0], { pos: posOf(e.pos[0]) });
  }
  bag.throwIfErrors();
  const at = (path: readonly PathKey[], key?: string): SourcePos => {
    const node = nodeAt(doc, path, key);
    const offset = node?.range?.[0];
    return offset === undefined ? { file, line: 1, col: 1 } : posOf(offset);
  };

  // 3. Version first: a clear message for other files and future versions.
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw userError('snapshot.not-snapshot', 'a moat snapshot is a JSON object', { pos: at([]), fix: 'write one with `moat snapshot`' });
  }
  const version = (data as Record<string, unknown>).moatSnapshot;
  if (version === undefined) {
    throw userError('snapshot.not-snapshot', 'not a moat snapshot: the key "moatSnapshot" is missing', {
      pos: at([]),
      fix: `add "moatSnapshot": ${SNAPSHOT_VERSION} (the format version), or write the file with \`moat snapshot\``,
    });
  }
  if (version !== SNAPSHOT_VERSION) {
    throw userError('snapshot.version', `snapshot format version ${JSON.stringify(version)} is not supported (this moat reads version ${SNAPSHOT_VERSION})`, {
      pos: at(['moatSnapshot']),
      fix: 'write the snapshot again with this version of moat',
    });
  }

  // 4. Schema.
  const parsed = snapshotSchema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          bag.error('snapshot.unknown-key', `${pathText(path)}: unknown key "${key}"`, {
            pos: at(path, key),
            fix: 'remove it or check its spelling (docs/snapshot.md lists the keys)',
          });
        }
      } else {
        bag.error('snapshot.schema', `${pathText(path)}: ${issue.message}`, { pos: at(path) });
      }
    }
    bag.throwIfErrors();
  }
  const snap = parsed.data as ParsedSnapshot;

  // 5. Meaning: addresses, CIDRs, references, uniqueness.
  const checkIp = (value: string, path: PathKey[], family?: 4 | 6) => {
    if (!isIp(value) || (family === 4 && value.includes(':')) || (family === 6 && !value.includes(':'))) {
      bag.error('snapshot.invalid-address', `${pathText(path)}: '${value}' is not an IPv${family ?? '4 or IPv6'} address`, { pos: at(path) });
    }
  };
  const checkCidr = (value: string, path: PathKey[]) => {
    if (!value.includes('/') || !parseCidr(value)) {
      bag.error('snapshot.invalid-cidr', `${pathText(path)}: '${value}' is not a CIDR (address/prefix)`, { pos: at(path) });
    }
  };

  const nsNames = new Set<string>();
  snap.namespaces.forEach((ns, i) => {
    if (nsNames.has(ns.name)) bag.error('snapshot.duplicate', `namespaces[${i}]: namespace '${ns.name}' appears twice`, { pos: at(['namespaces', i, 'name']) });
    nsNames.add(ns.name);
  });
  const netNames = new Set<string>();
  snap.networks.forEach((n, i) => {
    if (netNames.has(n.name)) bag.error('snapshot.duplicate', `networks[${i}]: network '${n.name}' appears twice`, { pos: at(['networks', i, 'name']) });
    netNames.add(n.name);
    n.subnets.forEach((s, j) => checkCidr(s, ['networks', i, 'subnets', j]));
    (n.gateways ?? []).forEach((g, j) => checkIp(g, ['networks', i, 'gateways', j]));
    const icc = n.options[ICC_OPTION];
    if (icc !== undefined && n.icc !== undefined && n.icc !== (icc !== 'false')) {
      bag.error('snapshot.conflict', `networks[${i}]: icc is ${n.icc} but option ${ICC_OPTION} is '${icc}'`, {
        pos: at(['networks', i, 'icc']),
        fix: 'make them agree or drop one of them',
      });
    }
  });
  const ids = new Set<string>();
  const endpointId = (e: ParsedSnapshot['endpoints'][number]) => e.id ?? `${e.namespace}/${e.name}`;
  snap.endpoints.forEach((e, i) => {
    const id = endpointId(e);
    if (ids.has(id)) {
      bag.error('snapshot.duplicate', `endpoints[${i}]: endpoint id '${id}' appears twice`, {
        pos: at(['endpoints', i, e.id ? 'id' : 'name']),
        fix: 'give each endpoint a unique "id" (default: namespace/name)',
      });
    }
    ids.add(id);
  });
  snap.endpoints.forEach((e, i) => {
    if (e.networkMode.startsWith('container:') && !ids.has(e.networkMode.slice('container:'.length))) {
      bag.error('snapshot.unknown-endpoint', `endpoints[${i}].networkMode: no endpoint has the id '${e.networkMode.slice(10)}'`, {
        pos: at(['endpoints', i, 'networkMode']),
        fix: 'name the id of an endpoint of this snapshot',
      });
    }
    if (e.networkMode !== 'bridge' && e.attachments.length) {
      bag.error('snapshot.conflict', `endpoints[${i}]: an endpoint in network mode '${e.networkMode}' has no attachments of its own`, {
        pos: at(['endpoints', i, 'attachments']),
        fix: 'remove the attachments or use networkMode "bridge"',
      });
    }
    const seen = new Set<string>();
    e.attachments.forEach((a, j) => {
      const base: PathKey[] = ['endpoints', i, 'attachments', j];
      if (!netNames.has(a.network)) {
        bag.error('snapshot.unknown-network', `${pathText([...base, 'network'])}: no network named '${a.network}'`, {
          pos: at([...base, 'network']),
          fix: 'add the network to "networks" or correct the name',
        });
      }
      if (seen.has(a.network)) bag.error('snapshot.duplicate', `${pathText(base)}: attached to '${a.network}' twice`, { pos: at(base) });
      seen.add(a.network);
      if (a.ipv4 !== undefined) checkIp(a.ipv4, [...base, 'ipv4'], 4);
      if (a.ipv6 !== undefined) checkIp(a.ipv6, [...base, 'ipv6'], 6);
      const net = snap.networks.find((n) => n.name === a.network);
      for (const [fam, addr] of [['ipv4', a.ipv4], ['ipv6', a.ipv6]] as const) {
        if (!addr || !isIp(addr) || !net || !net.subnets.length) continue;
        const cidrs = net.subnets.map((s) => parseCidr(s)).filter((c) => c && (c.family === 4) === (fam === 'ipv4'));
        if (cidrs.length && !cidrs.some((c) => c && cidrContains(c, addr))) {
          bag.error('snapshot.address-outside', `${pathText([...base, fam])}: ${addr} is outside the subnets of network '${net.name}'`, {
            pos: at([...base, fam]),
            fix: `use an address in ${net.subnets.join(', ')}`,
          });
        }
      }
    });
    e.publishedPorts.forEach((p, j) => {
      const h = p.hostIp.replace(/^\[|\]$/g, '');
      if (h !== '' && !isIp(h)) checkIp(h, ['endpoints', i, 'publishedPorts', j, 'hostIp']);
    });
    const portNames = new Set<string>();
    e.declaredPorts.forEach((p, j) => {
      if (p.name === undefined) return;
      if (portNames.has(p.name)) bag.error('snapshot.duplicate', `endpoints[${i}].declaredPorts[${j}]: port name '${p.name}' appears twice`, { pos: at(['endpoints', i, 'declaredPorts', j, 'name']) });
      portNames.add(p.name);
    });
  });
  snap.externals.forEach((x, i) => x.cidrs.forEach((c, j) => checkCidr(c, ['externals', i, 'cidrs', j])));
  snap.host.addresses.forEach((a, i) => checkIp(a, ['host', 'addresses', i]));
  bag.throwIfErrors();

  return completeNamespaces(toWorld(snap, file));
}

function toWorld(snap: ParsedSnapshot, file: string): World {
  const def = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  const networks: Network[] = snap.networks.map((n) =>
    def({
      name: n.name,
      id: n.id,
      namespace: n.namespace,
      driver: n.driver,
      subnets: n.subnets.map((s) => parseCidr(s)?.text ?? s),
      gateways: n.gateways,
      internal: n.internal,
      options: n.options,
      icc: n.icc ?? n.options[ICC_OPTION] !== 'false',
      enableIPv6: n.enableIPv6,
      external: n.external,
      labels: n.labels,
    }),
  );
  const endpoints: Endpoint[] = snap.endpoints.map((e) => {
    const mode: NetworkMode = e.networkMode.startsWith('container:')
      ? { kind: 'container', of: e.networkMode.slice('container:'.length) }
      : { kind: e.networkMode as 'bridge' | 'host' | 'none' };
    return def({
      id: e.id ?? `${e.namespace}/${e.name}`,
      name: e.name,
      namespace: e.namespace,
      containerName: e.containerName,
      composeService: e.composeService,
      labels: e.labels,
      networkMode: mode,
      attachments: e.attachments.map((a) => def<Attachment>({ network: a.network, ipv4: a.ipv4, ipv6: a.ipv6, aliases: a.aliases })),
      declaredPorts: e.declaredPorts.map((p) => def<DeclaredPort>({ port: p.port, protocol: p.protocol as Protocol, name: p.name })),
      publishedPorts: e.publishedPorts.map((p) =>
        def<PublishedPort>({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol as Protocol }),
      ),
      running: e.running,
      pid: e.pid,
      image: e.image,
    });
  });
  return {
    origin: `snapshot:${file}`,
    namespaces: snap.namespaces.map((ns) => ({ name: ns.name, labels: ns.labels })),
    endpoints,
    networks,
    externals: snap.externals.map((x) => ({ name: x.name, cidrs: x.cidrs })),
    host: def({ addresses: snap.host.addresses, userlandProxy: snap.host.userlandProxy }),
    warnings: snap.warnings,
  };
}

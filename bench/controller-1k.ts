// The real controller (`bin/moat.js run`) at N endpoints, without N real containers: this script serves
// a fake Docker Engine API on a unix socket (the endpoints of bench/enforce-world.ts as running
// containers, their networks, and an event stream), and the controller, a separate process, talks to
// it as to dockerd. Its ruleset goes into the host's nft in its own table; the addresses come from
// 100.64.0.0/10, which no container here uses, so no real packet meets these rules.
//   node --import tsx bench/controller-1k.ts [--endpoints 1000] [--idle 60] [--events 100] [--policy-changes 0]
// Measures, on the controller process: RSS once it has enforced everything, CPU over an idle window
// with default timers, and event-to-enforced over --events container starts (one at a time, each a new
// replica of an existing identity, announced as dockerd does: network `connect`, then `start`), from the controller's own histogram and from this script's clock
// (event sent -> address in the kernel's ingress map, polled with `nft list map`, which adds its own ms).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../src/controller/server.js';
import type { Endpoint, Network } from '../src/model/world.js';
import { syntheticEndpoints } from './enforce-world.js';
import { CLK_TCK, numberArg, procMem, procStat } from './proc.js';

const N = Math.min(numberArg('endpoints', 1000), 20_000);
const IDLE_S = Math.min(numberArg('idle', 60), 600);
const EVENTS = Math.min(numberArg('events', 100), 1000);
/** Policy edits after the events: one group's port changed per edit (SIGHUP), timed by the controller's log. */
const POLICY_CHANGES = Math.min(numberArg('policy-changes', 0), 50);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const tag = randomBytes(3).toString('hex');
const table = `moatk${tag}`;
const dir = mkdtempSync(join(tmpdir(), `moat-1k-${tag}-`));
const dockerSock = join(dir, 'docker.sock');
const moatSock = join(dir, 'moat.sock');
const policyDir = join(dir, 'policies');

// ---- the fake engine ----------------------------------------------------------------------
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const { networks, endpoints } = syntheticEndpoints(N);
const netJson = (n: Network) => ({
  Name: n.name, Id: hex(`net:${n.name}`), Driver: 'bridge', Scope: 'local', Internal: n.internal, EnableIPv6: false,
  IPAM: { Driver: 'default', Config: n.subnets.map((s) => ({ Subnet: s, Gateway: s.replace(/\.0\/24$/, '.1') })) },
  Options: {}, Labels: { 'com.docker.compose.project': n.name.split('_')[0] },
});
interface Ctr { id: string; e: Endpoint }
const containers = new Map<string, Ctr>();
const add = (e: Endpoint) => {
  const c = { id: hex(`ctr:${e.id}`), e };
  containers.set(c.id, c);
  return c;
};
for (const e of endpoints) add(e);
const labelsOf = (e: Endpoint) => ({ ...e.labels, 'com.docker.compose.project': e.namespace, 'com.docker.compose.service': e.name });
const gatewayOf = (net: string) => (networks.find((n) => n.name === net)?.subnets[0] ?? '').replace(/\.0\/24$/, '.1');
const netsOf = (e: Endpoint) =>
  Object.fromEntries(e.attachments.map((a) => [a.network, { IPAddress: a.ipv4 ?? '', GlobalIPv6Address: '', Gateway: gatewayOf(a.network), Aliases: [e.name] }]));
const summary = (c: Ctr) => ({ Id: c.id, Names: [`/${c.e.namespace}-${c.e.name}`], Image: 'fake', ImageID: 'sha256:fake', State: 'running', Status: 'Up', Labels: labelsOf(c.e), NetworkSettings: { Networks: netsOf(c.e) } });
const inspect = (c: Ctr) => ({
  Id: c.id, Name: `/${c.e.namespace}-${c.e.name}`, Image: 'sha256:fake',
  State: { Status: 'running', Running: true, Pid: 0 },
  Config: { Image: 'fake', Labels: labelsOf(c.e), ExposedPorts: {} },
  HostConfig: { NetworkMode: c.e.attachments[0].network, PortBindings: {} },
  NetworkSettings: { Networks: netsOf(c.e), Ports: {} },
});
const streams = new Set<http.ServerResponse>();
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://fake');
  const path = url.pathname.replace(/^\/v[0-9.]+/, '');
  const json = (v: unknown, code = 200) => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(v));
  };
  let m: RegExpExecArray | null;
  if (path === '/_ping') return void res.end('OK');
  if (path === '/version') return json({ Version: '20.10.24', ApiVersion: '1.41' });
  if (path === '/info') return json({ ServerVersion: '20.10.24' });
  if (path === '/networks') return json(networks.map(netJson));
  if ((m = /^\/networks\/([^/]+)$/.exec(path))) {
    const n = networks.find((x) => x.name === m![1] || hex(`net:${x.name}`) === m![1]);
    return n ? json(netJson(n)) : json({ message: 'no such network' }, 404);
  }
  if (path === '/containers/json') return json([...containers.values()].map(summary));
  if ((m = /^\/containers\/([^/]+)\/json$/.exec(path))) {
    const c = containers.get(m[1]) ?? [...containers.values()].find((x) => x.id.startsWith(m![1]));
    return c ? json(inspect(c)) : json({ message: 'no such container' }, 404);
  }
  if (/^\/images\/.+\/json$/.test(path)) return json({ Id: 'sha256:fake', Config: { ExposedPorts: {} } });
  if (path === '/events') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    streams.add(res);
    req.on('close', () => streams.delete(res));
    return;
  }
  json({ message: `not faked: ${path}` }, 404);
});
/** What dockerd sends when a container starts: a `connect` per network, then `start`. */
function emitStart(c: Ctr): number {
  const ns = BigInt(Date.now()) * 1_000_000n;
  const at = { scope: 'local', time: Number(ns / 1_000_000_000n), timeNano: Number(ns) };
  const evs: object[] = c.e.attachments.map((a) => ({ Type: 'network', Action: 'connect', Actor: { ID: hex(`net:${a.network}`), Attributes: { container: c.id, name: a.network, type: 'bridge' } }, ...at }));
  evs.push({ Type: 'container', Action: 'start', Actor: { ID: c.id, Attributes: { name: c.e.name, 'com.docker.compose.project': c.e.namespace } }, ...at });
  for (const s of streams) for (const ev of evs) s.write(`${JSON.stringify(ev)}\n`);
  return performance.now();
}

// ---- policies: per namespace, web <- any:80,443; api <- web:8080; db <- api:5432, no internet; cache <- api:6379
const nsNames = [...new Set(endpoints.map((e) => e.namespace))];
const groups = nsNames.flatMap((ns) => [
  `  ${ns}-web:\n    select: { namespace: ${ns}, labels: { tier: web } }\n    ingress:\n      - from: [any]\n        ports: [80, 443]`,
  `  ${ns}-api:\n    select: { namespace: ${ns}, labels: { tier: api } }\n    ingress:\n      - from: [${ns}-web]\n        ports: [8080]\n    egress:\n      - to: [${ns}-db, ${ns}-cache]\n      - to: [host]\n        ports: [53/udp]`,
  `  ${ns}-db:\n    select: { namespace: ${ns}, labels: { tier: db } }\n    ingress:\n      - from: [${ns}-api]\n        ports: [5432]\n    deny:\n      egress:\n        - to: [internet]`,
  `  ${ns}-cache:\n    select: { namespace: ${ns}, labels: { tier: cache } }\n    ingress:\n      - from: [${ns}-api]\n        ports: [6379]`,
]);
mkdirSync(policyDir, { recursive: true });
const policyText = (gs: string[]) => `apiVersion: moat/v1\nkind: Policy\nmetadata:\n  name: fake-1k\ngroups:\n${gs.join('\n')}\n`;
writeFileSync(join(policyDir, 'p.yaml'), policyText(groups));

// ---- run ----------------------------------------------------------------------------------
const rssMb = (pid: number) => procMem(pid).rss;
const get = async (p: string) => {
  try {
    return await request({ kind: 'unix', path: moatSock }, p, undefined, 5000);
  } catch {
    return undefined;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let child: ReturnType<typeof spawn> | undefined;
// Killed (Ctrl-C, `timeout`): the same clean-up as the end of a run (the controller stopped, its
// table out of the host's ruleset, the directory gone), then out.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (child?.pid && child.exitCode === null) child.kill('SIGKILL');
    spawnSync('nft', ['delete', 'table', 'inet', table]);
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}
try {
  await new Promise<void>((r) => server.listen(dockerSock, () => r()));
  const fd = openSync(join(dir, 'moat.log'), 'a');
  child = spawn(process.execPath, [join(REPO, 'bin', 'moat.js'), 'run', '--docker-host', `unix://${dockerSock}`, '--table', table, '--state-dir', join(dir, 'state'), '--listen', `unix://${moatSock}`, '--policy', policyDir], { cwd: REPO, stdio: ['ignore', fd, fd] });
  const pid = child.pid!;
  const t0 = Date.now();
  for (;;) {
    const r = await get('/status');
    const st = r && r.status === 200 ? JSON.parse(r.body) : undefined;
    if (st?.ready && st.endpoints?.filter((e: { enforced: boolean }) => e.enforced).length >= N) {
      console.log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${N} endpoints enforced, ${st.ruleset.rules} rules, ${st.ruleset.setElements} set elements; start-up CPU ${(procStat(pid).self / CLK_TCK).toFixed(2)} s, RSS ${rssMb(pid).toFixed(0)} MB`);
      break;
    }
    if (Date.now() - t0 > 180_000) throw new Error(`not ready after 180 s; see ${join(dir, 'moat.log')}`);
    await sleep(250);
  }
  await sleep(5000);
  const a = procStat(pid);
  const ta = Date.now();
  await sleep(IDLE_S * 1000);
  const b = procStat(pid);
  const secs = (Date.now() - ta) / 1000;
  console.log(`idle ${secs.toFixed(0)} s (default timers: drift 10 s, resync 60 s): CPU ${((b.self - a.self) / CLK_TCK).toFixed(2)} s (${((100 * (b.self - a.self)) / CLK_TCK / secs).toFixed(2)} % of one core), children ${((b.children - a.children) / CLK_TCK).toFixed(2)} s; RSS ${rssMb(pid).toFixed(0)} MB`);

  // Events: one new replica at a time; wait until the kernel holds its address.
  const lat: number[] = [];
  for (let k = 0; k < EVENTS; k++) {
    const like = endpoints[(k * 37) % endpoints.length];
    const net = like.attachments[0];
    // A free address in another /24 of the same /16 (unused by the synthetic endpoints), unique per event.
    const ipv4 = `${net.ipv4!.split('.').slice(0, 2).join('.')}.${200 + Math.floor(k / 50)}.${(k % 50) + 2}`;
    const e: Endpoint = { ...like, id: `${like.namespace}/extra${k}`, name: `${like.name}-x${k}`, attachments: [{ network: net.network, ipv4 }] };
    const c = add(e);
    const sent = emitStart(c);
    const addrRe = new RegExp(`\\b${e.attachments[0].ipv4!.replace(/\./g, '\\.')}\\b`);
    // Polled without blocking this process: it also serves the fake engine the controller inspects.
    for (let i = 0; i < 400; i++) {
      const out = await new Promise<string>((res) => execFile('nft', ['list', 'map', 'inet', table, 'ingress4'], { encoding: 'utf8' }, (_e, so) => res(so ?? '')));
      if (addrRe.test(out)) break;
      await sleep(3);
    }
    lat.push(performance.now() - sent);
    await sleep(20);
  }
  lat.sort((x, y) => x - y);
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))].toFixed(1) : '-');
  console.log(`event to address in the kernel (this script's clock, incl. debounce 10 ms and the nft poll): p50 ${q(50)} ms, p99 ${q(99)} ms over ${lat.length} events`);
  const metrics = (await get('/metrics'))?.body ?? '';
  const bucket = (le: string) => Number(new RegExp(`^moat_event_to_enforced_seconds_bucket\\{le="${le}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  const count = Number(/^moat_event_to_enforced_seconds_count (\d+)/m.exec(metrics)?.[1] ?? NaN);
  console.log(`controller's moat_event_to_enforced_seconds: ${count} events, <= 20 ms: ${bucket('0.02')}, <= 50 ms: ${bucket('0.05')}, <= 100 ms: ${bucket('0.1')}`);
  const compiles = metrics.split('\n').filter((l) => l.startsWith('moat_compiles_total')).join(', ');
  console.log(`${compiles}; RSS after the events ${rssMb(pid).toFixed(0)} MB`);
  // The controller's own reconcile durations (log lines "ruleset applied", from the start of the
  // reconcile to the kernel transaction done).
  const ms = readFileSync(join(dir, 'moat.log'), 'utf8').split('\n').filter((l) => l.includes('"ruleset applied"') && l.includes('"trigger":"events"')).map((l) => JSON.parse(l).ms as number).sort((x, y) => x - y);
  if (ms.length) console.log(`reconcile per event (controller log): p50 ${ms[Math.floor(ms.length / 2)]} ms, p99 ${ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]} ms over ${ms.length}`);
  // Policy edits: one namespace's db group takes another port each time (new chains, the old ones
  // go), the file rewritten and the controller told with SIGHUP; its log says how the edit was
  // applied and how long the reconcile took (compile of the whole host, diff, kernel).
  if (POLICY_CHANGES > 0) {
    const applied = () => readFileSync(join(dir, 'moat.log'), 'utf8').split('\n').filter((l) => l.includes('"ruleset applied"') && l.includes('policy reload')).map((l) => JSON.parse(l) as { mode: string; compile: string; compileReason?: string; ms: number; compileMs: number; applyMs: number });
    const rows: { mode: string; compile: string; compileReason?: string; ms: number; compileMs: number; applyMs: number; untilStatus: number }[] = [];
    for (let r = 0; r < POLICY_CHANGES; r++) {
      const before = applied().length;
      const i = (r * 4 * 7 + 2) % groups.length; // a db group (every fourth, from the third)
      const edited = groups.map((g, j) => (j === i ? g.replace(/ports: \[5432\]/, `ports: [${5433 + r}]`) : g));
      writeFileSync(join(policyDir, 'p.yaml'), policyText(edited));
      const sent = performance.now();
      process.kill(pid, 'SIGHUP');
      let got: ReturnType<typeof applied>[number] | undefined;
      for (let k = 0; k < 600 && !got; k++) {
        await sleep(10);
        const a = applied();
        if (a.length > before) got = a[a.length - 1];
      }
      if (!got) throw new Error('no policy reload in the log after 6 s');
      rows.push({ ...got, untilStatus: +(performance.now() - sent).toFixed(1) });
      await sleep(1500);
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    console.log(`policy edits (controller log, reconcile = labels, policy merge, compile + diff + kernel): ${rows.length}, apply modes ${JSON.stringify(rows.map((x) => x.mode))}, compile modes ${JSON.stringify(rows.map((x) => x.compile + (x.compileReason ? ` (${x.compileReason})` : '')))}; reconcile median ${med(rows.map((x) => x.ms))} ms (compile ${med(rows.map((x) => x.compileMs))}, apply ${med(rows.map((x) => x.applyMs))}), max ${Math.max(...rows.map((x) => x.ms))} ms; all: ${JSON.stringify(rows.map((x) => [x.ms, x.compileMs, x.applyMs]))}; SIGHUP to the log line (incl. the file read and policy load, this script's 10 ms polling): median ${med(rows.map((x) => x.untilStatus))} ms`);
  }
  if (process.argv.includes('--keep-log')) console.log(readFileSync(join(dir, 'moat.log'), 'utf8').split('\n').slice(-40).join('\n'));
} finally {
  if (child?.pid && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
  }
  spawnSync('nft', ['delete', 'table', 'inet', table]);
  for (const s of streams) s.end();
  server.close();
  rmSync(dir, { recursive: true, force: true });
}

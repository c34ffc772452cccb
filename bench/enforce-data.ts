// Data-plane benchmark: two real containers on one network, with 10,000 synthetic endpoints and
// 1,000 policies loaded (plus the policy that lets the client reach the server). TCP throughput
// (iperf3 from Debian, run inside the containers' network namespaces with nsenter) and new TCP
// connections per second (bench/enforce-connload.ts, C) for: no rules, moat nft, moat iptables, the
// naive one-rule-per-address iptables approach (10,000 rules in a chain jumped from DOCKER-USER, as
// the seed's docker-security-groups.sh would grow), and no rules again. All in one run, side by side.
// Traffic only between the two containers this script starts. Bounded: a few minutes; cleans up.
//   node --import tsx bench/enforce-data.ts [--seconds 4] [--endpoints 10000] [--policies 1000]
//
// --ab N: paired rounds instead (the noise of a shared machine moves whole runs by 10-20 points). Each
// backend's ruleset is loaded once; then N rounds each measure it switched off and on back to back
// (throughput pair, then connection-rate pair), in alternating order: nft by making moat's table
// dormant (its base chains leave the hooks) and waking it; iptables by removing and re-inserting the
// DOCKER-USER -> moat jump. The figure is the median of the per-round on/off ratios.
//   node --import tsx bench/enforce-data.ts --ab 8 [--seconds 3] [--floor] [--only nft,floor]
// `--floor` adds the hooks alone: a table with moat's two base chains accepting established packets
// and nothing else, toggled the same way (what any ruleset on these two hooks costs at least), and the
// same with one base chain (prerouting only).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { applyPlan, compilePlan, uninstall, type EnforceOptions } from '../src/enforce/index.js';
import { loadDockerWorld } from '../src/sources/docker/index.js';
import { BUSYBOX_IMAGE, ensureBusyboxImage } from '../src/demo/images.js';
import type { Policy } from '../src/model/ir.js';
import { connloadBinary } from './enforce-connload.js';
import { syntheticPolicies, syntheticWorld } from './enforce-world.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const SECONDS = Math.min(arg('seconds', 4), 15);
const ENDPOINTS = arg('endpoints', 10_000);
const POLICIES = arg('policies', 1_000);
const NAIVE_RULES = Math.min(arg('naive-rules', 10_000), 20_000);
const AB_ROUNDS = Math.min(arg('ab', 0), 120);
/** `--floor`: also the hooks alone (A/B mode); `--only a,b`: only the configurations whose names contain these. */
const FLOOR = process.argv.includes('--floor');
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1].split(',') : [];
})();
/**
 * How long the two containers live (they are removed at the end in any case): 15 minutes, or more for
 * long paired runs (a round is ~4 runs of SECONDS plus ~6 s of setup; 4 configurations at most).
 */
const CONTAINER_SECONDS = 900 + AB_ROUNDS * 4 * (4 * SECONDS + 10);
const MAX_CONN = 60_000; // per connection-rate run, so conntrack (max 262,144 here) never fills

const rnd = randomBytes(3).toString('hex');
const letters = rnd.replace(/[0-9]/g, (d) => 'ghijklmnop'[Number(d)]);
const project = `moatbench${rnd}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const stateDir = mkdtempSync(join(tmpdir(), 'moat-bench-'));
const naiveChain = `MNV${letters.toUpperCase()}`.slice(0, 9);
const floorTable = `moatf${rnd}`;
const nftOpts: EnforceOptions = { backend: 'nft', stateDir, table: `moatb${rnd}` };
const iptOpts: EnforceOptions = { backend: 'iptables', stateDir, chainPrefix: `MB${letters.toUpperCase()}`.slice(0, 8), setPrefix: `mb${letters}`.slice(0, 8) };

const created: { containers: string[]; network?: string } = { containers: [] };
async function cleanup(): Promise<void> {
  spawnSync('iptables', ['-D', 'DOCKER-USER', '-j', naiveChain]);
  spawnSync('iptables', ['-F', naiveChain]);
  spawnSync('iptables', ['-X', naiveChain]);
  await uninstall(nftOpts).catch(() => undefined);
  await uninstall(iptOpts).catch(() => undefined);
  spawnSync('nft', ['delete', 'table', 'inet', floorTable]);
  for (const c of created.containers) await docker.getContainer(c).remove({ force: true }).catch(() => undefined);
  if (created.network) await docker.getNetwork(created.network).remove().catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().then(() => process.exit(130)));

function conntrackCount(): number {
  try {
    return Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_count', 'utf8'));
  } catch {
    return 0;
  }
}

/** Waits (bounded) until conntrack holds at most `max` entries (closed connections linger ~10 s). */
async function drainConntrack(max = 30_000): Promise<void> {
  for (let i = 0; i < 60 && conntrackCount() > max; i++) await new Promise((r) => setTimeout(r, 500));
}

function nsenter(pid: number, argv: string[], timeoutMs: number) {
  return spawnSync('nsenter', ['-t', String(pid), '-n', ...argv], { encoding: 'utf8', timeout: timeoutMs });
}

async function throughput(srvPid: number, cliPid: number, srvIp: string): Promise<number> {
  // At most 3 tries: on a loaded machine the one-shot server is now and then not listening yet.
  let error = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = spawn('nsenter', ['-t', String(srvPid), '-n', 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 400 * (attempt + 1)));
    const r = nsenter(cliPid, ['iperf3', '-c', srvIp, '-p', '5201', '-t', String(SECONDS), '-J'], (SECONDS + 20) * 1000);
    if (server.exitCode === null && server.pid) process.kill(server.pid, 'SIGTERM');
    await new Promise((res) => (server.exitCode !== null || server.signalCode !== null ? res(undefined) : server.once('exit', res)));
    try {
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      return j.end.sum_received.bits_per_second / 1e9;
    } catch {
      error = r.stderr || r.stdout.slice(0, 500);
    }
  }
  throw new Error(`iperf3 failed 3 times: ${error}`);
}

async function connRate(srvPid: number, cliPid: number, srvIp: string, drainTo = 30_000): Promise<number> {
  const bin = connloadBinary();
  await drainConntrack(drainTo);
  const server = spawn('nsenter', ['-t', String(srvPid), '-n', bin, 'server', '5301', String(SECONDS + 10)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  const r = nsenter(cliPid, [bin, 'client', srvIp, '5301', String(SECONDS), String(MAX_CONN), '4'], (SECONDS + 20) * 1000);
  if (server.exitCode === null && server.pid) process.kill(server.pid, 'SIGTERM');
  const [n, s] = r.stdout.trim().split(/\s+/).map(Number);
  if (!n || !s) throw new Error(`connload failed: ${r.stderr}`);
  return n / s;
}

async function container(name: string, net: string, role: string): Promise<{ id: string; pid: number; ip: string }> {
  const c = await docker.createContainer({
    name, Image: BUSYBOX_IMAGE, Cmd: ['sleep', String(CONTAINER_SECONDS)], Labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': role, 'moat.bench.role': role },
    HostConfig: { NetworkMode: net },
  });
  created.containers.push(c.id);
  await c.start();
  const info = await c.inspect();
  return { id: c.id, pid: info.State.Pid, ip: info.NetworkSettings.Networks[net].IPAddress };
}

function naiveRules(cliIp: string, srvIp: string): string {
  // One rule per address pair, as a per-address security-group script grows: none of the synthetic
  // ones match the benchmark's packets, so every packet walks all of them before the last one.
  const lines = ['*filter', `:${naiveChain} - [0:0]`];
  for (let i = 0; i < NAIVE_RULES; i++) {
    const a = `100.${64 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
    lines.push(`-A ${naiveChain} -s ${a}/32 -d 100.66.0.${i % 250}/32 -p tcp -m tcp --dport 3306 -m comment --comment "sg-${i}" -j RETURN`);
  }
  lines.push(`-A ${naiveChain} -s ${cliIp}/32 -d ${srvIp}/32 -m comment --comment "bench-pair" -j RETURN`);
  lines.push(`-I DOCKER-USER 1 -j ${naiveChain}`, 'COMMIT', '');
  return lines.join('\n');
}

type Row = { config: string; gbps: number; cps: number; setupMs?: number };

async function measure(config: string, srvPid: number, cliPid: number, srvIp: string, setupMs?: number): Promise<Row> {
  const gbps = await throughput(srvPid, cliPid, srvIp);
  const cps = await connRate(srvPid, cliPid, srvIp);
  const row = { config, gbps: +gbps.toFixed(2), cps: Math.round(cps), setupMs };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

try {
  if (process.getuid?.() !== 0) throw new Error('needs root');
  await ensureBusyboxImage(docker);
  connloadBinary();
  let net: Docker.Network | undefined;
  for (let attempt = 0; attempt < 8 && !net; attempt++) {
    const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.0/24`;
    try {
      net = await docker.createNetwork({ Name: `${project}_net`, Driver: 'bridge', IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] }, Labels: { 'com.docker.compose.project': project } });
    } catch (e) {
      if (!/overlap/i.test(String(e))) throw e;
    }
  }
  if (!net) throw new Error('no free subnet');
  created.network = `${project}_net`;
  const srv = await container(`${project}-srv`, `${project}_net`, 'srv');
  const cli = await container(`${project}-cli`, `${project}_net`, 'cli');

  // The world: the two real containers plus the synthetic host; the policies: synthetic plus the pair's.
  const real = await loadDockerWorld({ project });
  const syn = syntheticWorld(ENDPOINTS);
  const world = { ...real, networks: [...real.networks, ...syn.networks], endpoints: [...real.endpoints, ...syn.endpoints] };
  const policies = syntheticPolicies(POLICIES, ENDPOINTS);
  const sel = (r: string) => ({ namespaces: { kind: 'all' as const }, labels: { matchLabels: { 'moat.bench.role': r } } });
  const pair: Policy = {
    id: 'bench:srv', name: 'bench/srv', kind: 'label', subject: sel('srv'), isolates: { ingress: true, egress: true },
    ingress: [{ action: 'allow', peers: [{ kind: 'endpoints', selector: sel('cli') }], ports: [{ protocol: 'TCP', port: 5201 }, { protocol: 'TCP', port: 5301 }] }],
    egress: [{ action: 'allow', peers: [{ kind: 'endpoints', selector: sel('cli') }] }],
  };
  const pairCli: Policy = { ...pair, id: 'bench:cli', name: 'bench/cli', subject: sel('cli'), isolates: { ingress: false, egress: true }, ingress: [], egress: [{ action: 'allow', peers: [{ kind: 'endpoints', selector: sel('srv') }], ports: [{ protocol: 'TCP', port: 5201 }, { protocol: 'TCP', port: 5301 }] }] };
  policies.policies.push(pair, pairCli);

  if (AB_ROUNDS > 0) {
    const plan = compilePlan(world, policies, nftOpts);
    const dormant = (table: string) => (on: boolean): void => void spawnSync('nft', on ? ['add', 'table', 'inet', table] : ['add', 'table', 'inet', table, '{ flags dormant; }']);
    const toggles: { name: string; opts: EnforceOptions; set: (on: boolean) => void; load?: () => void; unload?: () => void }[] = [
      { name: 'moat nft', opts: nftOpts, set: dormant(nftOpts.table!) },
      { name: 'moat iptables', opts: iptOpts, set: (on: boolean) => void spawnSync('iptables', on ? ['-I', 'DOCKER-USER', '1', '-j', iptOpts.chainPrefix!] : ['-D', 'DOCKER-USER', '-j', iptOpts.chainPrefix!]) },
      // `--floor`: the cost of the hooks alone, a table with moat's two base chains (same hooks and
      // priority) that accept established packets and nothing else.
      ...(FLOOR
        ? [
            { name: 'nft floor (two base chains, established only)', hooks: ['prerouting', 'postrouting'] },
            { name: 'nft floor, one base chain (prerouting, established only)', hooks: ['prerouting'] },
          ].map((f) => ({
            name: f.name, opts: nftOpts, set: dormant(floorTable),
            load: () => {
              const rules = (hook: string) => `\tchain c_${hook} {\n\t\ttype filter hook ${hook} priority filter - 10; policy accept;\n\t\tct state established,related accept\n\t}\n`;
              const r = spawnSync('nft', ['-f', '-'], { input: `table inet ${floorTable} {\n${f.hooks.map(rules).join('')}}\n`, encoding: 'utf8' });
              if (r.status !== 0) throw new Error(`floor table: ${r.stderr}`);
            },
            unload: () => void spawnSync('nft', ['delete', 'table', 'inet', floorTable]),
          }))
        : []),
    ].filter((tg) => ONLY.length === 0 || ONLY.some((o) => tg.name.includes(o)));
    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    };
    // Median, and mean with its standard error (the spread of the per-round ratios over sqrt(rounds)).
    const stats = (xs: number[]) => {
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const se = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) / xs.length) : 0;
      const r1 = (x: number) => Math.round(x * 1000) / 10;
      return { perRound: xs.map(r1), median: r1(median(xs)), mean: r1(mean), standardError: r1(se) };
    };
    const out: Record<string, unknown> = {};
    for (const tg of toggles) {
      if (tg.load) tg.load();
      else await applyPlan(plan, tg.opts);
      const gbps: number[] = [];
      const cps: number[] = [];
      let failed = '';
      for (let i = 0; i < AB_ROUNDS && !failed; i++) {
        // Each metric's off and on runs back to back, the order alternating per round. Conntrack may
        // fill up to 150,000 entries here (the two runs of a pair see nearly the same table).
        const order = i % 2 === 0 ? [false, true] : [true, false];
        const tp: Record<string, number> = {};
        const cr: Record<string, number> = {};
        try {
          for (const on of order) {
            tg.set(on);
            tp[String(on)] = await throughput(srv.pid, cli.pid, srv.ip);
          }
          for (const on of order) {
            tg.set(on);
            cr[String(on)] = await connRate(srv.pid, cli.pid, srv.ip, 150_000);
          }
        } catch (e) {
          // The rounds so far stand; this configuration stops here, the next one runs.
          failed = `round ${i + 1}: ${(e as Error).message.split('\n')[0]}`;
          process.stderr.write(`${tg.name}: ${failed}\n`);
          break;
        }
        gbps.push(tp.true / tp.false);
        cps.push(cr.true / cr.false);
        process.stderr.write(`${tg.name} round ${i + 1}: throughput ${tp.false.toFixed(2)} -> ${tp.true.toFixed(2)} Gbit/s, ${Math.round(cr.false)} -> ${Math.round(cr.true)} conn/s\n`);
      }
      tg.set(true);
      if (tg.unload) tg.unload();
      else await uninstall(tg.opts);
      if (gbps.length === 0) {
        out[tg.name] = { failed };
        continue;
      }
      const tp = stats(gbps);
      const cr = stats(cps);
      out[tg.name] = { rounds: gbps.length, ...(failed ? { failed } : {}), throughputPct: tp, connPerSecondPct: cr };
      process.stderr.write(`${tg.name}: ${gbps.length} rounds: conn/s ${cr.median}% median, ${cr.mean} ± ${cr.standardError}%; throughput ${tp.median}% median, ${tp.mean} ± ${tp.standardError}%\n`);
    }
    console.log(JSON.stringify({ endpoints: ENDPOINTS, policies: POLICIES + 2, seconds: SECONDS, rounds: AB_ROUNDS, ruleset: { chains: plan.chains.length, sets: plan.sets.length }, onOffRatios: out }, null, 1));
  } else {
    const rows: Row[] = [];
    rows.push(await measure('no rules', srv.pid, cli.pid, srv.ip));

    let t = Date.now();
    const plan = compilePlan(world, policies, nftOpts);
    await applyPlan(plan, nftOpts);
    rows.push(await measure('moat nft', srv.pid, cli.pid, srv.ip, Date.now() - t));
    await uninstall(nftOpts);

    t = Date.now();
    await applyPlan(plan, iptOpts);
    rows.push(await measure('moat iptables (prefix-tree dispatch)', srv.pid, cli.pid, srv.ip, Date.now() - t));
    await uninstall(iptOpts);

    t = Date.now();
    const r = spawnSync('iptables-restore', ['--noflush'], { input: naiveRules(cli.ip, srv.ip), encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`iptables-restore (naive): ${r.stderr}`);
    rows.push(await measure(`naive: ${NAIVE_RULES} rules in DOCKER-USER`, srv.pid, cli.pid, srv.ip, Date.now() - t));
    spawnSync('iptables', ['-D', 'DOCKER-USER', '-j', naiveChain]);
    spawnSync('iptables', ['-F', naiveChain]);
    spawnSync('iptables', ['-X', naiveChain]);

    rows.push(await measure('no rules (again)', srv.pid, cli.pid, srv.ip));
    const base = { gbps: (rows[0].gbps + rows[4].gbps) / 2, cps: (rows[0].cps + rows[4].cps) / 2 };
    console.log(JSON.stringify({
      endpoints: ENDPOINTS, policies: POLICIES + 2, seconds: SECONDS, ruleset: { chains: plan.chains.length, sets: plan.sets.length },
      rows: rows.map((x) => ({ ...x, gbpsPct: Math.round((x.gbps / base.gbps) * 100), cpsPct: Math.round((x.cps / base.cps) * 100) })),
    }, null, 1));
  }
} finally {
  await cleanup();
}

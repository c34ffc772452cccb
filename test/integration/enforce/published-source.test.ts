// Measures, with real packets, which source address a container behind a published port sees for
// each way of reaching that port: with the daemon's userland-proxy setting as it is on this host, and,
// when this test run started dockerd itself (a fresh CI machine), with the proxy off (dockerd restarted
// with --userland-proxy=false, and back) where moat's published-port allowlist is also checked.
// The figures are written down in docs/enforcement.md ("Published ports: the source seen").
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type Docker from 'dockerode';
import { createNetwork, requireDocker, runContainer, uniqueName } from '../../helpers/docker.js';
import { backendOptions, createTestHost, policySet, probeFromNetns, probeFromPid, type TestHost } from './helpers.js';
import { probeTcp } from '../../../src/enforce/probe.js';
import { apply, uninstall } from '../../../src/enforce/index.js';
import { loadDockerWorld } from '../../../src/sources/docker/index.js';
import { ownedDockerd, restartDockerd } from '../../helpers/dockerd.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children: ChildProcess[] = [];
const hosts: TestHost[] = [];
after(() => {
  for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGTERM');
  hosts.forEach((h) => h.remove());
});

const LISTENER = `
const net = require('node:net');
const srv = net.createServer((s) => { process.stdout.write(s.remoteAddress.replace(/^::ffff:/, '') + '\\n'); s.end(); });
srv.listen({ port: Number(process.argv[1]), host: '::', ipv6Only: false });
setTimeout(() => process.exit(0), 60000);
`;

async function gateway(docker: Docker, id: string): Promise<string> {
  const info = (await docker.getNetwork(id).inspect()) as Docker.NetworkInspectInfo;
  const g = info.IPAM?.Config?.[0]?.Gateway;
  assert.ok(g, 'network has a gateway');
  return g;
}

/**
 * Container B (srv) on network B publishes a host port; a client on network A, a client on B, the host
 * and an outside namespace reach it every way there is; the listener inside B prints each peer address.
 */
async function measurePaths(t: TestContext, docker: Docker, prefix: string) {
  const p = uniqueName(prefix, 18).replace(/-/g, '');
  const lab = (service: string) => ({ 'com.docker.compose.project': p, 'com.docker.compose.service': service });
  const netA = await createNetwork(docker, { name: `${p}_a`, labels: { 'com.docker.compose.project': p } });
  const netB = await createNetwork(docker, { name: `${p}_b`, labels: { 'com.docker.compose.project': p } });
  const hostPort = 20000 + Math.floor(Math.random() * 9000);
  const srv = await runContainer(docker, { name: `${p}-srv`, networks: [netB.name], publish: [{ containerPort: 8081, hostPort }], labels: lab('srv') });
  const cli = await runContainer(docker, { name: `${p}-cli`, networks: [netA.name], labels: lab('cli') });
  const cliB = await runContainer(docker, { name: `${p}-clib`, networks: [netB.name], labels: lab('clib') });
  const outside = createTestHost();
  hosts.push(outside);
  const child = spawn('nsenter', ['-t', String(srv.pid), '-n', process.execPath, '-e', LISTENER, '8081'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const seen: string[] = [];
  child.stdout!.on('data', (d: Buffer) => seen.push(...d.toString().split('\n').filter(Boolean)));
  await new Promise((r) => setTimeout(r, 800));
  const proxy = spawnSync('pgrep', ['-f', `docker-proxy.*-host-port ${hostPort} `]).status === 0;

  const gwA = await gateway(docker, netA.id);
  const gwB = await gateway(docker, netB.id);
  const rows: { path: string; result: string; source: string }[] = [];
  const measure = async (path: string, probe: () => Promise<string> | string) => {
    const n = seen.length;
    const result = await probe();
    await new Promise((r) => setTimeout(r, 200));
    rows.push({ path, result, source: seen.length > n ? seen[seen.length - 1] : '-' });
  };
  await measure(`container on another network -> its gateway ${gwA}:${hostPort}`, () => probeFromPid(cli.pid, gwA, hostPort, 1500));
  await measure(`container on another network -> the other gateway ${gwB}:${hostPort}`, () => probeFromPid(cli.pid, gwB, hostPort, 1500));
  await measure(`container on the same network -> its gateway ${gwB}:${hostPort} (hairpin)`, () => probeFromPid(cliB.pid, gwB, hostPort, 1500));
  await measure(`host -> 127.0.0.1:${hostPort}`, () => probeTcp('127.0.0.1', hostPort, 1500));
  await measure(`host -> ${gwB}:${hostPort}`, () => probeTcp(gwB, hostPort, 1500));
  await measure(`outside namespace ${outside.address} -> ${outside.hostAddress}:${hostPort}`, () => probeFromNetns(outside.ns, outside.hostAddress, hostPort, 1500));
  t.diagnostic(`userland-proxy running for this port: ${proxy}; cli(A)=${cli.ipv4[netA.name]} cliB=${cliB.ipv4[netB.name]} gwA=${gwA} gwB=${gwB}`);
  for (const r of rows) t.diagnostic(`${r.path}: ${r.result}, source seen ${r.source}`);
  return { project: p, hostPort, proxy, rows, cli, cliIp: cli.ipv4[netA.name], cliB, cliBIp: cliB.ipv4[netB.name], gwA, gwB, outside };
}

test('published ports: the source address the destination sees, per path', { timeout: 120_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const m = await measurePaths(t, docker, 'moatps');
  // What must hold whatever the daemon's settings: the kernel DNATs outside sources and keeps their address.
  assert.equal(m.rows[5].source, m.outside.address);
  assert.ok(m.rows.every((r) => r.result !== 'error'));
});

test('userland-proxy off (this run restarts its own dockerd): containers go through kernel DNAT with their own address, so a published-port allowlist applies to them', { timeout: 300_000 }, async (t) => {
  if (!ownedDockerd()) {
    t.skip('the running dockerd was not started by this test run (scripts/test.sh exports MOAT_TEST_DOCKERD_PID when it starts one); restarting it with --userland-proxy=false would break other tests');
    return;
  }
  restartDockerd(['--userland-proxy=false']);
  const dir = mkdtempSync(join(tmpdir(), 'moat-px-'));
  const o = backendOptions('nft', dir);
  try {
    const docker = await requireDocker(t);
    if (!docker) return;
    const m = await measurePaths(t, docker, 'moatpx');
    assert.equal(m.proxy, false, 'no docker-proxy process for the port');
    assert.equal(m.rows[5].source, m.outside.address, 'outside sources keep their address');
    // Kernel DNAT for containers too: to another network's published port Docker's isolation between
    // networks now drops them, and on the same network (hairpin) they arrive with their own address.
    assert.equal(m.rows[0].result, 'filtered', 'a container on another network: dropped by Docker (DOCKER-ISOLATION), no proxy to carry it');
    assert.equal(m.rows[2].result, 'open');
    assert.equal(m.rows[2].source, m.cliBIp, 'hairpin on the same network: the container\'s own address');
    // moat: an allowlist that names only the outside namespace. The hairpin connection is DNATed, so it
    // is held to the list (with the proxy on it would be the proxy's host -> container connection).
    const policies = policySet();
    policies.publishedPortAllowlists.push({ id: 't:px', hostPort: m.hostPort, protocol: 'TCP', sources: [{ kind: 'cidr', cidr: `${m.outside.address}/32`, except: [] }] });
    await apply(await loadDockerWorld({ project: m.project }), policies, o);
    assert.equal(probeFromNetns(m.outside.ns, m.outside.hostAddress, m.hostPort, 1500), 'open', 'the listed source reaches the port');
    assert.equal(probeFromPid(m.cliB.pid, m.gwB, m.hostPort, 1500), 'filtered', 'a container not on the list does not');
    await uninstall(o);
  } finally {
    await uninstall(o).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    // Containers of this test stop with the engine; the clean-up registry removes them afterwards.
    restartDockerd();
  }
});

// Measures, with real packets, which source address a container behind a published port sees for
// each way of reaching that port (the daemon's userland-proxy setting as it is on this host).
// The figures are written down in docs/enforcement.md ("Published ports: the source seen").
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type Docker from 'dockerode';
import { createNetwork, requireDocker, runContainer, uniqueName } from '../../helpers/docker.js';
import { createTestHost, probeFromNetns, probeFromPid, type TestHost } from './helpers.js';
import { probeTcp } from '../../../src/enforce/probe.js';

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

test('published ports: the source address the destination sees, per path', { timeout: 120_000 }, async (t) => {
  const docker = await requireDocker(t);
  if (!docker) return;
  const p = uniqueName('moatps', 18).replace(/-/g, '');
  const netA = await createNetwork(docker, { name: `${p}_a` });
  const netB = await createNetwork(docker, { name: `${p}_b` });
  const hostPort = 20000 + Math.floor(Math.random() * 9000);
  const srv = await runContainer(docker, { name: `${p}-srv`, networks: [netB.name], publish: [{ containerPort: 8081, hostPort }] });
  const cli = await runContainer(docker, { name: `${p}-cli`, networks: [netA.name] });
  const cliB = await runContainer(docker, { name: `${p}-clib`, networks: [netB.name] });
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
  // What must hold whatever the daemon's settings: the kernel DNATs outside sources and keeps their address.
  assert.equal(rows[5].source, outside.address);
  assert.ok(rows.every((r) => r.result !== 'error'));
});

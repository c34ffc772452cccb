// Enforcement against the real dockerd and kernel, for both backends: rules outlive the process that
// applied them, address reuse, published-port allowlists with outside sources, egress to an
// "internet" host, IPv6 on a dual-stack network, uninstall leaves the kernel exactly as before, bad
// input changes nothing. Traffic goes only to containers and namespaces created here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { loadDockerWorld } from '../../../src/sources/docker/index.js';
import { apply, applyIncremental, applyPlan, compilePlan, uninstall, type BackendKind, type EnforceOptions, type RulesetPlan } from '../../../src/enforce/index.js';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { createNetwork, removeContainer, requireDocker, runContainer, uniqueName, type CreatedNetwork } from '../../helpers/docker.js';
import { allowFrom, arrived, backendOptions, createTestHost, denyTo, kernelSnapshot, policy, policySet, probeFromNetns, probeFromPid, rand, REPO, role, type TestHost } from './helpers.js';

const BACKENDS: BackendKind[] = ['nft', 'iptables'];
const dirs: string[] = [];
const hosts: TestHost[] = [];
const installed: EnforceOptions[] = [];
after(async () => {
  for (const o of installed) await uninstall(o).catch(() => undefined);
  hosts.forEach((h) => h.remove());
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function opts(backend: BackendKind): EnforceOptions {
  const d = mkdtempSync(join(tmpdir(), 'moat-enf-'));
  dirs.push(d);
  const o = backendOptions(backend, d);
  installed.push(o);
  return o;
}

function testHost(): TestHost {
  const h = createTestHost();
  hosts.push(h);
  return h;
}

/** A project-labelled network on a random free subnet (retries when Docker reports an overlap). */
async function network(docker: Docker, project: string, v6 = false): Promise<{ net: CreatedNetwork; subnet: string }> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const b = Math.floor(Math.random() * 250);
    const subnet = `10.${200 + (b % 50)}.${Math.floor(Math.random() * 256)}.0/24`;
    const subnets = v6 ? [subnet, `fd00:${rand(4)}:${rand(4)}::/64`] : [subnet];
    try {
      const net = await createNetwork(docker, { name: `${project}_${attempt}${rand(3)}`, subnets, labels: { 'com.docker.compose.project': project } });
      return { net, subnet };
    } catch (e) {
      if (!/overlap|already/i.test(String((e as Error).message))) throw e;
    }
  }
  throw new Error('no free subnet after 8 attempts');
}

const labels = (project: string, service: string, r: string) => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': service, 'moat.test.role': r });
const project = () => uniqueName('moatsc', 18).replace(/-/g, '');
const hostIp = (subnet: string, n: number) => subnet.replace(/0\/24$/, String(n));

for (const backend of BACKENDS) {
  test(`rules stay in the kernel after the process that applied them is gone (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p);
    const db = await runContainer(docker, { name: `${p}-db`, networks: [net.name], tcpPorts: [80], labels: labels(p, 'db', 'db') });
    const app = await runContainer(docker, { name: `${p}-app`, networks: [net.name], labels: labels(p, 'app', 'app') });
    const other = await runContainer(docker, { name: `${p}-other`, networks: [net.name], labels: labels(p, 'other', 'other') });
    const dbIp = db.ipv4[net.name];
    assert.ok(arrived(probeFromPid(other.pid, dbIp, 80)), 'without rules everything passes');
    const policies = policySet(policy('t:db', { 'moat.test.role': 'db' }, { ingress: [allowFrom([role('app')])] }));
    const o = opts(backend);
    const input = join(dirs[dirs.length - 1], 'input.json');
    writeFileSync(input, JSON.stringify({ world: await loadDockerWorld({ project: p }), policies, options: o }));
    const child = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'test/fixtures/enforce/apply-child.ts'), input], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const { pid } = JSON.parse(child.stdout.trim().split('\n').pop()!) as { pid: number };
    assert.throws(() => process.kill(pid, 0), 'the applying process is gone');
    assert.equal(probeFromPid(app.pid, dbIp, 80), 'open');
    assert.equal(probeFromPid(other.pid, dbIp, 80), 'filtered');
    await uninstall(o);
    assert.ok(arrived(probeFromPid(other.pid, dbIp, 80)), 'after uninstall everything passes again');
  });

  test(`address reuse: the new container on an old address gets its own rules; unknown addresses are closed (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net, subnet } = await network(docker, p);
    const reused = hostIp(subnet, 10);
    const first = await runContainer(docker, { name: `${p}-first`, networks: [net.name], ipv4: { [net.name]: reused }, tcpPorts: [80], labels: labels(p, 'first', 'open') });
    const client = await runContainer(docker, { name: `${p}-client`, networks: [net.name], ipv4: { [net.name]: hostIp(subnet, 20) }, labels: labels(p, 'client', 'app') });
    // db: isolated for ingress with no allow at all.
    const policies = policySet(policy('t:db-closed', { 'moat.test.role': 'db' }, { isolates: { ingress: true, egress: false } }));
    const o = opts(backend);
    const plan1 = compilePlan(await loadDockerWorld({ project: p }), policies, o);
    await applyPlan(plan1, o);
    assert.equal(probeFromPid(client.pid, reused, 80), 'open', 'the first owner is open');

    await removeContainer(docker, first.id);
    // A container the rules do not know yet is closed both ways (fail-closed) until they are updated.
    const newcomer = await runContainer(docker, { name: `${p}-new`, networks: [net.name], ipv4: { [net.name]: hostIp(subnet, 11) }, tcpPorts: [80], labels: labels(p, 'new', 'open') });
    assert.equal(probeFromPid(client.pid, hostIp(subnet, 11), 80), 'filtered', 'unknown address is closed');
    const second = await runContainer(docker, { name: `${p}-second`, networks: [net.name], ipv4: { [net.name]: reused }, tcpPorts: [80], labels: labels(p, 'second', 'db') });
    assert.equal(second.ipv4[net.name], reused);
    const plan2 = compilePlan(await loadDockerWorld({ project: p }), policies, o);
    const r = await applyIncremental(plan1, plan2, o);
    if (backend === 'nft') assert.equal(r.mode, 'incremental', r.reason);
    assert.equal(probeFromPid(client.pid, reused, 80), 'filtered', 'the new owner of the address has its own (closed) rules');
    assert.equal(probeFromPid(client.pid, hostIp(subnet, 11), 80), 'open', 'the newcomer is open once known');
    void newcomer;
    await uninstall(o);
  });

  test(`published-port allowlist: an allowed and a refused outside source (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p);
    const hostPort = 20000 + Math.floor(Math.random() * 9000);
    await runContainer(docker, { name: `${p}-web`, networks: [net.name], tcpPorts: [80], publish: [{ containerPort: 80, hostPort }], labels: labels(p, 'web', 'web') });
    const allowed = testHost();
    const refused = testHost();
    assert.equal(probeFromNetns(allowed.ns, allowed.hostAddress, hostPort), 'open');
    assert.equal(probeFromNetns(refused.ns, refused.hostAddress, hostPort), 'open', 'without rules both reach the port');
    const policies = policySet();
    policies.publishedPortAllowlists.push({ id: 't:web-port', hostPort, protocol: 'TCP', sources: [{ kind: 'cidr', cidr: `${allowed.address}/32`, except: [] }] });
    const o = opts(backend);
    await apply(await loadDockerWorld({ project: p }), policies, o);
    assert.equal(probeFromNetns(allowed.ns, allowed.hostAddress, hostPort), 'open', 'the listed source reaches the published port');
    assert.equal(probeFromNetns(refused.ns, refused.hostAddress, hostPort), 'filtered', 'another source does not');
    await uninstall(o);
  });

  test(`egress to an "internet" host: allowed for one group, denied for the database group (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p);
    const app = await runContainer(docker, { name: `${p}-app`, networks: [net.name], labels: labels(p, 'app', 'app') });
    const db = await runContainer(docker, { name: `${p}-db`, networks: [net.name], labels: labels(p, 'db', 'db') });
    const inet = testHost();
    // No listener there: "refused" means the packet arrived.
    assert.ok(arrived(probeFromPid(db.pid, inet.address, 9)), 'without rules the database reaches the internet host');
    const policies = policySet(policy('t:db-no-internet', { 'moat.test.role': 'db' }, { egress: [denyTo([{ kind: 'internet' }])] }));
    const o = opts(backend);
    await apply(await loadDockerWorld({ project: p }), policies, o);
    assert.ok(arrived(probeFromPid(app.pid, inet.address, 9)), 'app reaches the internet host');
    assert.equal(probeFromPid(db.pid, inet.address, 9), 'filtered', 'the database does not');
    assert.ok(arrived(probeFromPid(db.pid, app.ipv4[net.name], 80)), 'the database still reaches a container');
    await uninstall(o);
  });

  test(`IPv6 on a dual-stack network (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p, true);
    const db = await runContainer(docker, { name: `${p}-db`, networks: [net.name], tcpPorts: [80], labels: labels(p, 'db', 'db') });
    const app = await runContainer(docker, { name: `${p}-app`, networks: [net.name], labels: labels(p, 'app', 'app') });
    const other = await runContainer(docker, { name: `${p}-other`, networks: [net.name], labels: labels(p, 'other', 'other') });
    const v6 = db.ipv6[net.name];
    assert.ok(v6 && v6.includes(':'), `the database has an IPv6 address (${JSON.stringify(db.ipv6)})`);
    assert.ok(arrived(probeFromPid(other.pid, v6, 80)), 'without rules IPv6 passes');
    const policies = policySet(policy('t:db', { 'moat.test.role': 'db' }, { ingress: [allowFrom([role('app')])] }));
    const o = opts(backend);
    await apply(await loadDockerWorld({ project: p }), policies, o);
    assert.ok(arrived(probeFromPid(app.pid, v6, 80)), 'app -> db over IPv6');
    assert.equal(probeFromPid(other.pid, v6, 80), 'filtered', 'other -> db over IPv6 is filtered');
    assert.ok(arrived(probeFromPid(app.pid, db.ipv4[net.name], 80)), 'app -> db over IPv4');
    assert.equal(probeFromPid(other.pid, db.ipv4[net.name], 80), 'filtered', 'other -> db over IPv4 is filtered');
    await uninstall(o);
  });

  test(`uninstall leaves nft list ruleset, iptables-save and ip6tables-save exactly as before (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p, true);
    await runContainer(docker, { name: `${p}-db`, networks: [net.name], tcpPorts: [80], labels: labels(p, 'db', 'db') });
    const world = await loadDockerWorld({ project: p });
    const policies = policySet(policy('t:db', { 'moat.test.role': 'db' }, { ingress: [allowFrom([role('app')])], egress: [denyTo([{ kind: 'internet' }])] }));
    // Other engineers' tests may change Docker's rules meanwhile: a few attempts, one must be exact.
    let last = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const o = opts(backend);
      const before = kernelSnapshot();
      await apply(world, policies, o);
      const during = kernelSnapshot();
      assert.notDeepEqual(during, before, 'apply changed the kernel');
      await uninstall(o);
      const afterwards = kernelSnapshot();
      if (JSON.stringify(afterwards) === JSON.stringify(before)) return;
      last = (['nft', 'v4', 'v6', 'ipsets'] as const).filter((k) => afterwards[k] !== before[k]).join(', ');
    }
    assert.fail(`the kernel differs after uninstall in: ${last}`);
  });

  test(`bad input: a policy that fails to compile and a failing kernel call change nothing (${backend})`, { timeout: 120_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const p = project();
    const { net } = await network(docker, p);
    const db = await runContainer(docker, { name: `${p}-db`, networks: [net.name], tcpPorts: [80], labels: labels(p, 'db', 'db') });
    const other = await runContainer(docker, { name: `${p}-other`, networks: [net.name], labels: labels(p, 'other', 'other') });
    const world = await loadDockerWorld({ project: p });
    const good = policySet(policy('t:db', { 'moat.test.role': 'db' }, { ingress: [allowFrom([role('app')])] }));
    const o = opts(backend);
    await apply(world, good, o);
    const mine = () => {
      const s = kernelSnapshot();
      const ownLines = (x: string) => x.split('\n').filter((l) => l.includes(o.chainPrefix!) || l.includes(`${o.setPrefix}-`)).join('\n');
      const table = spawnSync('nft', ['list', 'table', 'inet', o.table!], { encoding: 'utf8' }).stdout.replace(/counter packets \d+ bytes \d+/g, 'counter');
      return { table, v4: ownLines(s.v4), v6: ownLines(s.v6), ipsets: ownLines(s.ipsets) };
    };
    const before = mine();
    // A peer CIDR that is not one.
    const bad = policySet(policy('t:db', { 'moat.test.role': 'db' }, { ingress: [allowFrom([{ kind: 'cidr', cidr: '10.0.0.0/33', except: [] }])] }));
    await assert.rejects(apply(world, bad, o), { name: 'UserError' });
    assert.deepEqual(mine(), before);
    // A ruleset the kernel refuses (a jump to a chain that does not exist).
    const broken: RulesetPlan = structuredClone(compilePlan(world, good, o));
    broken.chains[0].rules.push({ matches: [], verdict: { kind: 'jump', chain: 'nowhere' }, comment: 'broken' });
    if (backend === 'nft') await assert.rejects(new NftBackend({ table: o.table }).applyScript(new NftBackend({ table: o.table }).render(broken)));
    else await assert.rejects(applyPlan(broken, o));
    assert.deepEqual(mine(), before);
    assert.equal(probeFromPid(other.pid, db.ipv4[net.name], 80), 'filtered', 'the last good ruleset still holds');
    await uninstall(o);
  });
}

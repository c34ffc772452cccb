// The seed's three-tier security groups on a real dockerd: apply moat's rules (each backend), probe
// every pair from inside the containers' namespaces, compare with the analyzer's matrix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyze } from '../../../src/analysis/reachability.js';
import { loadDockerWorld } from '../../../src/sources/docker/index.js';
import { apply, uninstall, type BackendKind } from '../../../src/enforce/index.js';
import { verify, formatVerify } from '../../../src/enforce/verify.js';
import { NftBackend } from '../../../src/enforce/backends/nft/backend.js';
import { createNetwork, requireDocker, runContainer, uniqueName } from '../../helpers/docker.js';
import { threeTierPolicies } from '../../fixtures/enforce/three-tier.js';

for (const backend of ['nft', 'iptables'] as BackendKind[]) {
  test(`three-tier: every probed pair agrees with the matrix (${backend})`, { timeout: 240_000 }, async (t) => {
    const docker = await requireDocker(t);
    if (!docker) return;
    const project = uniqueName('moatenf', 20).replace(/-/g, '');
    const labels = (service: string, group: string) => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': service, 'security.group': group });
    const netLabels = { 'com.docker.compose.project': project };
    const front = await createNetwork(docker, { name: `${project}_frontend`, labels: netLabels });
    const back = await createNetwork(docker, { name: `${project}_backend`, internal: true, labels: netLabels });
    await runContainer(docker, { name: `${project}-nginx`, networks: [front.name], tcpPorts: [80], labels: labels('nginx', 'web') });
    await runContainer(docker, { name: `${project}-api`, networks: [front.name, back.name], tcpPorts: [8080], labels: labels('api-server', 'backend') });
    await runContainer(docker, { name: `${project}-mysql`, networks: [back.name], tcpPorts: [3306], labels: labels('mysql', 'database') });
    await runContainer(docker, { name: `${project}-redis`, networks: [back.name], tcpPorts: [6379], labels: labels('redis', 'cache') });
    const world = await loadDockerWorld({ project });
    const policies = threeTierPolicies(project);
    policies.publishedPortAllowlists = [];
    const stateDir = mkdtempSync(join(tmpdir(), 'moat-enf-'));
    const suffix = project.slice(-6);
    const opts = { backend, stateDir, table: `moat_${suffix}`, chainPrefix: `M${suffix.toUpperCase().replace(/[^A-Z0-9]/g, 'X')}`.slice(0, 8), setPrefix: `m${suffix}`.replace(/[^a-z0-9]/g, 'x').slice(0, 8) };
    try {
      const analysis = analyze(world, policies);
      // Without moat's rules the kernel lets through what the policy denies (so this test can fail).
      const without = await verify(world, analysis, { timeoutMs: 500, fromHost: false });
      assert.ok(without.disagreements.some((d) => !d.expected && d.from.endsWith('/redis') && d.to.endsWith('/mysql')), formatVerify(without));
      await apply(world, policies, opts);
      const report = await verify(world, analysis, { timeoutMs: 700, fromHost: true, extraPorts: [9] });
      t.diagnostic(formatVerify(report));
      assert.ok(report.probes.length >= 12, 'probes ran');
      assert.ok(report.probes.some((p) => p.expected) && report.probes.some((p) => !p.expected), 'both allowed and denied pairs were probed');
      assert.deepEqual(report.disagreements, []);
    } finally {
      await uninstall(opts);
      rmSync(stateDir, { recursive: true, force: true });
    }
    if (backend === 'nft') assert.equal(await new NftBackend({ table: opts.table }).exists(), false);
  });
}

import { demoComposeFile } from '../demo/index.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { analyze } from '../analysis/reachability.js';
import { renderMatrix } from '../analysis/render.js';
import { UserError } from '../model/diagnostics.js';
import { loadPolicies } from '../policy/load.js';
import { composeToWorld, loadComposeProject } from '../sources/compose/index.js';
import { dockerClient } from '../sources/docker/index.js';
import { apply, uninstall } from '../enforce/index.js';
import { formatVerify, verify } from '../enforce/verify.js';
import { action, EXIT, out, printDiagnostics } from './common.js';

export const DEMO_TABLE = 'moat_demo';
const DEMO_STATE = '/var/lib/moat/demo';

/** The demo's Compose file (from src/ or from a build in dist/), or its expected place when missing. */
function demoCompose(): string {
  try {
    return demoComposeFile();
  } catch {
    return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'three-tier', 'compose.yaml');
  }
}
export const DEMO_COMPOSE = demoCompose();

async function engineAnswers(dockerHost?: string): Promise<boolean> {
  try {
    await Promise.race([dockerClient(dockerHost).ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000))]);
    return true;
  } catch {
    return false;
  }
}

export function demoCommand(): Command {
  return new Command('demo')
    .description("bring up the seed's three-tier example (frontend, backend, internal database network; the seed's security labels) on the local engine and print its matrix; without an engine, analyse its Compose file")
    .option('--docker-host <url>', 'Docker Engine to use')
    .option('--offline', 'do not touch the engine: analyse the Compose file only')
    .option('--down', 'remove the demo containers, networks and kernel rules, then exit')
    .option('--enforce', `also apply the policy to the kernel (nft table ${DEMO_TABLE}) and verify every pair with real packets`)
    .addHelpText('after', `\nThe example: ${DEMO_COMPOSE}`)
    .action(
      action(async (opts: { dockerHost?: string; offline?: boolean; down?: boolean; enforce?: boolean }) => {
        if (!existsSync(DEMO_COMPOSE)) throw new UserError({ severity: 'error', code: 'demo.missing', message: `the demo example is missing: ${DEMO_COMPOSE}`, fix: 'reinstall moat' });
        const project = await loadComposeProject({ files: [DEMO_COMPOSE] });
        const composeWorld = composeToWorld(project);
        const online = !opts.offline && (await engineAnswers(opts.dockerHost));
        const demo = await import('../demo/index.js');
        if (opts.down) {
          if (!online) throw new UserError({ severity: 'error', code: 'demo.no-engine', message: 'no Docker engine answers', fix: 'start dockerd (scripts/ensure-dockerd.sh) or pass --docker-host' });
          await demo.tearDownProject(project.name, { dockerHost: opts.dockerHost });
          await uninstall({ backend: 'nft', table: DEMO_TABLE, stateDir: DEMO_STATE }).catch(() => undefined);
          process.stderr.write(`removed the demo project ${project.name}\n`);
          return;
        }
        let world = composeWorld;
        if (online) {
          process.stderr.write(`building the local image and bringing up ${project.name} (${Object.keys(project.services).length} services) on the engine...\n`);
          const up = await demo.bringUpWorld(composeWorld, { dockerHost: opts.dockerHost });
          world = up.world;
          process.stderr.write(`up: ${world.endpoints.length} containers on ${world.networks.length} networks (remove with: moat demo --down)\n\n`);
        } else {
          process.stderr.write(`no Docker engine answers${opts.offline ? ' (--offline)' : ''}: analysing ${DEMO_COMPOSE} statically instead\n\n`);
        }
        const positions = online ? undefined : (e: { composeService?: string }, key: string) => (e.composeService ? project.positionOf(['services', e.composeService, 'labels', key]) : undefined);
        const policies = loadPolicies([], world, positions);
        if (policies.diagnostics.some((d) => d.severity === 'error')) throw new UserError(policies.diagnostics);
        const analysis = analyze(world, policies.policySet);
        printDiagnostics(analysis.warnings.filter((w) => w.code !== 'world'), true);
        out(`Reachability matrix of the seed's three-tier example (${online ? 'live engine' : 'Compose file'}):\n`);
        out(renderMatrix(analysis, 'text'));
        if (!opts.enforce) return;
        if (!online) throw new UserError({ severity: 'error', code: 'demo.no-engine', message: '--enforce needs a running engine', fix: 'start dockerd (scripts/ensure-dockerd.sh)' });
        const applied = await apply(world, policies.policySet, { backend: 'nft', table: DEMO_TABLE, stateDir: DEMO_STATE });
        out(`\nApplied to the kernel: nft table inet ${DEMO_TABLE}, ${applied.plan.chains.length} chains.\n`);
        out('Verifying every pair with real packets from inside each container...\n');
        const report = await verify(world, analysis, {});
        out(formatVerify(report));
        return report.ok ? EXIT.ok : EXIT.findings;
      }),
    );
}

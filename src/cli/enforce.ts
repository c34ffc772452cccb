// Enforcement doors: doctor, plan, apply, rollback, uninstall, verify.
import { Command, Option } from 'commander';
import { analyze } from '../analysis/reachability.js';
import { UserError } from '../model/diagnostics.js';
import { doctor, formatDoctor } from '../enforce/doctor.js';
import { apply, plan, rollback, uninstall, type EnforceOptions } from '../enforce/index.js';
import { formatVerify, verify } from '../enforce/verify.js';
import { action, EXIT, formatOption, loadInputs, out, printDiagnostics, withInputOptions, type InputOptions } from './common.js';

interface BackendOptions {
  backend: 'nft' | 'iptables';
  table?: string;
  chainPrefix?: string;
  stateDir?: string;
  nflogGroup?: string;
  unmanaged?: string[];
  ipv6?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function withBackendOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backend <kind>', 'kernel backend').choices(['nft', 'iptables']).default('nft'))
    .option('--table <name>', 'nft table name (nft backend)', 'moat')
    .option('--chain-prefix <prefix>', 'iptables chain prefix (iptables backend)', 'MOAT')
    .option('--state-dir <dir>', 'where applied rulesets are kept for rollback', '/var/lib/moat')
    .option('--nflog-group <n>', 'NFLOG group for dropped packets', '100')
    .option('--unmanaged <network>', 'a network moat must not manage (repeatable; or label the network moat.managed=false)', collect)
    .option('--no-ipv6', 'do not program IPv6 rules');
}

function enforceOptions(o: BackendOptions): EnforceOptions {
  const group = Number(o.nflogGroup ?? 100);
  if (!Number.isInteger(group) || group < 0 || group > 65535) {
    throw new UserError({ severity: 'error', code: 'cli.nflog-group', message: `--nflog-group ${o.nflogGroup} is not a group number`, fix: 'use 0 to 65535' });
  }
  if (o.table && !/^[A-Za-z][A-Za-z0-9_-]{0,30}$/.test(o.table)) {
    throw new UserError({ severity: 'error', code: 'cli.table', message: `--table ${o.table} is not a valid nft table name`, fix: 'use letters, digits, _ and - (up to 31)' });
  }
  if (o.chainPrefix && !/^[A-Z][A-Z0-9_-]{0,15}$/.test(o.chainPrefix)) {
    throw new UserError({ severity: 'error', code: 'cli.chain-prefix', message: `--chain-prefix ${o.chainPrefix} is not valid`, fix: 'use upper-case letters, digits, _ and - (up to 16)' });
  }
  return {
    backend: o.backend,
    table: o.table,
    chainPrefix: o.chainPrefix,
    stateDir: o.stateDir,
    nflogGroup: group,
    unmanagedNetworks: o.unmanaged,
    ipv6: o.ipv6,
  };
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('can moat enforce on this host? nft/iptables and their flavour, br_netfilter, ip_forward, Docker version and firewall backend, the DOCKER-USER jump, userland-proxy, ufw/firewalld')
    .addOption(new Option('--backend <kind>', 'backend to check for').choices(['nft', 'iptables']).default('nft'))
    .option('--daemon-json <file>', 'Docker daemon.json to read', '/etc/docker/daemon.json')
    .addOption(formatOption(['text', 'json']))
    .addHelpText('after', '\nExit code: 0 when enforcement can work, 1 when something blocks it.')
    .action(
      action(async (opts: { backend: 'nft' | 'iptables'; daemonJson: string; format: string }) => {
        const report = await doctor({ backend: opts.backend, daemonJson: opts.daemonJson });
        out(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
        return report.ok ? EXIT.ok : EXIT.findings;
      }),
    );
}

export function planCommand(): Command {
  return withBackendOptions(withInputOptions(new Command('plan')))
    .description('what `apply` would change in the kernel, against what is there now')
    .addOption(formatOption(['text', 'json', 'script']))
    .action(
      action(async (opts: InputOptions & BackendOptions & { format: string }) => {
        const inputs = await loadInputs(opts);
        const r = await plan(inputs.world, inputs.policySet, enforceOptions(opts));
        printDiagnostics(inputs.diagnostics, true);
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        if (opts.format === 'json') out(`${JSON.stringify({ diff: r.diff, warnings: r.warnings }, null, 2)}\n`);
        else if (opts.format === 'script') out(r.script);
        else out(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
      }),
    );
}

export function applyCommand(): Command {
  return withBackendOptions(withInputOptions(new Command('apply')))
    .description('compile the policy and apply it to the kernel in one atomic transaction: the whole table, checked first, or only the difference from the last apply when the kernel provably still holds it (nft); keeps the last rulesets for rollback')
    .option('--dry-run', 'compile and check only')
    .option('--full', 'replace the whole table even when only a difference would be needed (nft)')
    .action(
      action(async (opts: InputOptions & BackendOptions & { dryRun?: boolean; full?: boolean }) => {
        const inputs = await loadInputs(opts);
        printDiagnostics(inputs.diagnostics, true);
        const o = enforceOptions(opts);
        if (opts.dryRun) {
          const r = await plan(inputs.world, inputs.policySet, o);
          out(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
          return;
        }
        const r = await apply(inputs.world, inputs.policySet, { ...o, incremental: !opts.full });
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        const c = r.changes;
        if (r.mode === 'unchanged') out(`nothing to change: the kernel holds this ruleset already (${r.backend})\n`);
        else if (r.mode === 'incremental' && c) {
          const elements = c.elementsAdded + c.mapElementsAdded + c.elementsRemoved + c.mapElementsRemoved;
          out(`applied with ${r.backend}, only the difference from the last apply (chains +${c.chainsAdded.length} -${c.chainsRemoved.length}, sets +${c.setsAdded.length} -${c.setsRemoved.length}${c.setsResized?.length ? ` (${c.setsResized.length} resized)` : ''}, ${elements} element changes): ${r.plan.chains.length} chains, ${inputs.world.endpoints.length} containers\n`);
        } else out(`applied with ${r.backend}: ${r.plan.chains.length} chains, ${inputs.world.endpoints.length} containers\n`);
      }),
    );
}

export function rollbackCommand(): Command {
  return withBackendOptions(new Command('rollback'))
    .description('re-apply the ruleset applied before the last one')
    .action(
      action(async (opts: BackendOptions) => {
        const ok = await rollback(enforceOptions(opts));
        if (!ok) throw new UserError({ severity: 'error', code: 'rollback.none', message: 'there is no earlier ruleset to roll back to', fix: 'apply at least twice first, or use `moat uninstall`' });
        out('rolled back to the previous ruleset\n');
      }),
    );
}

export function uninstallCommand(): Command {
  return withBackendOptions(new Command('uninstall'))
    .description("remove everything moat added to the kernel; the host's ruleset is as before")
    .action(
      action(async (opts: BackendOptions) => {
        await uninstall(enforceOptions(opts));
        out(`removed moat's ${opts.backend} rules\n`);
      }),
    );
}

export function verifyCommand(): Command {
  return withInputOptions(new Command('verify'))
    .description("probe every pair the analyzer lists with real packets from inside the source container's network namespace, and print where the kernel disagrees with `moat matrix`")
    .option('--timeout-ms <ms>', 'probe timeout', '1500')
    .option('--max-probes <n>', 'at most this many probes', '2000')
    .addOption(formatOption(['text', 'json']))
    .addHelpText('after', '\nProbes go only to the host\'s own containers, never to an outside address. Needs root (nsenter).\nExit code: 0 when every probe agrees, 1 on any disagreement.')
    .action(
      action(async (opts: InputOptions & { timeoutMs: string; maxProbes: string; format: string }) => {
        if (opts.file?.length || opts.snapshot) {
          throw new UserError({ severity: 'error', code: 'verify.live-only', message: 'verify probes live containers', fix: 'run it against the engine (no -f / --snapshot)' });
        }
        const inputs = await loadInputs(opts);
        const analysis = analyze(inputs.world, inputs.policySet);
        const report = await verify(inputs.world, analysis, { timeoutMs: Number(opts.timeoutMs), maxProbes: Number(opts.maxProbes) });
        out(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatVerify(report));
        return report.ok ? EXIT.ok : EXIT.findings;
      }),
    );
}

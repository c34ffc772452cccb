import { Command } from 'commander';
import { diffAnalyses, renderDiff } from '../analysis/diff.js';
import { analyze } from '../analysis/reachability.js';
import { UserError } from '../model/diagnostics.js';
import { loadPolicies } from '../policy/load.js';
import { readSnapshot } from '../sources/snapshot/index.js';
import { action, EXIT, formatOption, loadInputs, out, printDiagnostics, withInputOptions, type InputOptions } from './common.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function diffCommand(): Command {
  return withInputOptions(new Command('diff'))
    .description('flows added, removed and changed between a base (policies and/or snapshot) and the current inputs')
    .option('--base-policy <file|dir>', 'the policies before the change (repeatable); default: the same as --policy', collect)
    .option('--base-snapshot <file>', 'the host before the change; default: the same world as the current inputs')
    .option('--flat', 'compare policy alone, ignoring topology')
    .addOption(formatOption(['text', 'json']))
    .addHelpText('after', '\nExit code: 0 when nothing changed, 1 when flows changed, 2 on bad input.\nExample: moat diff -f compose.yml --base-policy main/policies --policy policies')
    .action(
      action(async (opts: InputOptions & { basePolicy?: string[]; baseSnapshot?: string; flat?: boolean; format: string }) => {
        if (!opts.basePolicy && !opts.baseSnapshot) {
          throw new UserError({ severity: 'error', code: 'cli.diff-base', message: 'nothing to compare against', fix: 'pass --base-policy and/or --base-snapshot' });
        }
        const after = await loadInputs(opts);
        const baseWorld = opts.baseSnapshot ? readSnapshot(opts.baseSnapshot) : after.world;
        const base = loadPolicies(opts.basePolicy ?? opts.policy ?? [], baseWorld, opts.baseSnapshot ? undefined : after.loaded.labelPositions, opts.labels !== false);
        if (base.diagnostics.some((d) => d.severity === 'error')) throw new UserError(base.diagnostics.filter((d) => d.severity === 'error'));
        const changes = diffAnalyses(analyze(baseWorld, base.policySet, { flat: opts.flat }), analyze(after.world, after.policySet, { flat: opts.flat }));
        if (opts.format === 'json') out(`${JSON.stringify({ changed: changes.length > 0, changes }, null, 2)}\n`);
        else {
          printDiagnostics(after.diagnostics, true);
          out(renderDiff(changes));
        }
        return changes.length ? EXIT.findings : EXIT.ok;
      }),
    );
}

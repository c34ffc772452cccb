import { Command } from 'commander';
import { analyze } from '../analysis/reachability.js';
import { action, EXIT, formatOption, loadInputs, out, printDiagnostics, withInputOptions, type InputOptions } from './common.js';

export function validateCommand(): Command {
  return withInputOptions(new Command('validate'))
    .description('check policy files (moat/v1, NetworkPolicy) and security labels; report every error with file:line:col and a fix')
    .addOption(formatOption(['text', 'json']))
    .option('--strict', 'treat warnings (names that match nothing, unknown keys) as errors')
    .addHelpText('after', '\nExit code: 0 when valid, 2 when there are errors (or warnings with --strict).')
    .action(
      action(async (opts: InputOptions & { format: string; strict?: boolean }) => {
        const inputs = await loadInputs(opts, true);
        const errorsOnly = inputs.diagnostics.some((d) => d.severity === 'error');
        // Warnings about peers that match nothing need the analysis' view of the world.
        const warnings = errorsOnly ? [] : analyze(inputs.world, inputs.policySet).warnings.filter((w) => w.code !== 'world');
        const all = [...inputs.diagnostics, ...warnings];
        const errors = all.filter((d) => d.severity === 'error').length;
        const warns = all.length - errors;
        const failed = errors > 0 || (opts.strict && warns > 0);
        if (opts.format === 'json') out(`${JSON.stringify({ valid: !failed, errors, warnings: warns, diagnostics: all }, null, 2)}\n`);
        else {
          printDiagnostics(all);
          const n = inputs.policySet.policies.length;
          out(`${failed ? 'invalid' : 'valid'}: ${n} polic${n === 1 ? 'y' : 'ies'}, ${errors} error${errors === 1 ? '' : 's'}, ${warns} warning${warns === 1 ? '' : 's'}\n`);
        }
        return failed ? EXIT.usage : EXIT.ok;
      }),
    );
}

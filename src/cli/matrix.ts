import { Command } from 'commander';
import { MATRIX_FORMATS, renderMatrix, type MatrixFormat } from '../analysis/render.js';
import { action, formatOption, loadAnalysis, out, printDiagnostics, withInputOptions, type InputOptions } from './common.js';

export function matrixCommand(): Command {
  return withInputOptions(new Command('matrix'))
    .description('who can reach whom, on which protocols and ports: every ordered pair of containers, the host, the internet and named external hosts')
    .option('--flat', 'ignore topology: answer for policy alone, as if everything could route to everything')
    .addOption(formatOption(MATRIX_FORMATS))
    .option('-q, --quiet', 'do not print warnings')
    .action(
      action(async (opts: InputOptions & { flat?: boolean; format: MatrixFormat; quiet?: boolean }) => {
        const { analysis, inputs } = await loadAnalysis(opts);
        if (opts.format !== 'json') printDiagnostics([...inputs.diagnostics, ...analysis.warnings], opts.quiet);
        out(renderMatrix(analysis, opts.format));
      }),
    );
}

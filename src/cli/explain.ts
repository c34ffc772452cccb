import { Command } from 'commander';
import { explain, renderExplanation } from '../analysis/explain.js';
import { action, formatOption, loadAnalysis, out, withInputOptions, type InputOptions } from './common.js';

export function explainCommand(): Command {
  return withInputOptions(new Command('explain'))
    .description('why a connection is allowed or denied: the verdict, the source\'s egress, the destination\'s ingress, near misses and topology')
    .argument('<from>', 'source: namespace/name (e.g. shop/web), a container name, host, internet, or an external host name')
    .argument('<to>', 'destination, same forms as <from>')
    .argument('<port>', 'PORT or PORT/PROTO, e.g. 8080, 443/tcp, 53/udp')
    .option('--flat', 'ignore topology: policy alone')
    .addOption(formatOption(['text', 'json']))
    .addHelpText('after', '\nExit code: 0 when allowed, 1 when denied, 2 on bad input.\nExample: moat explain -f compose.yml shop/web shop/api 8080/tcp')
    .action(
      action(async (from: string, to: string, port: string, opts: InputOptions & { flat?: boolean; format: string }) => {
        const { analysis } = await loadAnalysis(opts);
        const e = explain(analysis, from, to, port);
        out(opts.format === 'json' ? `${JSON.stringify(e, null, 2)}\n` : renderExplanation(e));
        return e.verdict === 'allowed' ? 0 : 1;
      }),
    );
}

import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { loadWorld } from '../sources/index.js';
import { formatSnapshot } from '../sources/snapshot/index.js';
import { action, out, withInputOptions, worldOptionsOf, type InputOptions } from './common.js';

export function snapshotCommand(): Command {
  return withInputOptions(new Command('snapshot'))
    .description('write the host (live engine, or Compose files with -f) as a moat snapshot (JSON, docs/snapshot.md) for offline analysis in CI or review')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .addHelpText('after', '\nExample: moat snapshot -o host.json && moat matrix --snapshot host.json --policy policies/')
    .action(
      action(async (opts: InputOptions & { output?: string }) => {
        const { world } = await loadWorld(worldOptionsOf(opts));
        const text = formatSnapshot(world);
        if (opts.output) {
          writeFileSync(opts.output, text);
          process.stderr.write(`wrote ${opts.output}: ${world.endpoints.length} endpoints, ${world.networks.length} networks\n`);
        } else out(text);
      }),
    );
}

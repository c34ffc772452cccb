// Entry point for tests: the `run` and `status` commands without the rest of the CLI
// (src/cli/main.ts registers them for users).
import { Command } from 'commander';
import { runCommand } from '../../../src/cli/run.js';
import { statusCommand } from '../../../src/cli/status.js';

const program = new Command('moat');
program.addCommand(runCommand());
program.addCommand(statusCommand());
await program.parseAsync(process.argv);

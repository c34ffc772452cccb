// Runs `moat audit` alone (the lead registers auditCommand in src/cli/main.ts); used by the CLI tests.
import { Command } from 'commander';
import { auditCommand } from '../../../src/cli/audit.js';

const program = new Command('moat').addCommand(auditCommand());
program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
await program.parseAsync(process.argv);

// The moat command line. Each command lives in its own file; this one only assembles them.
import { Command } from 'commander';
import { auditCommand } from './audit.js';
import { demoCommand } from './demo.js';
import { diffCommand } from './diff.js';
import { applyCommand, doctorCommand, planCommand, rollbackCommand, uninstallCommand, verifyCommand } from './enforce.js';
import { explainCommand } from './explain.js';
import { matrixCommand } from './matrix.js';
import { runCommand } from './run.js';
import { snapshotCommand } from './snapshot.js';
import { statusCommand } from './status.js';
import { validateCommand } from './validate.js';

const program = new Command('moat')
  .description('Network security for Docker hosts: security groups, kernel enforcement, reachability analysis and audit')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText('after', '\nExit codes: 0 ok, 1 findings (diff changed, explain denied, verify disagrees, doctor blocked, audit at --fail-on), 2 bad input, 70 internal error.\nDocs: README.md and docs/');

program.addCommand(demoCommand());
program.addCommand(matrixCommand());
program.addCommand(explainCommand());
program.addCommand(diffCommand());
program.addCommand(validateCommand());
program.addCommand(snapshotCommand());
program.addCommand(doctorCommand());
program.addCommand(planCommand());
program.addCommand(applyCommand());
program.addCommand(rollbackCommand());
program.addCommand(uninstallCommand());
program.addCommand(verifyCommand());
program.addCommand(runCommand());
program.addCommand(statusCommand());
program.addCommand(auditCommand());

// commander's own usage errors (unknown option, bad choice, missing argument) exit 2 like other bad input.
const usageExit = (err: { exitCode: number }) => process.exit(err.exitCode === 0 ? 0 : 2);
program.exitOverride(usageExit);
for (const cmd of program.commands) cmd.exitOverride(usageExit);

await program.parseAsync(process.argv);

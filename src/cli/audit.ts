// `moat audit`: checks Compose files, daemon.json, Dockerfiles and the live engine against the
// catalogue in docs/audit.md; reports as text, JSON, SARIF or Markdown; `--fix` writes an override file.
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { buildFix } from '../audit/fix.js';
import { failsAt, runAudit } from '../audit/index.js';
import { AUDIT_FORMATS, renderAudit, type AuditFormat } from '../audit/report.js';
import { SEVERITIES, type AuditSeverity } from '../audit/types.js';
import { userError } from '../model/diagnostics.js';
import { action, EXIT, formatOption, out } from './common.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface AuditCliOptions {
  file?: string[];
  profile?: string[];
  envFile?: string[];
  projectName?: string;
  projectDirectory?: string;
  policy?: string[];
  daemonJson?: string;
  dockerfile?: string[];
  live?: boolean;
  dockerHost?: string;
  format: AuditFormat;
  output?: string;
  failOn?: AuditSeverity | 'never';
  config?: string;
  fix?: string;
  ignoreInline?: boolean;
  reachability?: boolean;
}

function writeFile(path: string, text: string, what: string): void {
  try {
    writeFileSync(path, text);
  } catch (e) {
    throw userError('audit.output', `cannot write ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { fix: 'Check that the directory exists and is writable.' });
  }
}

export function auditCommand(): Command {
  return new Command('audit')
    .description('audit Compose files, daemon.json, Dockerfiles and the live engine for network exposure and container hardening (checks: docs/audit.md)')
    .option('-f, --file <compose.yml>', 'Compose file (repeat for several, merged like `docker compose -f a -f b`)', collect)
    .option('--profile <name>', 'enable a Compose profile (repeatable)', collect)
    .option('--env-file <file>', 'Compose env file (repeatable; default: .env in the project directory)', collect)
    .option('-p, --project-name <name>', 'Compose project name')
    .option('--project-directory <dir>', 'Compose project directory')
    .option('--policy <file|dir>', 'policy files taken into account by the reachability checks (repeatable)', collect)
    .option('--daemon-json <file>', 'audit a daemon.json')
    .option('--dockerfile <file>', 'audit a Dockerfile (repeatable)', collect)
    .option('--live', 'audit the running engine (containers, networks, daemon settings)')
    .option('--docker-host <url>', 'engine for --live (unix:///var/run/docker.sock, tcp://host:2375); default DOCKER_HOST or the local socket')
    .addOption(formatOption(AUDIT_FORMATS))
    .option('-o, --output <file>', 'write the report to a file instead of stdout')
    .addOption(new Option('--fail-on <severity>', 'exit 1 when a finding is at or above this severity').choices([...SEVERITIES, 'never']).default('never'))
    .option('--config <file>', 'suppression file: `ignore: [{id, service, reason}]`')
    .option('--fix <file>', 'write a Compose override with the safe fixes (use with docker compose -f ... -f FILE)')
    .option('--ignore-inline', 'do not honour inline `# moat-ignore` comments')
    .option('--no-reachability', 'skip the checks that need the reachability analysis')
    .addHelpText('after', '\nExit codes: 0 ok (or findings below --fail-on), 1 findings at or above --fail-on, 2 bad input, 70 internal error.')
    .action(
      action(async (opts: AuditCliOptions) => {
        if (opts.fix && !opts.file?.length) throw userError('audit.fix-needs-compose', '--fix needs Compose files', { fix: 'Pass the Compose files with -f.' });
        const { result, project } = await runAudit({
          composeFiles: opts.file,
          profiles: opts.profile,
          envFiles: opts.envFile,
          projectName: opts.projectName,
          projectDirectory: opts.projectDirectory,
          policies: opts.policy,
          daemonJson: opts.daemonJson,
          dockerfiles: opts.dockerfile,
          live: opts.live,
          dockerHost: opts.dockerHost,
          config: opts.config,
          inline: !opts.ignoreInline,
          noReachability: opts.reachability === false,
        });
        const color = !opts.output && opts.format === 'text' && !!process.stdout.isTTY && !process.env.NO_COLOR;
        const report = renderAudit(result, opts.format, { color });
        if (opts.output) writeFile(opts.output, report, 'report');
        else out(report);
        if (opts.fix && project) {
          const plan = buildFix(project, result.findings);
          writeFile(opts.fix, plan.text, 'override file');
          process.stderr.write(`moat audit: wrote ${opts.fix} (${plan.fixed.length} finding${plan.fixed.length === 1 ? '' : 's'} addressed)\n`);
          for (const n of plan.notes) process.stderr.write(`  review: ${n}\n`);
        }
        return opts.failOn && opts.failOn !== 'never' && failsAt(result, opts.failOn) ? EXIT.findings : EXIT.ok;
      }),
    );
}

// Shared pieces of the CLI doors: input options, loading, printing diagnostics, exit codes.
import { Command, Option } from 'commander';
import pc from 'picocolors';
import { analyze, type Analysis } from '../analysis/reachability.js';
import { formatPos, UserError, type Diagnostic } from '../model/diagnostics.js';
import type { PolicySet } from '../model/ir.js';
import type { World } from '../model/world.js';
import { loadPolicies } from '../policy/load.js';
import { loadWorld, type LoadedWorld, type WorldOptions } from '../sources/index.js';

/** Exit codes (docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Something was found: diff has changes, verify disagrees, doctor finds a blocker, audit over threshold. */
  findings: 1,
  /** The user's input is wrong (bad file, bad label, bad argument, unreachable engine). */
  usage: 2,
  /** A bug in moat. */
  internal: 70,
} as const;

export interface InputOptions {
  file?: string[];
  snapshot?: string;
  dockerHost?: string;
  projectName?: string;
  projectDirectory?: string;
  profile?: string[];
  envFile?: string[];
  policy?: string[];
  labels?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Adds the world and policy input options every analysis command takes. */
export function withInputOptions(cmd: Command): Command {
  return cmd
    .option('-f, --file <compose.yml>', 'Compose file (repeat for several, merged like `docker compose -f a -f b`)', collect)
    .option('--snapshot <file>', 'read the host from a moat snapshot (JSON) instead of Docker')
    .option('--docker-host <url>', 'Docker Engine to read (unix:///var/run/docker.sock, tcp://host:2375); default DOCKER_HOST or the local socket')
    .option('-p, --project-name <name>', 'Compose project name (with -f)')
    .option('--project-directory <dir>', 'Compose project directory (with -f)')
    .option('--profile <name>', 'enable a Compose profile (repeatable; with -f)', collect)
    .option('--env-file <file>', 'Compose env file (repeatable; with -f)', collect)
    .option('--policy <file|dir>', 'policy file or directory: moat/v1 and NetworkPolicy YAML (repeatable)', collect)
    .option('--no-labels', 'ignore security.* labels found on containers');
}

export function formatOption(formats: readonly string[], def = 'text'): Option {
  return new Option('--format <format>', 'output format').choices([...formats]).default(def);
}

const colors = pc.createColors(!!process.stderr.isTTY && !process.env.NO_COLOR);

export function printDiagnostics(diagnostics: Diagnostic[], quiet = false): void {
  for (const d of diagnostics) {
    if (quiet && d.severity === 'warning') continue;
    // Warnings found while building the world arrive already formatted by their source.
    if (d.code === 'world' && / warning: /.test(d.message)) {
      process.stderr.write(`${d.message}\n`);
      continue;
    }
    const where = formatPos(d.pos);
    const sev = d.severity === 'error' ? colors.red('error') : colors.yellow('warning');
    process.stderr.write(`${where ? `${colors.bold(where)}: ` : ''}${sev}: ${d.message}${d.context ? ` (${d.context})` : ''}\n`);
    if (d.fix) process.stderr.write(`  ${colors.dim('fix:')} ${d.fix}\n`);
  }
}

export interface Loaded {
  loaded: LoadedWorld;
  world: World;
  policySet: PolicySet;
  diagnostics: Diagnostic[];
}

/** The world-source part of the command-line options. */
export function worldOptionsOf(opts: InputOptions): WorldOptions {
  return {
    snapshot: opts.snapshot,
    composeFiles: opts.file,
    projectName: opts.projectName,
    projectDirectory: opts.projectDirectory,
    profiles: opts.profile,
    envFiles: opts.envFile,
    dockerHost: opts.dockerHost,
  };
}

/** Loads the world and the policies; throws a UserError if any policy has errors. */
export async function loadInputs(opts: InputOptions, allowErrors = false): Promise<Loaded> {
  const loaded = await loadWorld(worldOptionsOf(opts));
  const p = loadPolicies(opts.policy ?? [], loaded.world, loaded.labelPositions, opts.labels !== false);
  if (!allowErrors && p.diagnostics.some((d) => d.severity === 'error')) throw new UserError(p.diagnostics.filter((d) => d.severity === 'error'));
  return { loaded, world: loaded.world, policySet: p.policySet, diagnostics: p.diagnostics };
}

export async function loadAnalysis(opts: InputOptions & { flat?: boolean }): Promise<{ analysis: Analysis; inputs: Loaded }> {
  const inputs = await loadInputs(opts);
  const analysis = analyze(inputs.world, inputs.policySet, { flat: opts.flat });
  return { analysis, inputs };
}

/** Runs a command body: user errors print as diagnostics and exit 2; bugs print a stack and exit 70. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT.ok;
    } catch (e) {
      if (e instanceof UserError) {
        printDiagnostics(e.diagnostics);
        process.exitCode = EXIT.usage;
        return;
      }
      process.stderr.write(`moat: internal error (a bug; please report it):\n${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = EXIT.internal;
    }
  };
}

export function out(text: string): void {
  process.stdout.write(text);
}

// Child processes for the backends: argument arrays only (never a shell), input on stdin,
// bounded by a timeout. `netns` runs the command inside a named network namespace (tests).
import { spawn } from 'node:child_process';

export interface RunOptions {
  input?: string;
  netns?: string;
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string[],
    readonly result: RunResult,
  ) {
    super(`${command.join(' ')} failed (exit ${result.code}): ${result.stderr.trim().slice(0, 2000)}`);
    this.name = 'CommandError';
  }
}

const NETNS_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  let file = cmd;
  let argv = args;
  if (options.netns !== undefined) {
    if (!NETNS_RE.test(options.netns)) throw new Error(`invalid netns name: ${JSON.stringify(options.netns)}`);
    file = 'ip';
    argv = ['netns', 'exec', options.netns, cmd, ...args];
  }
  return new Promise((resolve) => {
    const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let done = false;
    const timer = setTimeout(() => {
      if (!done) child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      done = true;
      clearTimeout(timer);
      resolve({ code: 127, stdout: '', stderr: String(e.message) });
    });
    child.on('close', (code, signal) => {
      done = true;
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export async function runOk(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new CommandError([cmd, ...args], r);
  return r.stdout;
}

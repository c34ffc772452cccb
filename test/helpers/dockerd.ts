// The dockerd that this test run started itself. On a shared machine dockerd serves everyone's tests,
// so tests stop or restart it only when scripts/test.sh started it (it then exports its PID as
// MOAT_TEST_DOCKERD_PID, as on a fresh CI machine). A test that restarts it records the new PID in a
// state file next to that first PID, so that later test files (other processes) still know it is
// theirs; a file left by another run names another first PID and is ignored.
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const STATE = '/run/moat-test-dockerd.owned';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The PID of the dockerd scripts/test.sh started for this run, if it started one. */
function firstOwned(): number | undefined {
  const first = Number(process.env.MOAT_TEST_DOCKERD_PID ?? '');
  return Number.isInteger(first) && first > 1 ? first : undefined;
}

/** Records the running dockerd (from its pid file) as this run's, next to the first one. */
function recordRunning(first: number): number {
  const now = Number(readFileSync('/var/run/docker.pid', 'utf8').trim());
  writeFileSync(STATE, `${first} ${now}\n`);
  return now;
}

/** The PID of the dockerd this test run owns, when it is the one running now. */
export function ownedDockerd(): number | undefined {
  const first = firstOwned();
  if (first === undefined) return undefined;
  let pid = first;
  try {
    const [a, b] = readFileSync(STATE, 'utf8').trim().split(/\s+/).map(Number);
    if (a === first && Number.isInteger(b) && b > 1) pid = b;
  } catch {
    /* no restart yet */
  }
  try {
    if (readFileSync('/var/run/docker.pid', 'utf8').trim() !== String(pid)) return undefined;
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'dockerd') return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/**
 * Stops the owned dockerd (by its PID) and starts it again through scripts/ensure-dockerd.sh, with
 * `args` as extra flags (e.g. `--userland-proxy=false`; none: as scripts/test.sh started it). Bounded
 * waits; returns the new PID and how long the engine was down.
 */
export function restartDockerd(args: string[] = []): { pid: number; downMs: number } {
  const pid = ownedDockerd();
  const first = firstOwned();
  if (!pid || first === undefined) throw new Error('this test run does not own the running dockerd');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 600 && alive(pid); i++) spawnSync('sleep', ['0.1']);
  if (alive(pid)) throw new Error(`dockerd ${pid} did not stop within 60 s`);
  // Kept-alive connections to the old engine would fail the next request (EPIPE): close them.
  http.globalAgent.destroy();
  const downAt = Date.now();
  const r = spawnSync('bash', [join(REPO, 'scripts', 'ensure-dockerd.sh')], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, MOAT_DOCKERD_ARGS: args.join(' ') } });
  if (r.status !== 0) throw new Error(`dockerd did not come back: ${r.stderr}`);
  return { pid: recordRunning(first), downMs: Date.now() - downAt };
}

/** Starts dockerd again (as scripts/test.sh did) if it is not answering; for a test's cleanup. */
export function ensureDockerd(): void {
  spawnSync('bash', [join(REPO, 'scripts', 'ensure-dockerd.sh')], { stdio: 'ignore', timeout: 120_000 });
  const first = firstOwned();
  if (first === undefined) return;
  try {
    recordRunning(first);
  } catch {
    /* not started */
  }
}

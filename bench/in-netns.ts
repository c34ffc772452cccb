// Runs the calling benchmark inside a throw-away network namespace: the first call creates the
// namespace, re-executes the same script there (so that netlink sockets, which live in the process's
// namespace, reach the benchmark's ruleset and never the host's) and exits with its status; inside,
// it returns the namespace's name.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function inThrowawayNetns(prefix: string): string {
  const inside = process.env.MOAT_BENCH_NETNS;
  if (inside) return inside;
  const ns = `${prefix}${randomBytes(3).toString('hex')}`;
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) throw new Error('ip netns add failed (root needed)');
  const stop = () => spawnSync('ip', ['netns', 'del', ns]);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (stop(), process.exit(130)));
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, MOAT_BENCH_NETNS: ns } });
  stop();
  process.exit(r.status ?? 1);
}

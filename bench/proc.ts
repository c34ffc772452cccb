// Small helpers shared by the controller benchmarks: numeric command-line options, and a process's
// CPU time and memory read from /proc.
import { readFileSync } from 'node:fs';

/** Linux USER_HZ: the unit of the CPU times in /proc/<pid>/stat. */
export const CLK_TCK = 100;

/** `--name N` from the command line (a finite number ≥ 0), or `def`. */
export function numberArg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v < 0) throw new Error(`bad --${name}`);
  return v;
}

/** CPU ticks of a process: its own threads (utime+stime) and the children it waited for (cutime+cstime). */
export function procStat(pid: number): { self: number; children: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  const n = (k: number) => Number(f[k - 3]);
  return { self: n(14) + n(15), children: n(16) + n(17) };
}

/** Resident memory now and at its peak, in MB. */
export function procMem(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

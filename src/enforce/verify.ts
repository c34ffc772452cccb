// `moat verify`: for every pair of the analyzer's container nodes, probe for real from inside the
// source container's network namespace and compare with the matrix. Probes go only to addresses of
// the host's own containers (taken from the world), never to an outside address.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Analysis } from '../analysis/reachability.js';
import type { World } from '../model/world.js';
import { run } from './exec.js';
import { arrived, probeTcp, type ProbeResult } from './probe.js';
import { canonicalAddress } from './validate.js';

export interface VerifyOptions {
  timeoutMs?: number;
  /** Probes at once (default 8). */
  concurrency?: number;
  /** Extra TCP ports to probe on every destination besides its declared ports. */
  extraPorts?: number[];
  /** Also probe from the host to every container (default true). */
  fromHost?: boolean;
  /** At most this many probes (default 2000). */
  maxProbes?: number;
}

export interface ProbeOutcome {
  from: string;
  to: string;
  address: string;
  protocol: 'TCP';
  port: number;
  expected: boolean;
  result: ProbeResult;
  agrees: boolean;
}

export interface VerifyReport {
  probes: ProbeOutcome[];
  disagreements: ProbeOutcome[];
  skipped: string[];
  ok: boolean;
}

const HERE = dirname(fileURLToPath(import.meta.url));
/** The probe next to this module: compiled (a build in dist/) or the TypeScript source through tsx. */
const PROBE_JS = join(HERE, 'probe.js');
const PROBE = existsSync(PROBE_JS) ? PROBE_JS : join(HERE, 'probe.ts');
const ROOT = join(HERE, '..', '..');
/** tsx's loader as an absolute URL, so the probe starts whatever the working directory. */
const PROBE_LOADER = PROBE === PROBE_JS ? [] : ['--import', import.meta.resolve('tsx')];

async function probeFromNetns(pid: number, address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  if (!Number.isInteger(pid) || pid <= 0) return 'error';
  const target = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  const r = await run('nsenter', ['-t', String(pid), '-n', process.execPath, ...PROBE_LOADER, PROBE, '--tcp', target, '--timeout-ms', String(timeoutMs)], {
    timeoutMs: timeoutMs + 15_000,
  });
  try {
    return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { result: ProbeResult }).result;
  } catch {
    return 'error';
  }
}

async function pool<T>(items: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await items[i]();
      }
    }),
  );
  return out;
}

export async function verify(world: World, analysis: Analysis, options: VerifyOptions = {}): Promise<VerifyReport> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const skipped: string[] = [];
  const ownAddresses = new Set<string>();
  for (const e of world.endpoints) for (const a of e.attachments) for (const ip of [a.ipv4, a.ipv6]) if (ip) ownAddresses.add(canonicalAddress(ip).text);
  const jobs: (() => Promise<ProbeOutcome>)[] = [];
  const nodes = analysis.nodes;
  const hostIndex = nodes.findIndex((n) => n.kind === 'host');
  for (let i = 0; i < nodes.length; i++) {
    const src = nodes[i];
    const fromHost = src.kind === 'host' && options.fromHost !== false;
    if (src.kind !== 'endpoint' && !fromHost) continue;
    const pid = src.endpoint?.pid;
    if (src.kind === 'endpoint' && (!pid || src.endpoint?.running === false)) {
      skipped.push(`${src.id}: not running or no PID`);
      continue;
    }
    for (let j = 0; j < nodes.length; j++) {
      const dst = nodes[j];
      if (i === j || dst.kind !== 'endpoint' || !dst.endpoint) continue;
      if (i === hostIndex && !fromHost) continue;
      // Same netns (container:x) is not a network path.
      if (src.endpoint && src.endpoint.pid === dst.endpoint.pid) continue;
      const conns = analysis.connections(i, j);
      // The destination's address: one on a network the source shares, else its first one.
      const srcNets = new Set((src.endpoint?.attachments ?? []).map((a) => a.network));
      const att = dst.endpoint.attachments.find((a) => srcNets.has(a.network) && a.ipv4) ?? dst.endpoint.attachments.find((a) => a.ipv4);
      const address = att?.ipv4 ? canonicalAddress(att.ipv4).text : undefined;
      if (!address || !ownAddresses.has(address)) {
        skipped.push(`${src.id} -> ${dst.id}: no address of a local container`);
        continue;
      }
      const ports = new Set<number>([...dst.endpoint.declaredPorts.filter((p) => p.protocol === 'TCP').map((p) => p.port), ...(options.extraPorts ?? [])]);
      const allowed = conns.tcp[0];
      if (allowed) ports.add(allowed[0]);
      for (const port of ports) {
        if (jobs.length >= (options.maxProbes ?? 2000)) break;
        const expected = conns.contains('TCP', port);
        jobs.push(async () => {
          const result = src.kind === 'host' ? await probeTcp(address, port, timeoutMs) : await probeFromNetns(pid!, address, port, timeoutMs);
          const agrees = result !== 'error' && arrived(result) === expected;
          return { from: src.id, to: dst.id, address, protocol: 'TCP', port, expected, result, agrees };
        });
      }
    }
  }
  void ROOT;
  const probes = await pool(jobs, options.concurrency ?? 8);
  const disagreements = probes.filter((p) => !p.agrees);
  return { probes, disagreements, skipped, ok: disagreements.length === 0 };
}

export function formatVerify(r: VerifyReport): string {
  const lines = [`${r.probes.length} probes, ${r.disagreements.length} disagreements`];
  for (const d of r.disagreements) {
    lines.push(`  ${d.from} -> ${d.to} (${d.address}) TCP ${d.port}: matrix says ${d.expected ? 'allowed' : 'denied'}, the kernel ${d.result === 'error' ? 'gave an error' : arrived(d.result) ? 'let it through' : 'filtered it'}`);
  }
  for (const s of r.skipped) lines.push(`  skipped: ${s}`);
  return `${lines.join('\n')}\n`;
}

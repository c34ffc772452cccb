// Helpers for the enforcement integration tests: unique backend names, probes from a container's or a
// test namespace, test "outside" hosts as network namespaces on 198.18.0.0/15 (the benchmarking
// range) joined to the host by a veth pair, and kernel ruleset snapshots.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EndpointSelector, Peer, Policy, PolicySet, Rule } from '../../../src/model/ir.js';
import { emptyPolicySet } from '../../../src/model/ir.js';
import type { BackendKind, EnforceOptions } from '../../../src/enforce/index.js';
import type { ProbeResult } from '../../../src/enforce/probe.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PROBE = join(REPO, 'src', 'enforce', 'probe.ts');
const TSX = import.meta.resolve('tsx');

export function rand(n = 6): string {
  return randomBytes(8).toString('hex').slice(0, n);
}

/** Backend options with names of their own (nft table, iptables chain and ipset prefixes). */
export function backendOptions(backend: BackendKind, stateDir: string): EnforceOptions {
  const s = rand(5);
  const letters = s.replace(/[0-9]/g, (d) => 'abcdefghij'[Number(d)]);
  return { backend, stateDir, table: `moat_t${s}`, chainPrefix: `M${letters.toUpperCase()}`, setPrefix: `m${letters}` };
}

export function sel(labels: Record<string, string>): EndpointSelector {
  return { namespaces: { kind: 'all' }, labels: { matchLabels: labels } };
}

export function policy(id: string, subject: Record<string, string>, p: { ingress?: Rule[]; egress?: Rule[]; isolates?: { ingress: boolean; egress: boolean } }): Policy {
  return {
    id, name: id, kind: 'label', subject: sel(subject),
    isolates: p.isolates ?? { ingress: (p.ingress ?? []).some((r) => r.action === 'allow'), egress: (p.egress ?? []).some((r) => r.action === 'allow') },
    ingress: p.ingress ?? [], egress: p.egress ?? [],
  };
}

export const allowFrom = (peers: Peer[] | 'all'): Rule => ({ action: 'allow', peers });
export const denyTo = (peers: Peer[] | 'all'): Rule => ({ action: 'deny', peers });
export const role = (r: string): Peer => ({ kind: 'endpoints', selector: sel({ 'moat.test.role': r }) });

export function policySet(...policies: Policy[]): PolicySet {
  const ps = emptyPolicySet();
  ps.policies.push(...policies);
  return ps;
}

function parseProbe(stdout: string): ProbeResult {
  try {
    return (JSON.parse(stdout.trim().split('\n').pop() ?? '') as { result: ProbeResult }).result;
  } catch {
    return 'error';
  }
}

function target(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** TCP probe from inside the network namespace of a container (by PID). */
export function probeFromPid(pid: number, address: string, port: number, timeoutMs = 700): ProbeResult {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad pid ${pid}`);
  const r = spawnSync('nsenter', ['-t', String(pid), '-n', process.execPath, '--import', TSX, PROBE, '--tcp', target(address, port), '--timeout-ms', String(timeoutMs)], { encoding: 'utf8', timeout: timeoutMs + 15_000 });
  return parseProbe(r.stdout ?? '');
}

/** TCP probe from inside a named network namespace the test created. */
export function probeFromNetns(ns: string, address: string, port: number, timeoutMs = 700): ProbeResult {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', TSX, PROBE, '--tcp', target(address, port), '--timeout-ms', String(timeoutMs)], { encoding: 'utf8', timeout: timeoutMs + 15_000 });
  return parseProbe(r.stdout ?? '');
}

export const arrived = (r: ProbeResult) => r === 'open' || r === 'refused';

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

export interface TestHost {
  ns: string;
  /** The host's address on the veth (the namespace's gateway). */
  hostAddress: string;
  /** The namespace's own address. */
  address: string;
  remove(): void;
}

/**
 * A namespace of the test's own joined to the host by a veth pair on a random /30 of 198.18.0.0/15:
 * the host side gets .1, the namespace .2 with a default route to the host. Nothing else is routed.
 */
export function createTestHost(): TestHost {
  const s = rand(6);
  const ns = `moatih${s}`;
  const hostIf = `mh${s}`;
  const nsIf = `mn${s}`;
  const b = randomBytes(2);
  const third = 18 + (b[0] & 1); // 198.18.x.x or 198.19.x.x
  const fourth = (b[1] & 0x3f) * 4; // a /30
  const sub = `198.${third}.${b[0]}`;
  const hostAddress = `${sub}.${fourth + 1}`;
  const address = `${sub}.${fourth + 2}`;
  sh('ip', ['netns', 'add', ns]);
  try {
    sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
    sh('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    sh('ip', ['link', 'set', hostIf, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/30`, 'dev', nsIf]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'route', 'add', 'default', 'via', hostAddress]);
  } catch (e) {
    spawnSync('ip', ['link', 'del', hostIf]);
    spawnSync('ip', ['netns', 'del', ns]);
    throw e;
  }
  return {
    ns, hostAddress, address,
    remove() {
      spawnSync('ip', ['link', 'del', hostIf]);
      spawnSync('ip', ['netns', 'del', ns]);
    },
  };
}

/** The kernel's rulesets, counters normalised: `nft list ruleset`, iptables-save, ip6tables-save, ipset names. */
export function kernelSnapshot(): { nft: string; v4: string; v6: string; ipsets: string } {
  // A large buffer: a host ruleset with someone's big table lists in megabytes (spawnSync's default
  // of 1 MB would cut every snapshot at the same place and make them all look equal).
  const out = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOBUFS') throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
    return r.stdout ?? '';
  };
  const ipt = (t: string) =>
    t.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]')).join('\n');
  return {
    nft: out('nft', ['list', 'ruleset']).replace(/counter packets \d+ bytes \d+/g, 'counter'),
    v4: ipt(out('iptables-save', [])),
    v6: ipt(out('ip6tables-save', [])),
    ipsets: out('ipset', ['list', '-n']).split('\n').sort().join('\n'),
  };
}

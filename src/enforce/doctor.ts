// `moat doctor`: can enforcement work on this host? Each finding has a fix; `ok` is false when
// enforcement cannot work (the CLI exits non-zero then).
import { existsSync, readFileSync } from 'node:fs';
import { run } from './exec.js';

export type FindingLevel = 'ok' | 'warning' | 'error';

export interface Finding {
  id: string;
  level: FindingLevel;
  message: string;
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  findings: Finding[];
  facts: Record<string, string | boolean | undefined>;
}

export interface DoctorOptions {
  backend?: 'nft' | 'iptables';
  /** Docker daemon.json location (default /etc/docker/daemon.json). */
  daemonJson?: string;
  /** Docker Engine version and info, when the caller has them (e.g. from dockerode). */
  docker?: { version?: string; firewallBackend?: string; userlandProxy?: boolean };
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function version(cmd: string, args: string[]): Promise<string | undefined> {
  const r = await run(cmd, args, { timeoutMs: 5000 });
  return r.code === 0 ? (r.stdout || r.stderr).trim().split('\n')[0] : undefined;
}

/**
 * What doctor reads from the host, as raw text (command outputs, sysctl and file contents), so that
 * the diagnosis is a pure function that tests can feed with captured outputs.
 */
export interface HostObservations {
  /** `nft --version` first line; undefined when nft is missing. */
  nftVersion?: string;
  /** `iptables -V` first line. */
  iptablesVersion?: string;
  /** `ipset version` first line (looked up for the iptables backend). */
  ipsetVersion?: string;
  /** Whether /proc/sys/net/bridge exists (br_netfilter loaded). */
  brNetfilter: boolean;
  bridgeNfCallIptables?: string;
  bridgeNfCallIp6tables?: string;
  ipForward?: string;
  /** /etc/docker/daemon.json contents (undefined when absent). */
  daemonJson?: string;
  /** `dockerd --version` or the Engine API version. */
  dockerVersion?: string;
  /** From the Engine API when known (`docker info`: FirewallBackend). */
  firewallBackend?: string;
  userlandProxy?: boolean;
  /** `iptables-save -t filter` output. */
  iptablesSave?: string;
  /** `systemctl is-active ufw|firewalld` stdout. */
  ufwActive?: string;
  firewalldActive?: string;
}

/** `nf_tables` or `legacy` from `iptables -V` (`iptables v1.8.9 (nf_tables)`, `iptables v1.8.7 (legacy)`). */
export function iptablesFlavour(versionLine: string | undefined): 'nft' | 'legacy' | undefined {
  if (!versionLine) return undefined;
  return /nf_tables/.test(versionLine) ? 'nft' : 'legacy';
}

/** Whether iptables-save shows a DOCKER-USER chain and the FORWARD -> DOCKER-USER jump. */
export function dockerUserJump(save: string): { chain: boolean; jump: boolean } {
  let filter = false;
  let chain = false;
  let jump = false;
  for (const line of save.split('\n')) {
    const l = line.trim();
    if (l.startsWith('*')) filter = l === '*filter';
    if (!filter) continue;
    if (/^:DOCKER-USER\s/.test(l)) chain = true;
    // `-A FORWARD -j DOCKER-USER`, possibly with counters (`iptables-save -c`: `[0:0] -A ...`).
    if (/^(\[\d+:\d+\]\s+)?-A FORWARD -j DOCKER-USER$/.test(l)) jump = true;
  }
  return { chain, jump };
}

/** The settings doctor needs from daemon.json; a file that is not JSON is a finding, not a crash. */
export function parseDaemonJson(text: string | undefined): { config: Record<string, unknown>; error?: string } {
  if (text === undefined || text.trim() === '') return { config: {} };
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return { config: {}, error: 'not a JSON object' };
    return { config: v as Record<string, unknown> };
  } catch (e) {
    return { config: {}, error: (e as Error).message };
  }
}

/** The diagnosis: findings with fixes from what was observed. Pure. */
export function diagnose(o: HostObservations, backend: 'nft' | 'iptables' = 'nft'): DoctorReport {
  const findings: Finding[] = [];
  const facts: DoctorReport['facts'] = {};
  const add = (f: Finding) => findings.push(f);

  facts.nft = o.nftVersion;
  if (!o.nftVersion) add({ id: 'nft.missing', level: backend === 'nft' ? 'error' : 'warning', message: 'nft is not installed', fix: 'apt-get install nftables' });
  facts.iptables = o.iptablesVersion;
  facts.iptablesFlavour = iptablesFlavour(o.iptablesVersion);
  if (!o.iptablesVersion) add({ id: 'iptables.missing', level: backend === 'iptables' ? 'error' : 'warning', message: 'iptables is not installed', fix: 'apt-get install iptables' });
  else if (facts.iptablesFlavour === 'legacy' && backend === 'nft') {
    add({ id: 'iptables.legacy', level: 'warning', message: 'iptables is the legacy flavour: Docker\'s rules live in x_tables, moat\'s nft table is evaluated separately (both must accept)', fix: 'update-alternatives --set iptables /usr/sbin/iptables-nft, or use --backend iptables' });
  }
  if (backend === 'iptables') {
    facts.ipset = o.ipsetVersion;
    if (!o.ipsetVersion) add({ id: 'ipset.missing', level: 'error', message: 'ipset is not installed (the iptables backend keeps addresses in ipsets)', fix: 'apt-get install ipset' });
  }

  facts.brNetfilter = o.brNetfilter;
  facts.bridgeNfCallIptables = o.bridgeNfCallIptables;
  facts.bridgeNfCallIp6tables = o.bridgeNfCallIp6tables;
  if (!o.brNetfilter) add({ id: 'br_netfilter.missing', level: 'error', message: 'br_netfilter is not loaded: traffic between containers on one bridge bypasses netfilter', fix: 'modprobe br_netfilter && echo br_netfilter > /etc/modules-load.d/br_netfilter.conf' });
  else {
    if (o.bridgeNfCallIptables !== '1') add({ id: 'bridge-nf-call-iptables', level: 'error', message: 'net.bridge.bridge-nf-call-iptables is not 1: same-bridge IPv4 traffic is not filtered', fix: 'sysctl -w net.bridge.bridge-nf-call-iptables=1' });
    if (o.bridgeNfCallIp6tables !== '1') add({ id: 'bridge-nf-call-ip6tables', level: 'warning', message: 'net.bridge.bridge-nf-call-ip6tables is not 1: same-bridge IPv6 traffic is not filtered', fix: 'sysctl -w net.bridge.bridge-nf-call-ip6tables=1' });
  }
  facts.ipForward = o.ipForward;
  if (o.ipForward !== '1') add({ id: 'ip_forward', level: 'warning', message: 'net.ipv4.ip_forward is not 1: containers cannot reach outside (Docker normally sets it)', fix: 'sysctl -w net.ipv4.ip_forward=1' });

  const { config: daemon, error: daemonError } = parseDaemonJson(o.daemonJson);
  if (daemonError) add({ id: 'docker.daemon-json', level: 'warning', message: `/etc/docker/daemon.json cannot be read as JSON (${daemonError}): Docker's defaults are assumed`, fix: 'fix the file (dockerd refuses to start with it as well)' });
  facts.dockerVersion = o.dockerVersion;
  const fwBackend = o.firewallBackend ?? (typeof daemon['firewall-backend'] === 'string' ? (daemon['firewall-backend'] as string) : 'iptables');
  facts.dockerFirewallBackend = fwBackend;
  if (daemon.iptables === false) add({ id: 'docker.iptables-off', level: 'error', message: 'Docker runs with "iptables": false: it adds no isolation of its own and no DOCKER-USER chain', fix: 'remove "iptables": false from /etc/docker/daemon.json and restart dockerd' });
  if (fwBackend === 'nftables') add({ id: 'docker.nftables-backend', level: backend === 'iptables' ? 'error' : 'warning', message: 'Docker uses its nftables firewall backend: there is no DOCKER-USER chain', fix: backend === 'iptables' ? 'use --backend nft (moat\'s own table works beside Docker\'s)' : 'nothing to do for the nft backend' });
  const proxy = o.userlandProxy ?? (daemon['userland-proxy'] === false ? false : true);
  facts.userlandProxy = proxy;
  if (proxy) add({ id: 'docker.userland-proxy', level: 'warning', message: 'userland-proxy is on: connections to published ports from the host or from containers go through docker-proxy and arrive from the destination network\'s gateway (the host), not from their real source', fix: 'set "userland-proxy": false in /etc/docker/daemon.json and restart dockerd, so allowlists see real sources' });

  // The FORWARD -> DOCKER-USER jump (Docker can fail open without it).
  if (o.iptablesVersion && o.iptablesSave !== undefined) {
    const { chain: hasUser, jump } = dockerUserJump(o.iptablesSave);
    facts.dockerUserChain = hasUser;
    facts.forwardJumpsToDockerUser = jump;
    if (backend === 'iptables' && !hasUser) add({ id: 'docker-user.missing', level: 'warning', message: 'no DOCKER-USER chain: moat will jump from FORWARD directly', fix: 'start dockerd with its iptables firewall backend' });
    if (hasUser && !jump) add({ id: 'docker-user.no-jump', level: backend === 'iptables' ? 'error' : 'warning', message: 'DOCKER-USER exists but FORWARD does not jump to it: rules there are never evaluated', fix: 'restart dockerd (it recreates the jump), or iptables -I FORWARD -j DOCKER-USER' });
  }

  // Host firewalls that rewrite the ruleset.
  for (const [unit, id, state] of [['ufw', 'ufw', o.ufwActive], ['firewalld', 'firewalld', o.firewalldActive]] as const) {
    const active = state?.trim() === 'active';
    facts[id] = active;
    if (active) {
      add({
        id: `${id}.active`,
        level: 'warning',
        message: `${unit} is active: it manages the same hooks and may reload its rules over moat's (iptables backend) or drop forwarded traffic before moat sees it`,
        fix: id === 'ufw' ? 'use --backend iptables and run `moat apply` after `ufw reload`, or route Docker traffic through ufw-docker rules' : 'put the Docker bridges in firewalld\'s "docker" zone and re-run `moat apply` after reloads',
      });
    }
  }
  if (!findings.some((f) => f.level === 'error')) findings.unshift({ id: 'summary', level: 'ok', message: `enforcement with the ${backend} backend can work on this host` });
  return { ok: !findings.some((f) => f.level === 'error'), findings, facts };
}

function readFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads the host (commands, sysctls, daemon.json) without changing anything. */
export async function observeHost(options: DoctorOptions = {}): Promise<HostObservations> {
  const backend = options.backend ?? 'nft';
  const iptablesVersion = await version('iptables', ['-V']);
  const save = iptablesVersion ? await run('iptables-save', ['-t', 'filter'], { timeoutMs: 10_000 }) : undefined;
  const active = async (unit: string) => (await run('systemctl', ['is-active', unit], { timeoutMs: 5000 })).stdout;
  return {
    nftVersion: await version('nft', ['--version']),
    iptablesVersion,
    ipsetVersion: backend === 'iptables' ? await version('ipset', ['version']) : undefined,
    brNetfilter: existsSync('/proc/sys/net/bridge'),
    bridgeNfCallIptables: readSysctl('/proc/sys/net/bridge/bridge-nf-call-iptables'),
    bridgeNfCallIp6tables: readSysctl('/proc/sys/net/bridge/bridge-nf-call-ip6tables'),
    ipForward: readSysctl('/proc/sys/net/ipv4/ip_forward'),
    daemonJson: readFile(options.daemonJson ?? '/etc/docker/daemon.json'),
    dockerVersion: options.docker?.version ?? (await version('dockerd', ['--version'])),
    firewallBackend: options.docker?.firewallBackend,
    userlandProxy: options.docker?.userlandProxy,
    iptablesSave: save && save.code === 0 ? save.stdout : undefined,
    ufwActive: await active('ufw'),
    firewalldActive: await active('firewalld'),
  };
}

export async function doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  return diagnose(await observeHost(options), options.backend ?? 'nft');
}

export function formatDoctor(r: DoctorReport): string {
  const lines = r.findings.map((f) => `${f.level === 'ok' ? 'ok' : f.level}: ${f.message}${f.fix ? `\n  fix: ${f.fix}` : ''}`);
  return `${lines.join('\n')}\n`;
}

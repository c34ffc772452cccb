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

export async function doctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const findings: Finding[] = [];
  const facts: DoctorReport['facts'] = {};
  const backend = options.backend ?? 'nft';
  const add = (f: Finding) => findings.push(f);

  const nft = await version('nft', ['--version']);
  facts.nft = nft;
  if (!nft) add({ id: 'nft.missing', level: backend === 'nft' ? 'error' : 'warning', message: 'nft is not installed', fix: 'apt-get install nftables' });
  const ipt = await version('iptables', ['-V']);
  facts.iptables = ipt;
  facts.iptablesFlavour = ipt ? (/nf_tables/.test(ipt) ? 'nft' : 'legacy') : undefined;
  if (!ipt) add({ id: 'iptables.missing', level: backend === 'iptables' ? 'error' : 'warning', message: 'iptables is not installed', fix: 'apt-get install iptables' });
  else if (facts.iptablesFlavour === 'legacy' && backend === 'nft') {
    add({ id: 'iptables.legacy', level: 'warning', message: 'iptables is the legacy flavour: Docker\'s rules live in x_tables, moat\'s nft table is evaluated separately (both must accept)', fix: 'update-alternatives --set iptables /usr/sbin/iptables-nft, or use --backend iptables' });
  }
  if (backend === 'iptables') {
    const ipset = await version('ipset', ['version']);
    facts.ipset = ipset;
    if (!ipset) add({ id: 'ipset.missing', level: 'error', message: 'ipset is not installed (the iptables backend keeps addresses in ipsets)', fix: 'apt-get install ipset' });
  }

  facts.brNetfilter = existsSync('/proc/sys/net/bridge');
  const callIp = readSysctl('/proc/sys/net/bridge/bridge-nf-call-iptables');
  const callIp6 = readSysctl('/proc/sys/net/bridge/bridge-nf-call-ip6tables');
  facts.bridgeNfCallIptables = callIp;
  facts.bridgeNfCallIp6tables = callIp6;
  if (!facts.brNetfilter) add({ id: 'br_netfilter.missing', level: 'error', message: 'br_netfilter is not loaded: traffic between containers on one bridge bypasses netfilter', fix: 'modprobe br_netfilter && echo br_netfilter > /etc/modules-load.d/br_netfilter.conf' });
  else {
    if (callIp !== '1') add({ id: 'bridge-nf-call-iptables', level: 'error', message: 'net.bridge.bridge-nf-call-iptables is not 1: same-bridge IPv4 traffic is not filtered', fix: 'sysctl -w net.bridge.bridge-nf-call-iptables=1' });
    if (callIp6 !== '1') add({ id: 'bridge-nf-call-ip6tables', level: 'warning', message: 'net.bridge.bridge-nf-call-ip6tables is not 1: same-bridge IPv6 traffic is not filtered', fix: 'sysctl -w net.bridge.bridge-nf-call-ip6tables=1' });
  }
  const fwd = readSysctl('/proc/sys/net/ipv4/ip_forward');
  facts.ipForward = fwd;
  if (fwd !== '1') add({ id: 'ip_forward', level: 'warning', message: 'net.ipv4.ip_forward is not 1: containers cannot reach outside (Docker normally sets it)', fix: 'sysctl -w net.ipv4.ip_forward=1' });

  // Docker: version, firewall backend, userland-proxy.
  let daemon: Record<string, unknown> = {};
  try {
    daemon = JSON.parse(readFileSync(options.daemonJson ?? '/etc/docker/daemon.json', 'utf8')) as Record<string, unknown>;
  } catch {
    /* absent or unreadable: defaults */
  }
  const dockerVersion = options.docker?.version ?? (await version('dockerd', ['--version']));
  facts.dockerVersion = dockerVersion;
  const fwBackend = options.docker?.firewallBackend ?? (typeof daemon['firewall-backend'] === 'string' ? (daemon['firewall-backend'] as string) : 'iptables');
  facts.dockerFirewallBackend = fwBackend;
  if (daemon.iptables === false) add({ id: 'docker.iptables-off', level: 'error', message: 'Docker runs with "iptables": false: it adds no isolation of its own and no DOCKER-USER chain', fix: 'remove "iptables": false from /etc/docker/daemon.json and restart dockerd' });
  if (fwBackend === 'nftables') add({ id: 'docker.nftables-backend', level: backend === 'iptables' ? 'error' : 'warning', message: 'Docker uses its nftables firewall backend: there is no DOCKER-USER chain', fix: backend === 'iptables' ? 'use --backend nft (moat\'s own table works beside Docker\'s)' : 'nothing to do for the nft backend' });
  const proxy = options.docker?.userlandProxy ?? (daemon['userland-proxy'] === false ? false : true);
  facts.userlandProxy = proxy;
  if (proxy) add({ id: 'docker.userland-proxy', level: 'warning', message: 'userland-proxy is on: connections to published ports from the host or from containers arrive from the bridge gateway (the host), not from their real source', fix: 'set "userland-proxy": false in /etc/docker/daemon.json and restart dockerd, so allowlists see real sources' });

  // The FORWARD -> DOCKER-USER jump (Docker can fail open without it).
  if (ipt) {
    const save = await run('iptables-save', ['-t', 'filter'], { timeoutMs: 10_000 });
    const hasUser = /^:DOCKER-USER /m.test(save.stdout);
    const jump = /^-A FORWARD -j DOCKER-USER$/m.test(save.stdout);
    facts.dockerUserChain = hasUser;
    facts.forwardJumpsToDockerUser = jump;
    if (backend === 'iptables' && !hasUser) add({ id: 'docker-user.missing', level: 'warning', message: 'no DOCKER-USER chain: moat will jump from FORWARD directly', fix: 'start dockerd with its iptables firewall backend' });
    if (hasUser && !jump) add({ id: 'docker-user.no-jump', level: backend === 'iptables' ? 'error' : 'warning', message: 'DOCKER-USER exists but FORWARD does not jump to it: rules there are never evaluated', fix: 'restart dockerd (it recreates the jump), or iptables -I FORWARD -j DOCKER-USER' });
  }

  // Host firewalls that rewrite the ruleset.
  for (const [unit, id] of [['ufw', 'ufw'], ['firewalld', 'firewalld']] as const) {
    const r = await run('systemctl', ['is-active', unit], { timeoutMs: 5000 });
    const active = r.code === 0 && r.stdout.trim() === 'active';
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

export function formatDoctor(r: DoctorReport): string {
  const lines = r.findings.map((f) => `${f.level === 'ok' ? 'ok' : f.level}: ${f.message}${f.fix ? `\n  fix: ${f.fix}` : ''}`);
  return `${lines.join('\n')}\n`;
}

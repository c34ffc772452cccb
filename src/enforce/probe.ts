// moat's own probe, run inside a container's network namespace (nsenter -t PID -n node ...), so
// images need no tools. TCP: connected or refused means the packet arrived; a timeout means filtered.
// UDP: a reply from a probe listener (or an ICMP port-unreachable, seen as refused) means it arrived.
//   node --import tsx src/enforce/probe.ts --tcp 172.18.0.2:80 --timeout-ms 1000
//   node --import tsx src/enforce/probe.ts --udp 172.18.0.2:53 --timeout-ms 1000
//   node --import tsx src/enforce/probe.ts --udp-listen 5353 --max-ms 30000   (echo listener, stops by itself)
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { isIP } from 'node:net';
import { pathToFileURL } from 'node:url';

export type ProbeResult = 'open' | 'refused' | 'filtered' | 'error';

export function arrived(r: ProbeResult): boolean {
  return r === 'open' || r === 'refused';
}

export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = new Socket();
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => finish('filtered'));
    s.once('connect', () => finish('open'));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT' ? 'filtered' : 'error'));
    s.connect({ host, port });
  });
}

export function probeUdp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.close();
      resolve(r);
    };
    const t = setTimeout(() => finish('filtered'), timeoutMs);
    s.on('message', () => finish('open'));
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
    s.connect(port, host, () => s.send('moat-probe'));
  });
}

/** Echoes datagrams back (UDP probe listener); stops after maxMs. */
export function udpListener(port: number, maxMs: number, family: 4 | 6 = 4): Promise<void> {
  return new Promise((resolve) => {
    const s = createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
    s.bind(port);
    setTimeout(() => {
      s.close();
      resolve();
    }, maxMs);
  });
}

function parseTarget(t: string | undefined): { host: string; port: number } {
  const m = t ? /^\[?([0-9a-fA-F:.]+)\]?:(\d{1,5})$/.exec(t) : null;
  if (!m || !isIP(m[1]) || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`bad target ${JSON.stringify(t)}: use IP:PORT or [IPv6]:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

async function main(argv: string[]): Promise<void> {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const timeoutMs = Math.min(Number(get('--timeout-ms') ?? 1000), 30_000);
  if (get('--udp-listen')) {
    await udpListener(Number(get('--udp-listen')), Math.min(Number(get('--max-ms') ?? 30_000), 600_000));
    return;
  }
  const tcp = get('--tcp');
  const udp = get('--udp');
  const { host, port } = parseTarget(tcp ?? udp);
  const r = tcp ? await probeTcp(host, port, timeoutMs) : await probeUdp(host, port, timeoutMs);
  process.stdout.write(`${JSON.stringify({ target: `${host}:${port}`, protocol: tcp ? 'TCP' : 'UDP', result: r })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`probe: ${e.message}\n`);
    process.exit(2);
  });
}

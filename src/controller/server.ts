// The controller's HTTP door (node:http, no framework): /healthz, /readyz, /metrics, /status.
// By default it listens on a unix socket (mode 0660) or on 127.0.0.1; any other address needs a bearer
// token, checked in constant time. Only GET and HEAD; nothing here changes the controller's state.
import http from 'node:http';
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { timingSafeEqual, createHash } from 'node:crypto';
import { UserError } from '../model/diagnostics.js';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const DEFAULT_LISTEN = 'unix:///run/moat/moat.sock';

/** `unix:///path`, `/path`, `127.0.0.1:9469`, `[::1]:9469`, `0.0.0.0:9469`. Throws UserError. */
export function parseListen(text: string): ListenAddress {
  const bad = () => new UserError({ severity: 'error', code: 'controller.listen', message: `--listen ${JSON.stringify(text)} is not an address moat understands`, fix: 'use unix:///run/moat/moat.sock or 127.0.0.1:9469' });
  const t = text.trim();
  if (t.startsWith('unix://')) {
    const p = t.slice('unix://'.length);
    if (!p.startsWith('/') || p.length > 100) throw bad();
    return { kind: 'unix', path: p };
  }
  if (t.startsWith('/')) return { kind: 'unix', path: t };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3}|localhost)):(\d{1,5})$/.exec(t);
  if (!m) throw bad();
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw bad();
  return { kind: 'tcp', host: m[1] ?? m[2], port };
}

export function isLoopbackListen(a: ListenAddress): boolean {
  if (a.kind === 'unix') return true;
  return a.host === 'localhost' || a.host === '::1' || /^127\./.test(a.host);
}

export interface Handlers {
  healthz(): { ok: boolean; detail: unknown };
  readyz(): { ok: boolean; detail: unknown };
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): unknown;
}

export function tokenMatches(expected: string, header: string | undefined): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(\S+)$/.exec(header);
  if (!m) return false;
  // Hash both sides so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(m[1]).digest();
  return timingSafeEqual(a, b);
}

export class ControlServer {
  private server: http.Server | undefined;
  constructor(
    private readonly address: ListenAddress,
    private readonly handlers: Handlers,
    private readonly token?: string,
  ) {
    if (!isLoopbackListen(address) && !token) {
      throw new UserError({ severity: 'error', code: 'controller.token-required', message: `listening on ${address.kind === 'tcp' ? `${address.host}:${address.port}` : ''} needs a token`, fix: 'pass --token-file FILE (a secret of at least 16 characters), or listen on a unix socket or 127.0.0.1' });
    }
    if (token !== undefined && token.length < 16) {
      throw new UserError({ severity: 'error', code: 'controller.token-short', message: 'the token is shorter than 16 characters', fix: 'use a longer secret, e.g. `openssl rand -hex 32`' });
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (this.token !== undefined && !tokenMatches(this.token, req.headers.authorization)) return send(401, 'text/plain', 'unauthorized\n');
    const path = (req.url ?? '/').split('?')[0];
    const json = (code: number, v: unknown) => send(code, 'application/json', `${JSON.stringify(v, null, 2)}\n`);
    switch (path) {
      case '/healthz': {
        const h = this.handlers.healthz();
        return json(h.ok ? 200 : 503, h);
      }
      case '/readyz': {
        const r = this.handlers.readyz();
        return json(r.ok ? 200 : 503, r);
      }
      case '/metrics': {
        const m = await this.handlers.metrics();
        return send(200, m.contentType, m.body);
      }
      case '/status':
        return json(200, this.handlers.status());
      default:
        return send(404, 'text/plain', 'not found\n');
    }
  }

  async listen(): Promise<string> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`internal error: ${(e as Error).message}\n`);
      });
    });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    this.server = server;
    if (this.address.kind === 'unix') {
      const p = this.address.path;
      mkdirSync(dirname(p), { recursive: true, mode: 0o750 });
      if (existsSync(p) && lstatSync(p).isSocket()) unlinkSync(p);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(p, () => resolve());
      });
      chmodSync(p, 0o660);
      return `unix://${p}`;
    }
    const { host, port } = this.address;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const a = server.address();
    return typeof a === 'object' && a ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : `${host}:${port}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
    if (this.address.kind === 'unix' && existsSync(this.address.path)) {
      try {
        unlinkSync(this.address.path);
      } catch {
        /* gone */
      }
    }
  }
}

/** GET a path from a running controller (used by `moat status` and tests). */
export function request(address: ListenAddress, path: string, token?: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const opts: http.RequestOptions = address.kind === 'unix' ? { socketPath: address.path } : { host: address.host, port: address.port };
    const req = http.request({ ...opts, path, method: 'GET', timeout: timeoutMs, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

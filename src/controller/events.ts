// The Docker event stream: GET /events as newline-delimited JSON, split here (no library buffering),
// reconnected with backoff; after a reconnect it asks for the events it missed (`since`) and tells
// the controller to resync (a dockerd restart loses nothing we rely on, but containers may have
// changed while we were away).
import http from 'node:http';
import { NdjsonSplitter } from './ndjson.js';
import { Backoff, type BackoffOptions } from './timing.js';

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
  timeNano: number;
}

export interface Endpoint {
  socketPath?: string;
  host?: string;
  port?: number;
}

export interface EventStreamHandlers {
  event(e: DockerEvent): void;
  /** Connected (first time or again). `resumed` is true after a reconnect. */
  connected(resumed: boolean): void;
  disconnected(error: Error | undefined): void;
  badLine?(line: string, error: Error): void;
}

export const WATCHED = {
  container: ['create', 'start', 'restart', 'unpause', 'pause', 'die', 'stop', 'kill', 'destroy', 'rename', 'update'],
  network: ['create', 'destroy', 'remove', 'connect', 'disconnect'],
} as const;

export function isWatched(e: DockerEvent): boolean {
  const list = (WATCHED as Record<string, readonly string[]>)[e.Type];
  // `exec_start: ...` and `health_status: ...` carry a suffix; none of them matter here.
  return !!list && list.includes(e.Action);
}

function isEvent(v: unknown): v is DockerEvent {
  const o = v as DockerEvent;
  return !!o && typeof o === 'object' && typeof o.Type === 'string' && typeof o.Action === 'string' && !!o.Actor && typeof o.Actor.ID === 'string';
}

export class DockerEventStream {
  private req: http.ClientRequest | undefined;
  private stopped = false;
  private lastTimeNano = 0;
  private timer: NodeJS.Timeout | undefined;
  private backoff: Backoff;
  private everConnected = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly handlers: EventStreamHandlers,
    backoff: BackoffOptions = {},
  ) {
    this.backoff = new Backoff(backoff);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.req?.destroy();
    this.req = undefined;
  }

  /** Nanoseconds of the last event seen (used as `since` on reconnect). */
  get lastSeen(): number {
    return this.lastTimeNano;
  }

  private path(): string {
    const q = new URLSearchParams();
    q.set('filters', JSON.stringify({ type: ['container', 'network'] }));
    if (this.lastTimeNano > 0) {
      // `since` takes seconds with a fractional part; ask for a little before the last event (duplicates are harmless).
      const s = Math.floor(this.lastTimeNano / 1e9) - 1;
      q.set('since', String(Math.max(0, s)));
    }
    return `/events?${q.toString()}`;
  }

  private connect(): void {
    if (this.stopped) return;
    const resumed = this.everConnected;
    let failed = false;
    const fail = (err: Error | undefined) => {
      if (failed) return;
      failed = true;
      this.req = undefined;
      this.handlers.disconnected(err);
      if (this.stopped) return;
      const delay = this.backoff.next();
      this.timer = setTimeout(() => this.connect(), delay);
      this.timer.unref?.();
    };
    const req = http.request(
      { ...this.endpoint, path: this.path(), method: 'GET', headers: { Accept: 'application/json' } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          fail(new Error(`GET /events answered ${res.statusCode}`));
          return;
        }
        this.everConnected = true;
        this.backoff.reset();
        this.handlers.connected(resumed);
        const splitter = new NdjsonSplitter(
          (v) => {
            if (!isEvent(v)) return;
            if (typeof v.timeNano === 'number' && v.timeNano > this.lastTimeNano) this.lastTimeNano = v.timeNano;
            this.handlers.event(v);
          },
          (line, e) => this.handlers.badLine?.(line, e),
        );
        res.on('data', (c: Buffer) => splitter.push(c));
        res.on('end', () => {
          splitter.end();
          fail(new Error('event stream ended'));
        });
        res.on('error', (e) => fail(e));
        res.on('close', () => fail(new Error('event stream closed')));
      },
    );
    req.on('error', (e) => fail(e));
    req.end();
    this.req = req;
  }
}

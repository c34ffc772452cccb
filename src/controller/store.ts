// The controller's state in an embedded SQLite database (better-sqlite3) under the state directory:
// the last good policy (so a restart with a broken policy file keeps enforcing the previous one),
// the last applied ruleset, the history of applies, drift repairs and violations.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { PolicySet } from '../model/ir.js';
import type { RulesetPlan } from '../enforce/plan-model.js';

export const DB_FILE = 'controller.sqlite';
const HISTORY_KEEP = 1000;

export interface ApplyRecord {
  id?: number;
  at: string;
  reason: string;
  mode: string;
  ok: boolean;
  durationMs: number;
  error?: string;
  endpoints: number;
  detail?: string;
}

export interface EventRecord {
  id?: number;
  at: string;
  kind: string;
  message: string;
}

export interface LastGoodPolicy {
  at: string;
  files: { file: string; sha256: string }[];
  policySet: PolicySet;
}

export interface LastApplied {
  at: string;
  backend: string;
  target: string;
  plan: RulesetPlan;
}

export class StateStore {
  readonly db: Database.Database;
  readonly path: string;

  constructor(stateDir: string, readonly = false) {
    if (!readonly) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.path = join(stateDir, DB_FILE);
    this.db = new Database(this.path, { readonly, fileMustExist: readonly, timeout: 5000 });
    if (readonly) return;
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS applies (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, reason TEXT NOT NULL, mode TEXT NOT NULL,
        ok INTEGER NOT NULL, duration_ms REAL NOT NULL, error TEXT, endpoints INTEGER NOT NULL, detail TEXT);
      CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
    `);
  }

  private put(key: string, value: unknown): void {
    this.db.prepare('INSERT INTO kv(key, value, at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, at = excluded.at').run(key, JSON.stringify(value), new Date().toISOString());
  }

  private get<T>(key: string): T | undefined {
    const row = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  saveGoodPolicy(p: LastGoodPolicy): void {
    this.put('last_good_policy', p);
  }
  lastGoodPolicy(): LastGoodPolicy | undefined {
    return this.get<LastGoodPolicy>('last_good_policy');
  }

  saveApplied(a: LastApplied): void {
    this.put('last_applied', a);
  }
  lastApplied(): LastApplied | undefined {
    return this.get<LastApplied>('last_applied');
  }

  /** Free-form JSON status written by the running controller (read by `moat status` when the daemon is down). */
  saveStatus(s: unknown): void {
    this.put('status', s);
  }
  status<T>(): T | undefined {
    return this.get<T>('status');
  }

  recordApply(r: ApplyRecord): void {
    this.db
      .prepare('INSERT INTO applies(at, reason, mode, ok, duration_ms, error, endpoints, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.at, r.reason, r.mode, r.ok ? 1 : 0, r.durationMs, r.error ?? null, r.endpoints, r.detail ?? null);
    this.db.prepare('DELETE FROM applies WHERE id <= (SELECT MAX(id) FROM applies) - ?').run(HISTORY_KEEP);
  }

  applies(limit = 20): ApplyRecord[] {
    const rows = this.db.prepare('SELECT * FROM applies ORDER BY id DESC LIMIT ?').all(limit) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r.id as number,
      at: r.at as string,
      reason: r.reason as string,
      mode: r.mode as string,
      ok: r.ok === 1,
      durationMs: r.duration_ms as number,
      error: (r.error as string | null) ?? undefined,
      endpoints: r.endpoints as number,
      detail: (r.detail as string | null) ?? undefined,
    }));
  }

  recordEvent(kind: string, message: string): void {
    this.db.prepare('INSERT INTO events(at, kind, message) VALUES (?, ?, ?)').run(new Date().toISOString(), kind, message);
    this.db.prepare('DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?').run(HISTORY_KEEP);
  }

  events(limit = 20, kind?: string): EventRecord[] {
    const rows = (kind
      ? this.db.prepare('SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?').all(kind, limit)
      : this.db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?').all(limit)) as EventRecord[];
    return rows;
  }

  close(): void {
    this.db.close();
  }
}

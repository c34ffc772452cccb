// Small timing helpers: exponential backoff with jitter, a debouncer with a maximum wait, and
// duration parsing for options (`500ms`, `30s`, `5m`).

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 0..1: the delay is multiplied by a random factor in [1 - jitter, 1]. */
  jitter?: number;
}

export class Backoff {
  private attempt = 0;
  constructor(
    private readonly o: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {}
  /** The delay before the next attempt; grows until `maxMs`. */
  next(): number {
    const initial = this.o.initialMs ?? 250;
    const max = this.o.maxMs ?? 10_000;
    const base = Math.min(max, initial * Math.pow(this.o.factor ?? 2, this.attempt));
    this.attempt = Math.min(this.attempt + 1, 60);
    const j = this.o.jitter ?? 0.2;
    return Math.round(base * (1 - j * this.random()));
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}

/**
 * Collects triggers and fires once the stream has been quiet for `quietMs`, or at the latest
 * `maxWaitMs` after the first trigger of a burst (so a steady stream of events cannot starve it).
 */
export class Debouncer {
  private timer: NodeJS.Timeout | undefined;
  private firstAt = 0;
  constructor(
    private readonly fire: () => void,
    private readonly quietMs: number,
    private readonly maxWaitMs: number,
    private readonly now: () => number = Date.now,
  ) {}
  trigger(): void {
    const t = this.now();
    if (!this.timer) this.firstAt = t;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstAt + this.maxWaitMs - t));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fire();
    }, wait);
  }
  get pending(): boolean {
    return this.timer !== undefined;
  }
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** `250ms`, `30s`, `5m`, `1h`, or a bare number of milliseconds. Undefined when invalid. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  const v = Math.round(n * mult);
  return Number.isFinite(v) ? v : undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

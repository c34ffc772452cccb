// Young-generation garbage collection between events, off the event path.
//
// At 10,000 endpoints one container event allocates about 2 MB (the next plan's copies of the
// address sets and verdict maps, the diff, the netlink batch), so V8's scavenger runs every few
// events, and a scavenge (2-10 ms here) that lands inside an event's compile, diff or netlink wait
// is added to that event's time to enforcement. The controller instead collects the young
// generation right after an event's change is in the kernel, when no other event waits: the next
// event then starts with an empty young generation and, allocating far less than its size (16 MB),
// runs without a scavenge. The plan of the previous event is still live then, and garbage at the
// next collection, so it is not promoted to the old generation for it.
//
// V8 exposes the collector only with `--expose-gc`; the flag is set at run time and the function
// taken from a fresh context (the documented `v8.setFlagsFromString` + `vm` route), so `moat` needs
// no node flags. Where that is refused, collection stays V8's own.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: Gc | null | undefined;

function collector(): Gc | null {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const f = runInNewContext('gc') as unknown;
      gc = typeof f === 'function' ? (f as Gc) : null;
    } catch {
      gc = null;
    }
  }
  return gc;
}

/** Collects the young generation now; its duration in ms, or undefined when V8 does not allow it. */
export function collectYoung(): number | undefined {
  const f = collector();
  if (!f) return undefined;
  const t0 = process.hrtime.bigint();
  f({ type: 'minor' });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

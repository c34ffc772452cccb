// Runs inside a container's network namespace (nsenter -t PID -n node probe-loop.mjs ...): tries TCP
// connections to the given targets over and over until the time is up, and prints one JSON line with
// every connection that succeeded (target and time). Bounded: duration and per-try timeout.
//   node probe-loop.mjs DURATION_MS TIMEOUT_MS host:port [host:port ...]
// DURATION_MS 0: exactly one try per target.
import net from 'node:net';

const [durationMs, timeoutMs, ...targets] = process.argv.slice(2);
const oncePass = Number(durationMs) === 0;
const until = Date.now() + Math.min(Number(durationMs), 600_000);
const tmo = Math.min(Number(timeoutMs), 5000);
const successes = [];
let tries = 0;

function once(target) {
  const i = target.lastIndexOf(':');
  const host = target.slice(0, i);
  const port = Number(target.slice(i + 1));
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(tmo, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

async function worker(list) {
  if (oncePass) {
    for (const t of list) {
      tries++;
      if (await once(t)) successes.push({ target: t, at: Date.now() });
    }
    return;
  }
  while (Date.now() < until) {
    for (const t of list) {
      if (Date.now() >= until) break;
      tries++;
      if (await once(t)) successes.push({ target: t, at: Date.now() });
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

// SIGTERM ends the loop early with the results so far.
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ tries, successes, stopped: true })}\n`);
  process.exit(0);
});

// A few workers in parallel so that each target is tried often.
const workers = Math.min(32, targets.length);
const chunks = Array.from({ length: workers }, (_, w) => targets.filter((_, i) => i % workers === w)).filter((c) => c.length);
await Promise.all(chunks.map(worker));
process.stdout.write(`${JSON.stringify({ tries, successes })}\n`);

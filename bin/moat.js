#!/usr/bin/env node
// Launcher. Runs the compiled CLI (dist/, from `npm run build`) when it is at least as new as every
// TypeScript source; otherwise the sources through tsx, so a fresh clone needs no build step. The
// compiled CLI starts faster, and a long-running `moat run` idles without tsx's loader thread (about
// 0.3% of a core on its own). MOAT_FROM_SOURCE=1 forces the sources.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'src', 'cli', 'main.js');

/** Newest modification time under a directory (bounded walk). */
function newest(dir, depth = 0) {
  let t = 0;
  if (depth > 8) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, depth + 1));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

if (process.env.MOAT_FROM_SOURCE !== '1' && existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) {
  await import(new URL(`file://${built}`).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}

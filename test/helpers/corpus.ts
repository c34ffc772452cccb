// The shared Compose corpus (../shared/compose-corpus beside the repository), for tests and benchmarks.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS = join(dirname(fileURLToPath(import.meta.url)), '../../../shared/compose-corpus');
export const HAVE_CORPUS = existsSync(join(CORPUS, 'MANIFEST.md'));

/** Every *.yml / *.yaml under `dir`, sorted, recursively. */
export function composeFilesUnder(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) composeFilesUnder(p, out);
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { UserError } from '../../../src/model/diagnostics.js';

const made: string[] = [];

/** Writes `files` (relative path -> text) into a fresh directory named `<prefix>-xxxx` and returns the directory. */
export function writeProject(files: Record<string, string>, prefix = 'proj'): string {
  const root = mkdtempSync(join(tmpdir(), `moat-compose-${prefix}-`));
  made.push(root);
  for (const [rel, text] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  return root;
}

export function cleanupProjects(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Runs `fn` and returns the UserError it throws (fails the test otherwise). */
export async function userErrorOf(fn: () => unknown): Promise<UserError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof UserError) return e;
    throw new Error(`expected a UserError, got ${String(e)}`);
  }
  throw new Error('expected a UserError, nothing was thrown');
}

// `moat demo`: the seed's three-tier example (examples/three-tier/compose.yaml), resolved statically
// and brought up on the local engine. The CLI command lives in src/cli/; these are its building blocks.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { userError } from '../model/diagnostics.js';
import type { World } from '../model/world.js';
import { composeToWorld, loadComposeProject } from '../sources/compose/index.js';
import { bringUpWorld, type BringUpOptions, type BroughtUp } from './bringup.js';

export { bringUpWorld, listenerCommand, removeProject, tearDownProject, MOAT_DEMO_LABEL, type BringUpOptions, type BroughtUp } from './bringup.js';
export { BUSYBOX_IMAGE, ensureBusyboxImage, imageExists } from './images.js';

export const DEMO_PROJECT = 'three-tier';
const DEMO_RELATIVE = join('examples', 'three-tier', 'compose.yaml');

/** The demo's Compose file, found from this module upwards (works from src/ and from a build in dist/). */
export function demoComposeFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, DEMO_RELATIVE);
    if (existsSync(candidate)) return resolve(candidate);
    dir = dirname(dir);
  }
  throw userError('demo.missing', `cannot find ${DEMO_RELATIVE} next to moat`, { fix: 'reinstall moat, or run it from its repository' });
}

/** The demo as a static World (the Compose resolver's view; addresses chosen by Docker stay symbolic). */
export async function loadDemoWorld(options: { projectName?: string } = {}): Promise<World> {
  const project = await loadComposeProject({ files: [demoComposeFile()], projectName: options.projectName });
  return composeToWorld(project);
}

/** Brings the demo up (replacing an earlier one) and returns the live world and a teardown. */
export async function bringUpDemo(opts: BringUpOptions & { projectName?: string } = {}): Promise<BroughtUp> {
  const world = await loadDemoWorld({ projectName: opts.projectName });
  return bringUpWorld(world, opts);
}

// One entry point for the three sources of a World: a snapshot, Compose files, or the live engine.
import type { SourcePos } from '../model/diagnostics.js';
import type { Endpoint, World } from '../model/world.js';
import type { LabelPositions } from '../policy/labels/index.js';
import { composeToWorld, loadComposeProject } from './compose/index.js';
import { loadDockerWorld } from './docker/index.js';
import { readSnapshot } from './snapshot/index.js';

export interface WorldOptions {
  snapshot?: string;
  composeFiles?: string[];
  projectName?: string;
  projectDirectory?: string;
  profiles?: string[];
  envFiles?: string[];
  dockerHost?: string;
}

export interface LoadedWorld {
  world: World;
  kind: 'snapshot' | 'compose' | 'docker';
  /** Where each endpoint's labels are written (Compose sources). */
  labelPositions?: LabelPositions;
}

export async function loadWorld(options: WorldOptions): Promise<LoadedWorld> {
  if (options.snapshot) return { world: readSnapshot(options.snapshot), kind: 'snapshot' };
  if (options.composeFiles && options.composeFiles.length) {
    const project = await loadComposeProject({
      files: options.composeFiles,
      projectName: options.projectName,
      projectDirectory: options.projectDirectory,
      profiles: options.profiles,
      envFiles: options.envFiles,
    });
    const world = composeToWorld(project);
    const labelPositions = (endpoint: Endpoint, key: string): SourcePos | undefined =>
      endpoint.composeService ? project.positionOf(['services', endpoint.composeService, 'labels', key]) : undefined;
    return { world, kind: 'compose', labelPositions };
  }
  return { world: await loadDockerWorld({ dockerHost: options.dockerHost }), kind: 'docker' };
}

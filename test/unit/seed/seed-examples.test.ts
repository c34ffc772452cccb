// The seed's examples (first seed, sections 2.2, 2.3, 4.3, 6.2) as fixtures with expected matrices,
// worked out by hand from the semantics in docs/semantics.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { analyze } from '../../../src/analysis/reachability.js';
import { renderMatrix } from '../../../src/analysis/render.js';
import { compileLabels } from '../../../src/policy/labels/index.js';
import { composeToWorld, loadComposeProject } from '../../../src/sources/compose/index.js';
import { readSnapshot } from '../../../src/sources/snapshot/index.js';
import type { World } from '../../../src/model/world.js';

const dir = (name: string) => fileURLToPath(new URL(`../../fixtures/seed/${name}`, import.meta.url));
const sorted = (text: string) => text.split('\n').filter(Boolean).sort();

function matrixOf(world: World): string {
  const { policySet, diagnostics } = compileLabels(world);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return renderMatrix(analyze(world, policySet), 'text');
}

async function composeWorld(file: string, project: string): Promise<World> {
  return composeToWorld(await loadComposeProject({ files: [dir(file)], projectName: project, env: {} }));
}

test('seed 2.2: docker run on three networks', () => {
  const world = readSnapshot(dir('seed-2.2.snapshot.json'));
  assert.deepEqual(sorted(matrixOf(world)), sorted(readFileSync(dir('seed-2.2.expected.txt'), 'utf8')));
});

test('seed 2.3: Compose network isolation with an internal database network', async () => {
  const world = await composeWorld('seed-2.3.compose.yaml', 'seed23');
  assert.deepEqual(sorted(matrixOf(world)), sorted(readFileSync(dir('seed-2.3.expected.txt'), 'utf8')));
});

test('seed 4.3: reverse proxy as the only published entry (nginx is not on the apps\' network)', async () => {
  const world = await composeWorld('seed-4.3.compose.yaml', 'seed43');
  assert.deepEqual(sorted(matrixOf(world)), sorted(readFileSync(dir('seed-4.3.expected.txt'), 'utf8')));
});

test('seed 6.2: label security groups', async () => {
  const world = await composeWorld('seed-6.2.compose.yaml', 'seed62');
  assert.deepEqual(sorted(matrixOf(world)), sorted(readFileSync(dir('seed-6.2.expected.txt'), 'utf8')));
});

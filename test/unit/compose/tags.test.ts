// YAML anchors/aliases (closest preceding anchor) and the Compose merge tags !reset and !override.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadComposeProject } from '../../../src/sources/compose/index.js';
import { parseYamlTree } from '../../../src/sources/compose/tree.js';
import { cleanupProjects, userErrorOf, writeProject } from './helpers.js';

after(cleanupProjects);

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

test('an anchor name redefined later: each alias takes the closest anchor before it', () => {
  const text = `x-a: &net
  restart: always
services:
  one:
    <<: *net
    image: one
x-b: &net
  restart: "no"
more:
  two:
    <<: *net
  three: *net
  list: [&v 1, *v, &v 2, *v]
`;
  const t = parseYamlTree(text, 'c.yaml') as Record<string, Record<string, Record<string, unknown>>>;
  assert.equal(t.services.one.restart, 'always');
  assert.equal(t.more.two.restart, 'no');
  assert.deepEqual(t.more.three, { restart: 'no' });
  assert.deepEqual(t.more.list, [1, 1, 2, 2]);
});

test('an alias used before its anchor is a diagnostic at the alias', async () => {
  const text = 'a: *late\nb: &late 1\n';
  const e = await userErrorOf(() => parseYamlTree(text, 'c.yaml'));
  assert.match(e.diagnostics[0].message, /unknown YAML alias \*late/);
  assert.equal(e.diagnostics[0].pos?.line, 1);
});

test('a self-referencing anchor stops at the nesting limit, no stack overflow', async () => {
  const e = await userErrorOf(() => parseYamlTree('a: &r [1, *r]\n', 'c.yaml'));
  assert.match(e.diagnostics[0].message, /too large or too deeply nested/);
});

test('many aliases to a large anchor resolve quickly (anchors collected once)', () => {
  let text = 'x-big: &big\n';
  for (let i = 0; i < 300; i++) text += `  k${i}: v${i}\n`;
  text += 'services:\n';
  for (let i = 0; i < 400; i++) text += `  s${i}:\n    <<: *big\n    image: img${i}\n`;
  const t = parseYamlTree(text, 'c.yaml') as Record<string, Record<string, Record<string, unknown>>>;
  assert.equal(Object.keys(t.services).length, 400);
  assert.equal(t.services.s399.k299, 'v299');
  assert.equal(t.services.s0.image, 'img0');
});

const base = `services:
  web:
    image: nginx
    ports: ["80:80", "443:443"]
    environment: {A: "1", B: "2"}
    cap_add: [NET_ADMIN]
    networks:
      front:
        aliases: [a]
networks:
  front: {}
`;

async function load(files: Record<string, string>, order: string[]) {
  const dir = writeProject(files, 'tags');
  return loadComposeProject({ files: order.map((f) => join(dir, f)), env: {} });
}

test('!reset removes the attribute from the merged model', async () => {
  const over = `services:
  web:
    ports: !reset []
    cap_add: !reset null
    environment: !reset {}
`;
  const p = await load({ 'a.yaml': base, 'b.yaml': over }, ['a.yaml', 'b.yaml']);
  assert.deepEqual(p.services.web.ports, []);
  assert.deepEqual(p.services.web.capAdd, []);
  assert.deepEqual(p.services.web.environment, {});
  assert.equal(p.services.web.image, 'nginx', 'untagged attributes still come from the base');
});

test('!override replaces sequences and mappings instead of appending or merging', async () => {
  const over = `services:
  web:
    ports: !override ["127.0.0.1:8080:80"]
    environment: !override {B: "20"}
    networks:
      front: !override
        aliases: [b]
`;
  const p = await load({ 'a.yaml': base, 'b.yaml': over }, ['a.yaml', 'b.yaml']);
  const web = p.services.web;
  assert.deepEqual(web.ports.map((x) => [x.hostIp, x.hostPort, x.target]), [['127.0.0.1', 8080, 80]]);
  assert.deepEqual(web.environment, { B: '20' });
  assert.deepEqual(web.networks.front.aliases, ['b']);
  assert.equal(p.positionOf(['services', 'web', 'ports'])?.file.endsWith('b.yaml'), true);
  assert.equal(p.positionOf(['services', 'web', 'ports'])?.line, lineOf(over, 'ports'));
});

test('without tags the same override appends and merges (the tags make the difference)', async () => {
  const over = `services:
  web:
    ports: ["127.0.0.1:8080:80"]
    environment: {B: "20"}
`;
  const p = await load({ 'a.yaml': base, 'b.yaml': over }, ['a.yaml', 'b.yaml']);
  assert.equal(p.services.web.ports.length, 3);
  assert.deepEqual(p.services.web.environment, { A: '1', B: '20' });
});

test('a later file appends again after a !reset; !reset in the only file drops the value', async () => {
  const reset = 'services:\n  web:\n    ports: !reset []\n';
  const add = 'services:\n  web:\n    ports: ["127.0.0.1:9000:9000"]\n';
  const p = await load({ 'a.yaml': base, 'b.yaml': reset, 'c.yaml': add }, ['a.yaml', 'b.yaml', 'c.yaml']);
  assert.deepEqual(p.services.web.ports.map((x) => x.hostPort), [9000]);
  const single = 'services:\n  web:\n    image: x\n    ports: !reset ["80:80"]\n    expose: !override ["9000"]\n';
  const q = await load({ 'a.yaml': single }, ['a.yaml']);
  assert.deepEqual(q.services.web.ports, []);
  assert.deepEqual(q.services.web.expose.map((e) => e.port), [9000]);
});

test('!override on a plain scalar keeps its YAML type', () => {
  const t = parseYamlTree('a: !override 8080\nb: !override true\nc: !override "8080"\nd: !override text\n', 'c.yaml');
  assert.deepEqual(t, { a: 8080, b: true, c: '8080', d: 'text' });
});

test('!override applies to extends too', async () => {
  const text = `services:
  base:
    image: nginx
    ports: ["80:80"]
  child:
    extends: base
    ports: !override ["127.0.0.1:81:80"]
`;
  const p = await load({ 'a.yaml': text }, ['a.yaml']);
  assert.deepEqual(p.services.child.ports.map((x) => [x.hostIp, x.hostPort]), [['127.0.0.1', 81]]);
  assert.equal(p.services.base.ports.length, 1);
});

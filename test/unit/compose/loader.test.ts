import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadComposeProject } from '../../../src/sources/compose/index.js';
import { cleanupProjects, userErrorOf, writeProject } from './helpers.js';

after(cleanupProjects);

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

test('several -f files merge with Compose rules', async () => {
  const base = `services:
  web:
    image: nginx:1
    command: ["serve", "--base"]
    entrypoint: /base.sh
    ports: ["80:80"]
    expose: ["9000"]
    dns: [1.1.1.1]
    labels: ["a=1", "b=2"]
    environment: ["A=1", "B=2"]
    networks: [front]
    cap_add: [NET_ADMIN]
networks:
  front: {}
  back: {}
`;
  const over = `services:
  web:
    image: nginx:2
    command: ["serve", "--over"]
    ports:
      - "127.0.0.1:8443:443"
    expose: ["9001"]
    dns: [8.8.8.8]
    labels:
      b: "20"
      c: "3"
    environment:
      B: "20"
      C: "3"
    networks:
      back:
        aliases: [api]
    cap_add: [NET_ADMIN, SYS_TIME]
`;
  const dir = writeProject({ 'compose.yaml': base, 'override.yaml': over }, 'merge');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml'), join(dir, 'override.yaml')], env: {} });
  const web = p.services.web;
  assert.equal(web.image, 'nginx:2');
  assert.deepEqual(web.command, ['serve', '--over']);
  assert.equal(web.entrypoint, '/base.sh');
  assert.deepEqual(web.ports.map((x) => [x.hostIp, x.hostPort, x.target]), [['', 80, 80], ['127.0.0.1', 8443, 443]]);
  assert.deepEqual(web.expose.map((e) => e.port), [9000, 9001]);
  assert.deepEqual(web.config.dns, ['1.1.1.1', '8.8.8.8']);
  assert.deepEqual(web.labels, { a: '1', b: '20', c: '3' });
  assert.deepEqual(web.environment, { A: '1', B: '20', C: '3' });
  assert.deepEqual(Object.keys(web.networks).sort(), ['back', 'front']);
  assert.deepEqual(web.networks.back.aliases, ['api']);
  assert.deepEqual(web.capAdd, ['NET_ADMIN', 'SYS_TIME']);
  // Positions: the appended port comes from the override file, the first from the base file.
  assert.deepEqual(p.positionOf(['services', 'web', 'ports', 1]), { file: join(dir, 'override.yaml'), line: lineOf(over, '127.0.0.1:8443'), col: 9 });
  assert.deepEqual(p.positionOf(['services', 'web', 'ports', 0]), { file: join(dir, 'compose.yaml'), line: lineOf(base, 'ports:'), col: 13 });
  assert.equal(p.positionOf(['services', 'web', 'image'])?.file, join(dir, 'override.yaml'));
  assert.equal(p.positionOf(['services', 'web', 'entrypoint'])?.line, lineOf(base, 'entrypoint'));
  // environment written as a list in the base and a map in the override: each key points at its own line.
  assert.deepEqual(p.positionOf(['services', 'web', 'environment', 'A']), { file: join(dir, 'compose.yaml'), line: lineOf(base, 'environment'), col: 19 });
  assert.deepEqual(p.positionOf(['services', 'web', 'environment', 'C']), { file: join(dir, 'override.yaml'), line: lineOf(over, 'C: "3"'), col: 10 });
  assert.equal(p.positionOf(['services', 'web', 'networks', 'back', 'aliases'])?.line, lineOf(over, 'aliases'));
  assert.equal(p.positionOf(['services', 'web'])?.line, lineOf(base, 'web:') + 1);
});

test('.env, process environment precedence, project name sources', async () => {
  const compose = 'name: from-file\nservices:\n  app:\n    image: "img:${TAG}"\n    ports: ["${PORT:-1}:80"]\n';
  const dir = writeProject({ 'compose.yaml': compose, '.env': 'TAG=dotenv\nPORT=5000\n' }, 'env');
  const f = [join(dir, 'compose.yaml')];
  let p = await loadComposeProject({ files: f, env: {} });
  assert.equal(p.services.app.image, 'img:dotenv');
  assert.equal(p.services.app.ports[0].hostPort, 5000);
  assert.equal(p.name, 'from-file');
  p = await loadComposeProject({ files: f, env: { TAG: 'process', COMPOSE_PROJECT_NAME: 'fromenv' } });
  assert.equal(p.services.app.image, 'img:process');
  assert.equal(p.name, 'fromenv');
  p = await loadComposeProject({ files: f, env: { COMPOSE_PROJECT_NAME: 'fromenv' }, projectName: 'flag' });
  assert.equal(p.name, 'flag');
  const other = writeProject({ 'other.env': 'TAG=other\n' }, 'envfile');
  p = await loadComposeProject({ files: f, env: {}, envFiles: [join(other, 'other.env')] });
  assert.equal(p.services.app.image, 'img:other');
  assert.equal(p.services.app.ports[0].hostPort, 1);
  // Without name: the directory's basename, normalised (lower case, only [a-z0-9_-]).
  const dir2 = writeProject({ 'My.App Dir/compose.yaml': 'services:\n  a:\n    image: x\n' }, 'name');
  p = await loadComposeProject({ files: [join(dir2, 'My.App Dir/compose.yaml')], env: {} });
  assert.equal(p.name, 'myappdir');
  // The project name is offered to interpolation as COMPOSE_PROJECT_NAME when the environment has none.
  const dir3 = writeProject({ 'Proj3/compose.yaml': 'services:\n  a:\n    image: "img-${COMPOSE_PROJECT_NAME}"\n' }, 'pname');
  p = await loadComposeProject({ files: [join(dir3, 'Proj3/compose.yaml')], env: {} });
  assert.equal(p.services.a.image, 'img-proj3');
  p = await loadComposeProject({ files: [join(dir3, 'Proj3/compose.yaml')], env: {}, projectName: 'given' });
  assert.equal(p.services.a.image, 'img-given');
  await userErrorOf(() => loadComposeProject({ files: f, env: {}, projectName: 'Bad Name' }));
});

test('required variable: error with position and the message of the file', async () => {
  const compose = 'services:\n  db:\n    image: postgres\n    environment:\n      PW: "${DB_PASSWORD:?set the db password}"\n';
  const dir = writeProject({ 'compose.yaml': compose }, 'req');
  const e = await userErrorOf(() => loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} }));
  const d = e.diagnostics[0];
  assert.equal(d.message, 'required variable DB_PASSWORD is missing a value: set the db password');
  assert.equal(d.pos?.line, lineOf(compose, 'DB_PASSWORD'));
  assert.equal(d.pos?.file, join(dir, 'compose.yaml'));
  const ok = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: { DB_PASSWORD: 's3cret' } });
  assert.equal(ok.services.db.environment.PW, 's3cret');
});

test('profiles: --profile, COMPOSE_PROFILES (env or .env), *', async () => {
  const compose = 'services:\n  always: {image: a}\n  dbg: {image: b, profiles: [debug]}\n  ops: {image: c, profiles: [ops, debug]}\n';
  const dir = writeProject({ 'compose.yaml': compose }, 'prof');
  const f = [join(dir, 'compose.yaml')];
  const names = async (o: object) => Object.keys((await loadComposeProject({ files: f, env: {}, ...o })).services).sort();
  assert.deepEqual(await names({}), ['always']);
  assert.deepEqual(await names({ profiles: ['ops'] }), ['always', 'ops']);
  assert.deepEqual(await names({ env: { COMPOSE_PROFILES: 'debug' } }), ['always', 'dbg', 'ops']);
  assert.deepEqual(await names({ profiles: ['*'] }), ['always', 'dbg', 'ops']);
  const dir2 = writeProject({ 'compose.yaml': compose, '.env': 'COMPOSE_PROFILES=ops,nothing\n' }, 'prof2');
  const p = await loadComposeProject({ files: [join(dir2, 'compose.yaml')], env: {} });
  assert.deepEqual(Object.keys(p.services).sort(), ['always', 'ops']);
  assert.deepEqual(p.disabledServices, ['dbg']);
});

test('extends: same file and another file (paths relative to that file)', async () => {
  const common = `services:
  base:
    image: base:1
    environment: [FROM_BASE=1, SHARED=base]
    volumes: ["./data:/data"]
    ports: ["9000:9000"]
`;
  const compose = `services:
  tmpl:
    image: tmpl
    labels: {tier: back}
    cap_drop: [ALL]
  a:
    extends: tmpl
    labels: {own: "1"}
  b:
    extends:
      file: lib/common.yml
      service: base
    environment:
      SHARED: mine
  c:
    extends: a
`;
  const dir = writeProject({ 'compose.yaml': compose, 'lib/common.yml': common }, 'ext');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} });
  assert.equal(p.services.a.image, 'tmpl');
  assert.deepEqual(p.services.a.labels, { tier: 'back', own: '1' });
  assert.deepEqual(p.services.a.capDrop, ['ALL']);
  assert.deepEqual(p.services.c.labels, { tier: 'back', own: '1' });
  assert.equal(p.services.b.image, 'base:1');
  assert.deepEqual(p.services.b.environment, { FROM_BASE: '1', SHARED: 'mine' });
  assert.equal(p.services.b.volumes[0].source, join(dir, 'lib', 'data'));
  assert.equal(p.services.b.ports[0].hostPort, 9000);
  assert.equal(p.positionOf(['services', 'b', 'ports', 0])?.file, join(dir, 'lib/common.yml'));
  assert.equal('extends' in p.services.a.config, false);

  const bad = writeProject({ 'compose.yaml': 'services:\n  a:\n    extends: ghost\n' }, 'ext-bad');
  const e = await userErrorOf(() => loadComposeProject({ files: [join(bad, 'compose.yaml')], env: {} }));
  assert.match(e.diagnostics[0].message, /undefined service "ghost"/);
  assert.equal(e.diagnostics[0].pos?.line, 3);
  const cyc = writeProject({ 'compose.yaml': 'services:\n  a: {extends: b}\n  b: {extends: a}\n' }, 'ext-cyc');
  await userErrorOf(() => loadComposeProject({ files: [join(cyc, 'compose.yaml')], env: {} }));
});

test('include: own project directory and env_file', async () => {
  const dir = writeProject(
    {
      'compose.yaml': 'include:\n  - path: sub/compose.yaml\n    env_file: sub/vars.env\n  - other/compose.yaml\nservices:\n  web:\n    image: web\n    depends_on: [db]\n    networks: [shared]\nnetworks:\n  shared: {}\n',
      'sub/compose.yaml': 'services:\n  db:\n    image: "postgres:${PGV}"\n    volumes: ["./pgdata:/var/lib/postgresql/data"]\n',
      'sub/vars.env': 'PGV=16\n',
      'other/compose.yaml': 'services:\n  cache:\n    image: "redis:${RV}"\n',
      'other/.env': 'RV=7\n',
    },
    'inc',
  );
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} });
  assert.deepEqual(Object.keys(p.services).sort(), ['cache', 'db', 'web']);
  assert.equal(p.services.db.image, 'postgres:16');
  assert.equal(p.services.cache.image, 'redis:7');
  assert.equal(p.services.db.volumes[0].source, join(dir, 'sub', 'pgdata'));
  assert.equal(p.positionOf(['services', 'db', 'image'])?.file, join(dir, 'sub/compose.yaml'));
  const conflict = writeProject({ 'compose.yaml': 'include: [sub.yaml]\nservices:\n  db: {image: x}\n', 'sub.yaml': 'services:\n  db: {image: y}\n' }, 'inc-conf');
  await userErrorOf(() => loadComposeProject({ files: [join(conflict, 'compose.yaml')], env: {} }));
});

test('YAML anchors, merge keys (also <<: [*a, *b]) and x- fields', async () => {
  const compose = `x-restart: &restart
  restart: unless-stopped
x-pull: &pull
  pull_policy: never
  restart: "no"
x-env: &env
  A: "1"
x-labels: &labels
  team: core
services:
  one:
    <<: [*restart, *pull]
    image: one
    environment:
      <<: *env
      B: "2"
    labels: *labels
  two:
    <<: *restart
    image: two
    restart: always
`;
  const dir = writeProject({ 'compose.yaml': compose }, 'anch');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} });
  // In a merge list the first mapping wins; explicit keys win over merged ones.
  assert.equal(p.services.one.config.restart, 'unless-stopped');
  assert.equal(p.services.one.config.pull_policy, 'never');
  assert.equal(p.services.two.config.restart, 'always');
  assert.deepEqual(p.services.one.environment, { A: '1', B: '2' });
  assert.deepEqual(p.services.one.labels, { team: 'core' });
  assert.equal(p.warnings.filter((w) => w.code === 'compose.unknown-key').length, 0);
});

test('a file with 150 aliases parses', async () => {
  let text = 'x-common: &common\n  restart: always\nservices:\n';
  for (let i = 0; i < 150; i++) text += `  s${i}:\n    <<: *common\n    image: img${i}\n`;
  const dir = writeProject({ 'compose.yaml': text }, 'alias');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} });
  assert.equal(Object.keys(p.services).length, 150);
  assert.ok(Object.values(p.services).every((s) => s.config.restart === 'always'));
});

test('unknown keys warn, they do not fail', async () => {
  const compose = 'services:\n  a:\n    image: x\n    imgae: y\n    x-mine: 1\nfoo: bar\n';
  const dir = writeProject({ 'compose.yaml': compose }, 'unk');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} });
  const unk = p.warnings.filter((w) => w.code === 'compose.unknown-key');
  assert.equal(unk.length, 2);
  assert.deepEqual(unk.map((w) => w.pos?.line).sort(), [lineOf(compose, 'imgae'), lineOf(compose, 'foo')].sort());
});

test('networks: list and map forms, static addresses, default network, top-level options', async () => {
  const compose = `services:
  a:
    image: a
    networks:
      front:
        ipv4_address: 172.28.0.10
        ipv6_address: fd00:28::10
        aliases: [alpha]
      back:
  b:
    image: b
    networks: [back]
  c:
    image: c
  h:
    image: h
    network_mode: host
  n:
    image: n
    network_mode: none
  s:
    image: s
    network_mode: service:a
  k:
    image: k
    network_mode: container:some-container
networks:
  front:
    driver: bridge
    enable_ipv6: true
    internal: true
    driver_opts:
      com.docker.network.bridge.enable_icc: "false"
    ipam:
      config:
        - subnet: 172.28.0.0/16
          gateway: 172.28.0.1
        - subnet: fd00:28::/64
  back:
    name: custom-back
  ext:
    external: true
    name: outside
  unused: {}
`;
  const dir = writeProject({ 'compose.yaml': compose }, 'nets');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {}, projectName: 'shop' });
  assert.deepEqual(p.services.a.networks.front, { aliases: ['alpha'], ipv4Address: '172.28.0.10', ipv6Address: 'fd00:28::10' });
  assert.deepEqual(p.services.a.networks.back, { aliases: [] });
  assert.deepEqual(Object.keys(p.services.b.networks), ['back']);
  assert.deepEqual(Object.keys(p.services.c.networks), ['default']);
  assert.deepEqual(p.services.h.networks, {});
  assert.equal(p.services.h.networkMode, 'host');
  assert.equal(p.services.s.networkMode, 'service:a');
  assert.equal(p.networks.front.name, 'shop_front');
  assert.equal(p.networks.back.name, 'custom-back');
  assert.equal(p.networks.default.name, 'shop_default');
  assert.equal(p.networks.front.internal, true);
  assert.equal(p.networks.front.enableIpv6, true);
  assert.deepEqual(p.networks.front.ipam.config.map((c) => c.subnet), ['172.28.0.0/16', 'fd00:28::/64']);
  assert.equal(p.networks.front.driverOpts['com.docker.network.bridge.enable_icc'], 'false');
  assert.equal(p.networks.unused, undefined);
  assert.equal(p.networks.ext, undefined);
});

test('external network keeps its own name', async () => {
  const dir = writeProject({ 'compose.yaml': 'services:\n  a:\n    image: a\n    networks: [proxy, legacy]\nnetworks:\n  proxy:\n    external: true\n  legacy:\n    external:\n      name: old-net\n' }, 'ext-net');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {}, projectName: 'x' });
  assert.equal(p.networks.proxy.name, 'proxy');
  assert.equal(p.networks.proxy.external, true);
  assert.equal(p.networks.legacy.name, 'old-net');
});

test('user errors carry file:line:col and a fix', async () => {
  const cases: [string, RegExp, string][] = [
    ['services:\n  a:\n    image: [x\n  b: 1\n', /malformed YAML/, ''],
    ['services:\n  a:\n    image: x\n    ports: ["8080:0"]\n', /port/, '8080:0'],
    ['services:\n  a:\n    image: x\n    ports:\n      - 70000:80\n', /1-65535/, '70000'],
    ['services:\n  a:\n    image: x\n    network_mode: service:ghost\n', /undefined service "ghost"/, 'network_mode'],
    ['services:\n  a:\n    image: x\n    depends_on: [ghost]\n', /undefined service "ghost"/, 'ghost'],
    ['services:\n  a:\n    image: x\n    networks: [nowhere]\n', /undefined network "nowhere"/, 'nowhere'],
    ['services:\n  a:\n    image: x\n    network_mode: host\n    networks: [default]\n', /mutually exclusive/, 'network_mode'],
  ];
  for (const [text, re, needle] of cases) {
    const dir = writeProject({ 'compose.yaml': text }, 'errs');
    const e = await userErrorOf(() => loadComposeProject({ files: [join(dir, 'compose.yaml')], env: {} }));
    const d = e.diagnostics[0];
    assert.match(d.message, re, text);
    assert.equal(d.pos?.file, join(dir, 'compose.yaml'));
    assert.ok((d.pos?.line ?? 0) > 0, text);
    if (needle) assert.equal(d.pos?.line, lineOf(text, needle), text);
    assert.ok(d.fix, text);
  }
  const e = await userErrorOf(() => loadComposeProject({ files: ['/nonexistent/moat-compose.yaml'], env: {} }));
  assert.match(e.diagnostics[0].message, /not found/);
  assert.equal(e.diagnostics[0].pos?.file, '/nonexistent/moat-compose.yaml');
});

test('service fields an auditor reads', async () => {
  const compose = `services:
  a:
    image: x
    privileged: "\${PRIV:-true}"
    read_only: true
    user: 0
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    security_opt: ["label=disable"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - data:/data
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
    environment:
      FROM_HOST:
      MISSING:
    deploy:
      replicas: 3
    container_name: the-a
volumes:
  data: {}
`;
  const dir = writeProject({ 'compose.yaml': compose }, 'aud');
  const p = await loadComposeProject({ files: [join(dir, 'compose.yaml')], env: { FROM_HOST: 'hv' } });
  const a = p.services.a;
  assert.equal(a.privileged, true);
  assert.equal(a.readOnly, true);
  assert.equal(a.user, '0');
  assert.deepEqual(a.securityOpt, ['label=disable']);
  assert.deepEqual(a.volumes.map((v) => [v.type, v.source, v.target, v.readOnly]), [
    ['bind', '/var/run/docker.sock', '/var/run/docker.sock', true],
    ['volume', 'data', '/data', false],
    ['bind', join(dir, 'conf'), '/conf', true],
  ]);
  assert.deepEqual(a.environment, { FROM_HOST: 'hv', MISSING: null });
  assert.equal(a.replicas, 3);
  assert.equal(a.containerName, 'the-a');
});

test('without -f: compose.yaml and its override in the project directory', async () => {
  const dir = writeProject({ 'compose.yaml': 'services:\n  a:\n    image: one\n', 'compose.override.yaml': 'services:\n  a:\n    image: two\n' }, 'default-files');
  const p = await loadComposeProject({ files: [], projectDirectory: dir, env: {} });
  assert.equal(p.services.a.image, 'two');
  assert.deepEqual(p.files, [join(dir, 'compose.yaml'), join(dir, 'compose.override.yaml')]);
  const empty = writeProject({ 'README': 'nothing' }, 'no-files');
  await userErrorOf(() => loadComposeProject({ files: [], projectDirectory: empty, env: {} }));
});

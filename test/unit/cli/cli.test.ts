// The CLI as a user meets it: exit codes, messages with file:line:col, no stack traces, formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SEED62 = join(ROOT, 'test/fixtures/seed/seed-6.2.compose.yaml');

function moat(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/moat.js'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function noStackTrace(stderr: string) {
  assert.doesNotMatch(stderr, /^\s+at .+\(.+:\d+:\d+\)$/m, 'no stack trace');
  assert.doesNotMatch(stderr, /internal error/);
}

const tmp = mkdtempSync(join(tmpdir(), 'moat-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function composeWithLabel(name: string, value: string): string {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, `services:\n  web:\n    image: nginx\n    labels:\n      security.group: web\n      security.allow.inbound: ${JSON.stringify(value)}\n`);
  return file;
}

test('bad label values: clear error at file:line:col, exit 2, no crash', () => {
  const cases: [string, string, RegExp][] = [
    ['semicolon', '80; rm -rf /', /unexpected character ";"/],
    ['newline', '80\n443', /unexpected character \\n/],
    ['quote', '"web"', /unexpected character "\\""/],
    ['huge', 'a'.repeat(10240), /limit is 1024/],
    ['port0', '0', /port 0 is out of range/],
    ['port70000', '70000', /port 70000 is out of range/],
  ];
  for (const [name, value, re] of cases) {
    const file = composeWithLabel(name, value);
    const r = moat(['matrix', '-f', file]);
    assert.equal(r.code, 2, `${name}: exit code (stderr: ${r.stderr.slice(0, 300)})`);
    assert.match(r.stderr, re, name);
    assert.ok(r.stderr.includes(`${file}:6:31`), `${name}: position in ${r.stderr.slice(0, 300)}`);
    assert.match(r.stderr, /fix: /);
    noStackTrace(r.stderr);
  }
});

test('bad policy files: malformed YAML, unknown keys, bad CIDR, ports -> exit 2 with position', () => {
  const files: [string, string, RegExp, string][] = [
    ['malformed', 'apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a\n', /YAML syntax error/, ':4:1'],
    ['unknown', 'apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroupz: {}\n', /unknown key "groupz"/, ':4:1'],
    ['cidr', 'apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ncidrSets:\n  office: [10.0.0.0/40]\n', /not a valid CIDR/, ':5:'],
    ['port', 'apiVersion: moat/v1\nkind: Policy\nmetadata: {name: a}\ngroups:\n  web:\n    ingress:\n      - ports: [70000]\n', /out of range/, ':7:'],
    ['netpol', 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 0}]\n', /port/i, ':7:'],
  ];
  for (const [name, text, re, pos] of files) {
    const file = join(tmp, `${name}.yaml`);
    writeFileSync(file, text);
    const r = moat(['validate', '-f', SEED62, '--policy', file]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.ok(r.stderr.includes(`${file}${pos}`), `${name}: ${r.stderr}`);
    noStackTrace(r.stderr);
  }
});

test('validate accepts good input; explain exit codes; bad port argument', () => {
  assert.equal(moat(['validate', '-f', SEED62]).code, 0);
  const allowed = moat(['explain', '-f', SEED62, '-p', 'seed62', 'internet', 'seed62/nginx', '443/tcp']);
  assert.equal(allowed.code, 0);
  assert.match(allowed.stdout, /ALLOWED/);
  const denied = moat(['explain', '-f', SEED62, '-p', 'seed62', 'seed62/nginx', 'seed62/mysql', '3306']);
  assert.equal(denied.code, 1);
  assert.match(denied.stdout, /DENIED/);
  assert.match(denied.stdout, /no shared network/);
  const bad = moat(['explain', '-f', SEED62, '-p', 'seed62', 'seed62/nginx', 'seed62/mysql', '99999']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not a port/);
  const unknown = moat(['explain', '-f', SEED62, 'nosuch', 'seed62/mysql', '80']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown source "nosuch"/);
});

test('matrix formats: json is the documented shape; csv, md, dot', () => {
  const r = moat(['matrix', '-f', SEED62, '-p', 'seed62', '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.equal(m.moatMatrix, 1);
  const flow = m.flows.find((f: { from: string; to: string }) => f.from === 'internet' && f.to === 'seed62/nginx');
  assert.deepEqual(flow.allowed, { TCP: [[80, 80], [443, 443]] });
  assert.match(moat(['matrix', '-f', SEED62, '-p', 'seed62', '--format', 'csv']).stdout, /^from,to,connections\n/);
  assert.match(moat(['matrix', '-f', SEED62, '-p', 'seed62', '--format', 'md']).stdout, /\| internet \| seed62\/nginx \| TCP 80,443 \|/);
  assert.match(moat(['matrix', '-f', SEED62, '-p', 'seed62', '--format', 'dot']).stdout, /"internet" -> "seed62\/nginx" \[label="TCP 80,443"\]/);
  assert.equal(moat(['matrix', '-f', SEED62, '--format', 'xml']).code, 2);
});

test('snapshot round trip gives the same matrix; diff exit codes', () => {
  const snap = join(tmp, 'seed62.json');
  assert.equal(moat(['snapshot', '-f', SEED62, '-p', 'seed62', '-o', snap]).code, 0);
  const fromCompose = moat(['matrix', '-f', SEED62, '-p', 'seed62', '-q']).stdout;
  const fromSnapshot = moat(['matrix', '--snapshot', snap, '-q']).stdout;
  assert.equal(fromSnapshot, fromCompose);
  // diff: same policies -> 0; a policy that isolates mysql's egress -> 1 with the removed flow.
  const same = moat(['diff', '--snapshot', snap, '--base-snapshot', snap]);
  assert.equal(same.code, 0, same.stderr);
  const pol = join(tmp, 'deny.yaml');
  writeFileSync(pol, 'apiVersion: moat/v1\nkind: Policy\nmetadata: {name: lock}\ngroups:\n  database:\n    egress: []\n');
  const empty = mkdtempSync(join(tmp, 'empty-'));
  const changed = moat(['diff', '--snapshot', snap, '--base-snapshot', snap, '--base-policy', empty, '--policy', pol]);
  assert.equal(changed.code, 1, changed.stderr);
  assert.match(changed.stdout, /^- seed62\/mysql => host : All$/m);
  const json = JSON.parse(moat(['diff', '--snapshot', snap, '--base-snapshot', snap, '--base-policy', empty, '--policy', pol, '--format', 'json']).stdout);
  assert.deepEqual(json.changes, [{ kind: 'removed', from: 'seed62/mysql', to: 'host', before: 'All', after: 'None' }]);
  assert.ok(readFileSync(snap, 'utf8').includes('"moatSnapshot": 1'));
});

test('--help on every command; unknown option exits 2', () => {
  for (const cmd of ['', 'matrix', 'explain', 'diff', 'validate', 'snapshot', 'demo', 'doctor', 'plan', 'apply', 'rollback', 'uninstall', 'verify', 'run', 'status', 'audit']) {
    const r = moat([...(cmd ? [cmd] : []), '--help']);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, /Usage: moat/);
  }
  assert.equal(moat(['matrix', '--bogus']).code, 2);
});

test('an unreachable engine is a clear error, exit 2', () => {
  const r = moat(['matrix']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /fix: /);
  noStackTrace(r.stderr);
});

test('demo --offline analyses the example Compose file and says so', () => {
  const r = moat(['demo', '--offline']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /analysing .*three-tier\/compose\.yaml statically/);
  assert.match(r.stdout, /^three-tier\/api-server => three-tier\/mysql : All$/m);
  assert.match(r.stdout, /^host => three-tier\/nginx : TCP 80,443$/m);
  assert.doesNotMatch(r.stdout, /^internet => three-tier\/nginx/m, 'nginx is published on loopback only');
});

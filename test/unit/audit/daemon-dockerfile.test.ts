// daemon.json and Dockerfile checks: every check triggered by a fixture and absent from the hardened one.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKS } from '../../../src/audit/catalogue.js';
import { readDaemonJson, runDaemonChecks } from '../../../src/audit/daemon.js';
import { readDockerfile } from '../../../src/audit/dockerfile.js';
import { UserError } from '../../../src/model/diagnostics.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/audit');
const daemon = (name: string) => runDaemonChecks(readDaemonJson(join(DIR, 'daemon', name)));
const ids = (fs: { checkId: string }[]) => [...new Set(fs.map((f) => f.checkId))].sort();

describe('daemon.json', () => {
  test('the hardened file triggers nothing', () => {
    assert.deepEqual(daemon('hardened.json'), []);
  });

  test('every daemon check is triggered by exposed.json or the seed\'s own 3.3 example', () => {
    const all = new Set([...ids(daemon('exposed.json')), ...ids(daemon('seed-3.3.json'))]);
    for (const c of CHECKS.filter((x) => x.scope === 'daemon')) assert.ok(all.has(c.id), `${c.id} triggered`);
  });

  test('exposed.json: findings point at the offending keys', () => {
    const f = daemon('exposed.json');
    const at = (id: string) => f.find((x) => x.checkId === id)?.pos?.line;
    assert.equal(at('daemon-icc'), 2);
    assert.equal(at('daemon-tcp-no-tls'), 3);
    assert.match(f.find((x) => x.checkId === 'daemon-tcp-no-tls')!.message, /tcp:\/\/0\.0\.0\.0:2375/);
    assert.equal(at('daemon-ip-forward'), 4);
    assert.match(f.find((x) => x.checkId === 'daemon-ip-forward')!.message, /ip-forward-no-drop/);
    assert.equal(at('daemon-no-live-restore'), 5);
    assert.equal(at('daemon-no-log-limits'), 7, 'log-opts without max-size');
    assert.equal(at('daemon-no-address-pools'), 1, 'a missing key points at the file start');
    assert.equal(at('daemon-iptables-disabled'), undefined);
  });

  test('the seed 3.3 example: iptables false is flagged (CIS 2.4), its other settings pass', () => {
    const f = daemon('seed-3.3.json');
    assert.deepEqual(ids(f), ['daemon-icc', 'daemon-iptables-disabled', 'daemon-no-live-restore', 'daemon-no-log-limits']);
    assert.equal(f.find((x) => x.checkId === 'daemon-iptables-disabled')!.pos?.line, 2);
  });

  test('comments (as in the seed\'s listing) are a user error with a position, not a crash', () => {
    assert.throws(
      () => readDaemonJson(join(DIR, 'daemon', 'invalid.json')),
      (e: unknown) => e instanceof UserError && e.diagnostics[0].pos?.line === 3 && /not valid JSON/.test(e.diagnostics[0].message),
    );
  });

  test('a missing file is a user error', () => {
    assert.throws(() => readDaemonJson(join(DIR, 'daemon', 'nope.json')), UserError);
  });
});

describe('Dockerfile', () => {
  test('USER root in the final stage, and EXPOSE of high-risk ports across a continuation line', () => {
    const f = readDockerfile(join(DIR, 'dockerfile', 'Dockerfile.root'));
    const user = f.filter((x) => x.checkId === 'dockerfile-no-user');
    assert.equal(user.length, 1);
    assert.equal(user[0].pos?.line, 10);
    const expose = f.filter((x) => x.checkId === 'dockerfile-expose-high-risk');
    assert.deepEqual(expose.map((x) => x.data?.port), [22, 5432]);
    assert.ok(expose.every((x) => x.pos?.line === 8));
  });

  test('no USER at all', () => {
    const f = readDockerfile(join(DIR, 'dockerfile', 'Dockerfile.nouser'));
    assert.deepEqual(ids(f), ['dockerfile-no-user']);
    assert.match(f[0].message, /no USER/);
  });

  test('the seed 7.2 Dockerfile passes', () => {
    assert.deepEqual(readDockerfile(join(DIR, 'dockerfile', 'Dockerfile.good')), []);
  });
});

// The whole shared corpus audited without a crash (overrides and extensions merged on their base
// files, as MANIFEST.md describes), with findings spot-checked against the files themselves.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAudit, type Finding } from '../../../src/audit/index.js';
import { renderSarif } from '../../../src/audit/report.js';
import { CORPUS, HAVE_CORPUS, composeFilesUnder } from '../../helpers/corpus.js';

const have = HAVE_CORPUS;

const walk = composeFilesUnder;

const audit = async (files: string[], profiles: string[] = []) => (await runAudit({ composeFiles: files, env: {}, profiles })).result;
const line = (file: string, n: number) => readFileSync(file, 'utf8').split('\n')[n - 1] ?? '';
const of = (fs: Finding[], id: string, service?: string) => fs.filter((f) => f.checkId === id && (service === undefined || f.service === service));

describe('audit over the compose corpus', { skip: have ? false : 'shared/compose-corpus not found beside the repository' }, () => {
  const mailcow = join(CORPUS, 'mailcow-dockerized/docker-compose.yml');
  const elk = join(CORPUS, 'docker-elk/docker-compose.yml');
  const sentry = join(CORPUS, 'sentry-self-hosted/docker-compose.yml');

  test('every file and file set audits without a crash, in every format', async () => {
    const all = walk(CORPUS);
    const overrides = all.filter((f) => f.includes('/helper-scripts/') || f.includes('/extensions/'));
    const sets: string[][] = all.filter((f) => !overrides.includes(f)).map((f) => [f]);
    for (const o of overrides) sets.push([o.includes('mailcow') ? mailcow : elk, o]);
    sets.push([mailcow, ...overrides.filter((o) => o.includes('mailcow'))]);
    sets.push([elk, ...overrides.filter((o) => o.includes('docker-elk'))]);
    let findings = 0;
    for (const files of sets) {
      for (const profiles of [[], ['*']]) {
        const r = await audit(files, profiles);
        findings += r.findings.length;
        for (const f of r.findings) {
          assert.ok(f.pos && f.pos.line > 0, `${f.checkId} in ${files.join('+')} has a position`);
          assert.ok(files.some((x) => x === f.pos!.file) || f.pos.file.startsWith(CORPUS), `points into the corpus: ${f.pos.file}`);
        }
        JSON.parse(renderSarif(r, { base: CORPUS }));
      }
    }
    assert.ok(findings > 500, `findings: ${findings}`);
  });

  test('mailcow: no false positive for loopback through an interpolation default; the real exposures are found', async () => {
    const r = await audit([mailcow]);
    // "${SQL_PORT:-127.0.0.1:13306}:3306" and the other 127.0.0.1 defaults.
    for (const svc of ['mysql-mailcow', 'redis-mailcow', 'sogo-mailcow', 'dockerapi-mailcow']) {
      assert.deepEqual(of(r.findings, 'port-high-risk', svc).concat(of(r.findings, 'port-all-interfaces', svc)), [], svc);
    }
    assert.ok(readFileSync(mailcow, 'utf8').includes('"${SQL_PORT:-127.0.0.1:13306}:3306"'), 'the corpus file has the trap');
    // "${HTTP_BIND:-}:${HTTP_PORT:-80}:${HTTP_PORT:-80}" has an empty host IP: all interfaces.
    const nginx = of(r.findings, 'port-all-interfaces', 'nginx-mailcow');
    assert.deepEqual(nginx.map((f) => f.data?.target).sort(), [443, 80]);
    for (const f of nginx) assert.match(line(mailcow, f.pos!.line), /HTTPS?_BIND:-\}/);
    // privileged + network_mode: host (netfilter), docker.sock read-only (dockerapi, ofelia).
    assert.equal(of(r.findings, 'privileged', 'netfilter-mailcow').length, 1);
    assert.match(line(mailcow, of(r.findings, 'privileged')[0].pos!.line), /privileged: true/);
    assert.match(line(mailcow, of(r.findings, 'network-mode-host')[0].pos!.line), /network_mode: "?host"?/);
    assert.deepEqual(of(r.findings, 'docker-socket').map((f) => f.service).sort(), ['dockerapi-mailcow', 'ofelia-mailcow']);
    for (const f of of(r.findings, 'docker-socket')) assert.match(line(mailcow, f.pos!.line), /docker\.sock:ro/);
  });

  test('mailcow override files: appended loopback ports (HAProxy, via defaults) pass; the exporter on all interfaces is found', async () => {
    const overrides = walk(join(CORPUS, 'mailcow-dockerized/helper-scripts'));
    const haproxy = overrides.find((f) => f.includes('HAPROXY'))!;
    const exporter = overrides.find((f) => f.includes('PROMETHEUS'))!;
    const run = await runAudit({ composeFiles: [mailcow, haproxy], env: {} });
    const dovecot = run.project!.services['dovecot-mailcow'].ports;
    assert.ok(dovecot.some((p) => p.target === 10143 && p.hostIp === '127.0.0.1'), 'the override appended its ports');
    assert.deepEqual(run.result.findings.filter((f) => f.pos?.file === haproxy && f.checkId.startsWith('port-')), []);
    const r = await audit([mailcow, exporter]);
    const fromExporter = r.findings.filter((f) => f.pos?.file === exporter && f.checkId === 'port-all-interfaces');
    assert.equal(fromExporter.length, 1);
    assert.match(line(exporter, fromExporter[0].pos!.line), /"9099:9099"/);
  });

  test('docker-elk: Elasticsearch published on all interfaces, socket via the long syntax in an extension, user root', async () => {
    const r = await audit([elk]);
    const es = of(r.findings, 'port-high-risk', 'elasticsearch');
    assert.deepEqual(es.map((f) => f.data?.target).sort(), [9200, 9300]);
    for (const f of es) assert.match(line(elk, f.pos!.line), /9[23]00:9[23]00/);
    assert.equal(of(r.findings, 'db-reachable-from-entry', 'elasticsearch').length, 1);
    const exts = walk(join(CORPUS, 'docker-elk/extensions'));
    const all = await audit([elk, ...exts]);
    const sock = of(all.findings, 'docker-socket');
    assert.ok(sock.length >= 1);
    for (const f of sock) assert.match(readFileSync(f.pos!.file, 'utf8').split('\n').slice(f.pos!.line - 1, f.pos!.line + 3).join('\n'), /docker\.sock/);
    const root = of(all.findings, 'root-user').filter((f) => !f.atService);
    assert.ok(root.length >= 1, 'an explicit user: root');
    for (const f of root) assert.match(line(f.pos!.file, f.pos!.line), /user: root/);
  });

  test('sentry: the one published port comes from $SENTRY_BIND in .env (9000, all interfaces); literal S3 credentials found', async () => {
    const r = await audit([sentry]);
    const ports = r.findings.filter((f) => f.checkId.startsWith('port-'));
    assert.equal(ports.length, 1);
    assert.equal(ports[0].service, 'nginx');
    assert.match(ports[0].message, /9000->80\/tcp/);
    assert.match(line(sentry, ports[0].pos!.line), /\$SENTRY_BIND:80\/tcp/);
    const secrets = of(r.findings, 'plaintext-secret', 'seaweedfs');
    assert.ok(secrets.length >= 1);
    for (const f of secrets) assert.match(line(sentry, f.pos!.line), new RegExp(String(f.data?.variable)));
  });

  test('awesome-compose: host networking (plex), socket (portainer, traefik), NET_ADMIN (wireguard, pihole)', async () => {
    const ac = (p: string) => join(CORPUS, 'awesome-compose', p, 'compose.yaml');
    assert.equal(of((await audit([ac('plex')])).findings, 'network-mode-host').length, 1);
    assert.equal(of((await audit([ac('portainer')])).findings, 'docker-socket').length, 1);
    assert.equal(of((await audit([ac('traefik-golang')])).findings, 'docker-socket').length, 1);
    assert.deepEqual(of((await audit([ac('wireguard')])).findings, 'cap-add-dangerous').map((f) => f.data?.capability).sort(), ['NET_ADMIN', 'SYS_MODULE']);
    assert.deepEqual(of((await audit([ac('pihole-cloudflared-DoH')])).findings, 'cap-add-dangerous').map((f) => f.data?.capability), ['NET_ADMIN']);
    // react-java-mysql's front end exposes 3306 but is not a database.
    const rjm = await audit([ac('react-java-mysql')]);
    assert.deepEqual(of(rjm.findings, 'db-network-not-internal').map((f) => f.service), ['db']);
  });
});

// Every Compose file of the shared corpus resolves; spot checks compare the resolver with values
// read straight from the files (with the yaml package, not with the code under test).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { composeToWorld, loadComposeProject } from '../../../src/sources/compose/index.js';
import { CORPUS, HAVE_CORPUS, composeFilesUnder } from '../../helpers/corpus.js';

const have = HAVE_CORPUS;

const walk = composeFilesUnder;

const raw = (file: string) => YAML.parse(readFileSync(file, 'utf8'), { merge: true, maxAliasCount: -1 });
const dotenv = (file: string) =>
  Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^'(.*)'$/, '$1')]),
  );
/** Evaluates only `${NAME:-default}` with everything unset: what the corpus' mailcow defaults need. */
const withDefaults = (s: string) => s.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');

describe('compose corpus', { skip: have ? false : 'shared/compose-corpus not found beside the repository' }, () => {
  const mailcow = join(CORPUS, 'mailcow-dockerized/docker-compose.yml');
  const mailcowOverrides = have ? walk(join(CORPUS, 'mailcow-dockerized/helper-scripts')) : [];
  const elk = join(CORPUS, 'docker-elk/docker-compose.yml');
  const elkExtensions = have ? walk(join(CORPUS, 'docker-elk/extensions')) : [];
  const sentry = join(CORPUS, 'sentry-self-hosted/docker-compose.yml');

  test('every Compose file resolves (overrides and extensions merged on their base file)', async () => {
    const all = walk(CORPUS);
    assert.equal(all.length, 49 - 2, 'the MANIFEST lists 49 files, two of them .env');
    const covered = new Set<string>();
    const sets: string[][] = [];
    for (const f of all) {
      if (mailcowOverrides.includes(f) || elkExtensions.includes(f)) continue;
      sets.push([f]);
    }
    for (const o of mailcowOverrides) sets.push([mailcow, o]);
    sets.push([mailcow, ...mailcowOverrides]);
    for (const x of elkExtensions) sets.push([elk, x]);
    sets.push([elk, ...elkExtensions]);
    for (const files of sets) {
      for (const profiles of [[], ['*']]) {
        try {
          const p = await loadComposeProject({ files, env: {}, profiles });
          const w = composeToWorld(p);
          assert.equal(w.endpoints.length, Object.keys(p.services).length);
        } catch (e) {
          assert.fail(`${files.map((f) => relative(CORPUS, f)).join(' + ')}: ${String(e)}`);
        }
      }
      files.forEach((f) => covered.add(f));
    }
    assert.deepEqual([...covered].sort(), all.sort());
  });

  test('mailcow: a default carrying the host IP, overrides appending ports, static addresses', async () => {
    const base = raw(mailcow);
    const haproxy = mailcowOverrides.find((f) => f.includes('HAPROXY'));
    assert.ok(haproxy);
    const p = await loadComposeProject({ files: [mailcow, haproxy], env: {} });
    // "${SQL_PORT:-127.0.0.1:13306}:3306" -> host_ip 127.0.0.1, host port 13306 (read from the file).
    const spec: string = base.services['mysql-mailcow'].ports[0];
    const m = /^\$\{SQL_PORT:-([\d.]+):(\d+)\}:(\d+)$/.exec(spec);
    assert.ok(m, spec);
    const [mysqlPort] = p.services['mysql-mailcow'].ports;
    assert.deepEqual([mysqlPort.hostIp, mysqlPort.hostPort, mysqlPort.target], [m[1], Number(m[2]), Number(m[3])]);
    // "${HTTP_BIND:-}:${HTTP_PORT:-80}:${HTTP_PORT:-80}" -> all interfaces.
    const nginxSpecs: string[] = base.services['nginx-mailcow'].ports;
    const nginx = p.services['nginx-mailcow'].ports;
    assert.equal(nginx.length, nginxSpecs.length);
    nginxSpecs.forEach((s, i) => {
      const [ip, host, target] = withDefaults(s).split(':');
      assert.deepEqual([nginx[i].hostIp, nginx[i].hostPort, nginx[i].target], [ip, Number(host), Number(target)]);
    });
    // The override appends its ports after the base file's.
    const over = raw(haproxy);
    for (const svc of Object.keys(over.services)) {
      const want = [...(base.services[svc].ports ?? []), ...over.services[svc].ports].map((s: string) => withDefaults(s));
      const got = p.services[svc].ports.map((x) => `${x.hostIp ? `${x.hostIp}:` : ''}${x.published}:${x.target}`);
      assert.deepEqual(got, want, svc);
    }
    // Static addresses and the IPv6-enabled network.
    const w = composeToWorld(p);
    const netKey = Object.keys(base.networks)[0];
    const net = w.networks.find((n) => n.name === `${p.name}_${netKey}`);
    assert.ok(net);
    assert.deepEqual(net.subnets, base.networks[netKey].ipam.config.map((c: { subnet: string }) => withDefaults(c.subnet)));
    assert.equal(net.enableIPv6, withDefaults(String(base.networks[netKey].enable_ipv6)) === 'true');
    let checked = 0;
    for (const [name, svc] of Object.entries<Record<string, any>>(base.services)) {
      const addr = svc.networks?.[netKey]?.ipv4_address;
      if (!addr) continue;
      const ep = w.endpoints.find((e) => e.name === name);
      assert.equal(ep?.attachments[0].ipv4, withDefaults(addr), name);
      checked++;
    }
    assert.ok(checked > 0);
    // network_mode: host and privileged as written.
    for (const [name, svc] of Object.entries<Record<string, any>>(base.services)) {
      if (svc.network_mode === 'host') assert.deepEqual(w.endpoints.find((e) => e.name === name)?.networkMode, { kind: 'host' });
      if (svc.privileged !== undefined) assert.equal(p.services[name].privileged, svc.privileged === true, name);
    }
  });

  test('sentry: .env bind port, COMPOSE_PROFILES from .env, project name, null environment values', async () => {
    const env = dotenv(join(CORPUS, 'sentry-self-hosted/.env'));
    const base = raw(sentry);
    const p = await loadComposeProject({ files: [sentry], env: {} });
    assert.equal(p.name, env.COMPOSE_PROJECT_NAME);
    const withPorts = Object.entries<Record<string, any>>(base.services).filter(([, s]) => s.ports);
    assert.equal(withPorts.length, 1);
    const [name, svc] = withPorts[0];
    assert.equal(svc.ports[0], '$SENTRY_BIND:80/tcp');
    assert.deepEqual(
      p.services[name].ports.map((x) => [x.hostIp, x.hostPort, x.target, x.protocol]),
      [['', Number(env.SENTRY_BIND), 80, 'tcp']],
    );
    const enabled = env.COMPOSE_PROFILES.split(',');
    for (const [n, s] of Object.entries<Record<string, any>>(base.services)) {
      const active = !s.profiles || s.profiles.some((x: string) => enabled.includes(x));
      assert.equal(n in p.services, active, n);
      assert.equal(p.disabledServices.includes(n), !active, n);
    }
    // A different profile from the process environment wins over .env.
    const other = [...new Set(Object.values<Record<string, any>>(base.services).flatMap((s) => s.profiles ?? []))].find((x) => !enabled.includes(x));
    if (other) {
      const q = await loadComposeProject({ files: [sentry], env: { COMPOSE_PROFILES: other } });
      for (const [n, s] of Object.entries<Record<string, any>>(base.services)) assert.equal(n in q.services, !s.profiles || s.profiles.includes(other), n);
    }
    // `COMPOSE_PROFILES:` without a value in `environment` is taken from the environment (.env here).
    const withNull = Object.entries<Record<string, any>>(base.services).find(([n, s]) => n in p.services && s.environment && 'COMPOSE_PROFILES' in s.environment && s.environment.COMPOSE_PROFILES === null);
    assert.ok(withNull);
    assert.equal(p.services[withNull[0]].environment.COMPOSE_PROFILES, env.COMPOSE_PROFILES);
  });

  test('docker-elk: extension files append services, profiles, network_mode service:/none', async () => {
    const base = raw(elk);
    const env = dotenv(join(CORPUS, 'docker-elk/.env'));
    const p = await loadComposeProject({ files: [elk, ...elkExtensions], env: {} });
    const extServices = elkExtensions.flatMap((f) => Object.keys(raw(f).services));
    const baseActive = Object.entries<Record<string, any>>(base.services).filter(([, s]) => !s.profiles).map(([n]) => n);
    assert.deepEqual(Object.keys(p.services).sort(), [...baseActive, ...extServices].sort());
    const withSetup = await loadComposeProject({ files: [elk, ...elkExtensions], env: {}, profiles: ['setup'] });
    const w = composeToWorld(withSetup);
    for (const [n, s] of Object.entries<Record<string, any>>(base.services)) {
      assert.ok(n in withSetup.services, n);
      const ep = w.endpoints.find((e) => e.name === n);
      if (s.network_mode === 'none') assert.deepEqual(ep?.networkMode, { kind: 'none' });
      else if (typeof s.network_mode === 'string' && s.network_mode.startsWith('service:')) {
        assert.deepEqual(ep?.networkMode, { kind: 'container', of: `${withSetup.name}/${s.network_mode.slice(8)}` });
      }
      if (s.build?.args?.ELASTIC_VERSION) assert.equal(withSetup.services[n].config.build && (withSetup.services[n].config.build as any).args.ELASTIC_VERSION, env.ELASTIC_VERSION);
    }
    // Published ports as written (all interfaces), e.g. Elasticsearch 9200.
    for (const [n, s] of Object.entries<Record<string, any>>(base.services)) {
      for (const spec of s.ports ?? []) {
        const [hostPort, rest] = String(spec).split(':');
        const [target, proto = 'tcp'] = rest.split('/');
        const ep = w.endpoints.find((e) => e.name === n);
        assert.ok(ep?.publishedPorts.some((pp) => pp.hostIp === '' && pp.hostPort === Number(hostPort) && pp.containerPort === Number(target) && pp.protocol === proto.toUpperCase()), `${n} ${spec}`);
      }
    }
    // docker.sock mounted with the long volume syntax.
    for (const f of elkExtensions) {
      for (const [n, s] of Object.entries<Record<string, any>>(raw(f).services)) {
        const sock = (s.volumes ?? []).find((v: any) => typeof v === 'object' && v.source === '/var/run/docker.sock');
        if (sock) assert.ok(p.services[n].volumes.some((v) => v.source === '/var/run/docker.sock' && v.readOnly === (sock.read_only === true)), n);
      }
    }
  });

  test('awesome-compose: static ipv4_address, subnets, host networking, published ports', async () => {
    let statics = 0;
    for (const f of walk(join(CORPUS, 'awesome-compose'))) {
      const doc = raw(f);
      const p = await loadComposeProject({ files: [f], env: {} });
      const w = composeToWorld(p);
      for (const [name, s] of Object.entries<Record<string, any>>(doc.services)) {
        const ep = w.endpoints.find((e) => e.name === name);
        assert.ok(ep, `${f} ${name}`);
        if (s.network_mode === 'host') assert.deepEqual(ep.networkMode, { kind: 'host' });
        const nets = s.networks && !Array.isArray(s.networks) ? s.networks : {};
        for (const [key, opts] of Object.entries<any>(nets)) {
          if (!opts?.ipv4_address) continue;
          statics++;
          const realName: string = doc.networks?.[key]?.name ?? `${p.name}_${key}`;
          const att: { ipv4?: string } | undefined = ep.attachments.find((a: { network: string }) => a.network === realName);
          assert.equal(att?.ipv4, opts.ipv4_address, `${f} ${name}`);
          const subnets = (doc.networks?.[key]?.ipam?.config ?? []).map((c: any) => c.subnet);
          assert.deepEqual(w.networks.find((n) => n.name === realName)?.subnets, subnets);
        }
        const plain = (s.ports ?? []).filter((x: unknown) => typeof x === 'string' && /^\d+:\d+$/.test(x));
        for (const spec of plain) {
          const [h, c] = spec.split(':').map(Number);
          assert.ok(ep.publishedPorts.some((pp) => pp.hostPort === h && pp.containerPort === c && pp.hostIp === ''), `${f} ${name} ${spec}`);
        }
      }
    }
    assert.ok(statics > 0, 'the corpus has static addresses');
  });
});

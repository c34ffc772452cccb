// doctor's diagnosis from captured command outputs (no host access).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { diagnose, dockerUserJump, iptablesFlavour, parseDaemonJson, type HostObservations } from '../../../src/enforce/doctor.js';

const FIX = 'test/fixtures/enforce/doctor';
const save = readFileSync(`${FIX}/iptables-save-docker20.txt`, 'utf8');
const saveNoJump = readFileSync(`${FIX}/iptables-save-no-jump.txt`, 'utf8');

/** A healthy Debian 12 host with Docker 20.10 (outputs captured on the test machine). */
function healthy(): HostObservations {
  return {
    nftVersion: 'nftables v1.0.6 (Lester Gooch #5)',
    iptablesVersion: 'iptables v1.8.9 (nf_tables)',
    ipsetVersion: 'ipset v7.17, protocol version: 7',
    brNetfilter: true,
    bridgeNfCallIptables: '1',
    bridgeNfCallIp6tables: '1',
    ipForward: '1',
    daemonJson: '{ "userland-proxy": false }\n',
    dockerVersion: 'Docker version 20.10.24+dfsg1, build 5d6db84',
    iptablesSave: save,
    ufwActive: 'inactive\n',
    firewalldActive: 'inactive\n',
  };
}

const ids = (o: HostObservations, backend: 'nft' | 'iptables' = 'nft') => diagnose(o, backend).findings.map((f) => `${f.level}:${f.id}`);

test('captured iptables -V and iptables-save outputs are parsed', () => {
  assert.equal(iptablesFlavour('iptables v1.8.9 (nf_tables)'), 'nft');
  assert.equal(iptablesFlavour('iptables v1.8.7 (legacy)'), 'legacy');
  assert.equal(iptablesFlavour(undefined), undefined);
  assert.deepEqual(dockerUserJump(save), { chain: true, jump: true });
  assert.deepEqual(dockerUserJump(saveNoJump), { chain: true, jump: false });
  assert.deepEqual(dockerUserJump('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n'), { chain: false, jump: false });
  // With counters (iptables-save -c), and a jump in another table does not count.
  assert.deepEqual(dockerUserJump('*filter\n:DOCKER-USER - [0:0]\n[12:340] -A FORWARD -j DOCKER-USER\nCOMMIT\n'), { chain: true, jump: true });
  assert.deepEqual(dockerUserJump('*mangle\n-A FORWARD -j DOCKER-USER\nCOMMIT\n*filter\n:DOCKER-USER - [0:0]\nCOMMIT\n'), { chain: true, jump: false });
});

test('a healthy host: ok, and nothing but the summary', () => {
  const r = diagnose(healthy(), 'iptables');
  assert.equal(r.ok, true);
  assert.deepEqual(r.findings.map((f) => f.id), ['summary']);
  assert.equal(r.facts.iptablesFlavour, 'nft');
  assert.equal(r.facts.userlandProxy, false);
});

test('each broken fact gives its finding with a fix, errors make ok false', () => {
  const cases: [Partial<HostObservations>, string, 'nft' | 'iptables'][] = [
    [{ brNetfilter: false }, 'error:br_netfilter.missing', 'nft'],
    [{ bridgeNfCallIptables: '0' }, 'error:bridge-nf-call-iptables', 'nft'],
    [{ bridgeNfCallIp6tables: '0' }, 'warning:bridge-nf-call-ip6tables', 'nft'],
    [{ ipForward: '0' }, 'warning:ip_forward', 'nft'],
    [{ nftVersion: undefined }, 'error:nft.missing', 'nft'],
    [{ nftVersion: undefined }, 'warning:nft.missing', 'iptables'],
    [{ ipsetVersion: undefined }, 'error:ipset.missing', 'iptables'],
    [{ iptablesVersion: 'iptables v1.8.7 (legacy)' }, 'warning:iptables.legacy', 'nft'],
    [{ daemonJson: '{"iptables": false}' }, 'error:docker.iptables-off', 'nft'],
    [{ daemonJson: '{"firewall-backend": "nftables", "userland-proxy": false}' }, 'error:docker.nftables-backend', 'iptables'],
    [{ daemonJson: '{"firewall-backend": "nftables", "userland-proxy": false}' }, 'warning:docker.nftables-backend', 'nft'],
    [{ daemonJson: undefined }, 'warning:docker.userland-proxy', 'nft'],
    [{ daemonJson: '{ "userland-proxy": ' }, 'warning:docker.daemon-json', 'nft'],
    [{ iptablesSave: saveNoJump }, 'error:docker-user.no-jump', 'iptables'],
    [{ iptablesSave: saveNoJump }, 'warning:docker-user.no-jump', 'nft'],
    [{ iptablesSave: '*filter\n:FORWARD DROP [0:0]\nCOMMIT\n' }, 'warning:docker-user.missing', 'iptables'],
    [{ ufwActive: 'active\n' }, 'warning:ufw.active', 'iptables'],
    [{ firewalldActive: 'active\n' }, 'warning:firewalld.active', 'nft'],
  ];
  for (const [change, expected, backend] of cases) {
    const o = { ...healthy(), ...change };
    const r = diagnose(o, backend);
    const got = ids(o, backend);
    assert.ok(got.includes(expected), `${JSON.stringify(change).slice(0, 80)} (${backend}): ${got.join(', ')}`);
    assert.equal(r.ok, !expected.startsWith('error:'), expected);
    const f = r.findings.find((x) => `${x.level}:${x.id}` === expected)!;
    assert.ok(f.fix && f.fix.length > 5, `${expected} has a fix`);
  }
});

test('daemon.json: absent, empty, invalid, not an object', () => {
  assert.deepEqual(parseDaemonJson(undefined), { config: {} });
  assert.deepEqual(parseDaemonJson('  '), { config: {} });
  assert.ok(parseDaemonJson('{').error);
  assert.ok(parseDaemonJson('[1]').error);
  assert.deepEqual(parseDaemonJson('{"userland-proxy": false}').config, { 'userland-proxy': false });
  // The Engine API's facts win over the file.
  const r = diagnose({ ...healthy(), daemonJson: '{}', userlandProxy: false, firewallBackend: 'nftables' }, 'nft');
  assert.equal(r.facts.userlandProxy, false);
  assert.equal(r.facts.dockerFirewallBackend, 'nftables');
});

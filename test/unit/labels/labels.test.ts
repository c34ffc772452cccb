import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleValue, parseGroupValue, compileLabels } from '../../../src/policy/labels/index.js';
import { analyze } from '../../../src/analysis/reachability.js';
import type { Endpoint, Network, World } from '../../../src/model/world.js';

test('grammar: ports, groups, group with port, CIDRs, keywords', () => {
  const r = parseRuleValue('80, 443/tcp,53/udp,8000-8100,web,web:8080,shop/api:9000/udp,10.0.0.0/8,192.168.1.100:3306,[fd00::/64]:5432,fd00:1::/48,internet,host,any');
  assert.ok(r.ok);
  const items = r.value;
  assert.deepEqual(items.map((i) => i.peer.kind), ['any', 'any', 'any', 'any', 'group', 'group', 'group', 'cidr', 'cidr', 'cidr', 'cidr', 'internet', 'host', 'any']);
  assert.deepEqual(items[2].port, { protocol: 'UDP', from: 53, to: 53 });
  assert.deepEqual(items[3].port, { protocol: 'TCP', from: 8000, to: 8100 });
  assert.deepEqual(items[5], { text: 'web:8080', offset: items[5].offset, peer: { kind: 'group', group: 'web', namespace: undefined }, port: { protocol: 'TCP', from: 8080, to: 8080 } });
  assert.deepEqual(items[6].peer, { kind: 'group', group: 'api', namespace: 'shop' });
  assert.deepEqual(items[8].peer, { kind: 'cidr', cidr: '192.168.1.100/32' });
  assert.deepEqual(items[9].peer, { kind: 'cidr', cidr: 'fd00::/64' });
  assert.equal(items[9].port?.from, 5432);
  const none = parseRuleValue('none');
  assert.ok(none.ok && none.value.length === 0);
});

test('grammar: bad values are rejected with a message and a fix', () => {
  const cases: [string, RegExp][] = [
    ['80; rm -rf /', /unexpected character ";" at position 3/],
    ['80\n443', /unexpected character \\n/],
    ['"web"', /unexpected character "\\""/],
    ["'web'", /unexpected character "'"/],
    ['x'.repeat(10240), /limit is 1024/],
    ['0', /port 0 is out of range/],
    ['70000', /port 70000 is out of range/],
    ['100-80', /reversed/],
    ['53/icmp', /unknown protocol/],
    ['Web', /group names are lowercase/],
    ['10.0.0.300/8', /not a valid address/],
    ['10.0.0.0/33', /not a valid address/],
    ['web:', /is not a port/],
    ['80,,443', /empty item/],
    ['', /empty value/],
    ['web:80:90', /not a valid address/],
    ['web none', /contains a space/],
    ['internet,none', /must be the whole value/],
  ];
  for (const [value, re] of cases) {
    const r = parseRuleValue(value);
    assert.equal(r.ok, false, `expected ${JSON.stringify(value.slice(0, 40))} to be rejected`);
    if (!r.ok) {
      assert.match(`${r.error.message} | ${r.error.fix}`, re, value.slice(0, 40));
      assert.ok(r.error.fix.length > 0);
    }
  }
  assert.equal(parseGroupValue('web,any').ok, false);
  assert.deepEqual(parseGroupValue('web, api ,web'), { ok: true, value: ['web', 'api'] });
});

function svc(name: string, nets: [string, string][], labels: Record<string, string>, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    id: `seed/${name}`, name, namespace: 'seed', labels, networkMode: { kind: 'bridge' },
    attachments: nets.map(([network, ipv4]) => ({ network, ipv4 })), declaredPorts: [], publishedPorts: [], ...extra,
  };
}
function net(name: string, internal = false): Network {
  return { name, driver: 'bridge', subnets: [], internal, options: {}, icc: true, enableIPv6: false };
}

// The first seed, section 6.2, as written.
export function seedWorld(): World {
  return {
    origin: 'test', namespaces: [], externals: [], host: { addresses: [] }, warnings: [],
    networks: [net('seed_frontend'), net('seed_backend', true)],
    endpoints: [
      svc('nginx', [['seed_frontend', '172.30.1.2']], { 'security.group': 'web', 'security.allow.inbound': '80,443', 'security.allow.outbound': 'backend' }, {
        declaredPorts: [{ port: 80, protocol: 'TCP' }, { port: 443, protocol: 'TCP' }],
        publishedPorts: [{ hostIp: '', hostPort: 80, containerPort: 80, protocol: 'TCP' }, { hostIp: '', hostPort: 443, containerPort: 443, protocol: 'TCP' }],
      }),
      svc('api-server', [['seed_frontend', '172.30.1.3'], ['seed_backend', '172.30.2.3']], { 'security.group': 'backend', 'security.allow.inbound': 'web', 'security.allow.outbound': 'database,cache' }),
      svc('mysql', [['seed_backend', '172.30.2.4']], { 'security.group': 'database', 'security.allow.inbound': 'backend', 'security.deny.outbound': 'internet' }),
      svc('redis', [['seed_backend', '172.30.2.5']], { 'security.group': 'cache', 'security.allow.inbound': 'backend', 'security.deny.outbound': 'internet' }),
    ],
  };
}

test("the seed's section 6.2 example means what it says", () => {
  const world = seedWorld();
  const { policySet, diagnostics } = compileLabels(world);
  assert.deepEqual(diagnostics, []);
  const a = analyze(world, policySet);
  const c = (x: string, y: string) => a.connections(a.nodeIndex(x)!, a.nodeIndex(y)!).toString();
  // nginx open on 80 and 443 from anywhere.
  assert.equal(c('internet', 'seed/nginx'), 'TCP 80,443');
  assert.equal(c('host', 'seed/nginx'), 'TCP 80,443');
  assert.equal(c('seed/api-server', 'seed/nginx'), 'None', 'api-server may only talk to database and cache');
  // api-server reachable only from group web.
  assert.equal(c('seed/nginx', 'seed/api-server'), 'All');
  assert.equal(c('host', 'seed/api-server'), 'None');
  assert.equal(c('seed/mysql', 'seed/api-server'), 'None');
  // mysql only from group backend, never out to the internet.
  assert.equal(c('seed/api-server', 'seed/mysql'), 'All');
  assert.equal(c('seed/nginx', 'seed/mysql'), 'None');
  assert.equal(c('seed/redis', 'seed/mysql'), 'None');
  assert.equal(c('seed/mysql', 'internet'), 'None');
  assert.equal(c('seed/api-server', 'seed/redis'), 'All');
  // Policy alone (--flat): mysql's deny beats its open egress; nginx's egress is only to backend.
  const flat = analyze(world, policySet, { flat: true });
  const f = (x: string, y: string) => flat.connections(flat.nodeIndex(x)!, flat.nodeIndex(y)!).toString();
  assert.equal(f('seed/mysql', 'internet'), 'None');
  assert.equal(f('seed/mysql', 'seed/redis'), 'None', 'redis accepts only backend');
  assert.equal(f('seed/mysql', 'host'), 'All', 'deny internet does not deny the host');
  assert.equal(f('seed/nginx', 'internet'), 'None');
});

test('a bad label is an error and fails closed, never open', () => {
  const world = seedWorld();
  world.endpoints[2].labels['security.allow.inbound'] = 'backend; rm -rf /';
  world.endpoints[3].labels['security.deny.outbnd'] = 'internet';
  delete world.endpoints[3].labels['security.deny.outbound'];
  const { policySet, diagnostics } = compileLabels(world);
  assert.equal(diagnostics.length, 2);
  assert.match(diagnostics[0].message, /security.allow.inbound: unexpected character ";"/);
  assert.equal(diagnostics[0].context, 'container seed/mysql');
  assert.match(diagnostics[1].fix ?? '', /did you mean security.deny.outbound/);
  const a = analyze(world, policySet);
  const c = (x: string, y: string) => a.connections(a.nodeIndex(x)!, a.nodeIndex(y)!).toString();
  assert.equal(c('seed/api-server', 'seed/mysql'), 'None', 'ingress failed closed');
  assert.equal(c('seed/api-server', 'seed/redis'), 'None', 'unknown key failed closed both ways');
  assert.equal(c('seed/redis', 'seed/api-server'), 'None');
});

test('an unknown group matches nothing and is reported', () => {
  const world = seedWorld();
  world.endpoints[1].labels['security.allow.inbound'] = 'webb';
  const { policySet } = compileLabels(world);
  const a = analyze(world, policySet);
  assert.equal(a.connections(a.nodeIndex('seed/nginx')!, a.nodeIndex('seed/api-server')!).toString(), 'None');
  assert.ok(a.warnings.some((w) => /group webb .* matches no container/.test(w.message)));
});

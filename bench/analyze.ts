// Benchmark: full matrix for 1,000 endpoints in 50 namespaces under 200 policies (target <= 2 s on one core),
// and one explain (target <= 50 ms). Run: node --import tsx bench/analyze.ts [--endpoints N] [--policies N]
import { performance } from 'node:perf_hooks';
import { analyze } from '../src/analysis/reachability.js';
import { explain } from '../src/analysis/explain.js';
import { emptyPolicySet, type Policy } from '../src/model/ir.js';
import type { Endpoint, Network, World } from '../src/model/world.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

export function syntheticWorld(endpoints: number, namespaces: number): World {
  const networks: Network[] = [];
  const eps: Endpoint[] = [];
  const perNs = Math.ceil(endpoints / namespaces);
  const tiers = ['web', 'api', 'db', 'cache'];
  for (let n = 0; n < namespaces; n++) {
    const ns = `ns${n}`;
    networks.push({ name: `${ns}_front`, driver: 'bridge', subnets: [`10.${n}.0.0/24`], internal: false, options: {}, icc: true, enableIPv6: false });
    networks.push({ name: `${ns}_back`, driver: 'bridge', subnets: [`10.${n}.1.0/24`], internal: true, options: {}, icc: true, enableIPv6: false });
    for (let i = 0; i < perNs && eps.length < endpoints; i++) {
      const tier = tiers[i % tiers.length];
      const front = tier === 'web' || tier === 'api';
      const back = tier !== 'web';
      eps.push({
        id: `${ns}/svc${i}`, name: `svc${i}`, namespace: ns, labels: { app: `app${i % 5}`, tier },
        networkMode: { kind: 'bridge' },
        attachments: [
          ...(front ? [{ network: `${ns}_front`, ipv4: `10.${n}.0.${i + 2}` }] : []),
          ...(back ? [{ network: `${ns}_back`, ipv4: `10.${n}.1.${i + 2}` }] : []),
        ],
        declaredPorts: [{ port: 8080, protocol: 'TCP', name: 'http' }, { port: 9090, protocol: 'TCP', name: 'metrics' }],
        publishedPorts: tier === 'web' ? [{ hostIp: '', hostPort: 20000 + eps.length, containerPort: 8080, protocol: 'TCP' }] : [],
      });
    }
  }
  return { origin: 'bench', namespaces: [], endpoints: eps, networks, externals: [], host: { addresses: ['10.255.0.1'] }, warnings: [] };
}

export function syntheticPolicies(count: number, namespaces: number) {
  const set = emptyPolicySet();
  const tiers = ['web', 'api', 'db', 'cache'];
  for (let p = 0; p < count; p++) {
    const ns = `ns${p % namespaces}`;
    const tier = tiers[p % tiers.length];
    const from = tier === 'web' ? undefined : tier === 'api' ? 'web' : 'api';
    const policy: Policy = {
      id: `netpol:${ns}/p${p}`, name: `${ns}/p${p}`, kind: 'netpol',
      subject: { namespaces: { kind: 'names', names: [ns] }, labels: { matchLabels: { tier, app: `app${p % 5}` } } },
      isolates: { ingress: true, egress: p % 3 === 0 },
      ingress: [
        from
          ? { action: 'allow', peers: [{ kind: 'endpoints', selector: { namespaces: { kind: 'names', names: [ns] }, labels: { matchLabels: { tier: from } } } }], ports: [{ protocol: 'TCP', name: 'http' }] }
          : { action: 'allow', peers: 'all', ports: [{ protocol: 'TCP', port: 8080 }] },
        { action: 'allow', peers: [{ kind: 'endpoints', selector: { namespaces: { kind: 'selector', selector: { matchLabels: { 'kubernetes.io/metadata.name': 'ns0' } } }, labels: {} } }], ports: [{ protocol: 'TCP', port: 9090 }] },
        { action: 'allow', peers: [{ kind: 'cidr', cidr: '10.0.0.0/8', except: [`10.${p % namespaces}.1.0/24`] }], ports: [{ protocol: 'TCP', port: 9000, endPort: 9100 }] },
      ],
      egress: [{ action: 'allow', peers: [{ kind: 'endpoints', selector: { namespaces: { kind: 'names', names: [ns] }, labels: {} } }] }],
    };
    set.policies.push(policy);
  }
  return set;
}

const endpoints = arg('endpoints', 1000);
const namespaces = arg('namespaces', 50);
const policies = arg('policies', 200);
const world = syntheticWorld(endpoints, namespaces);
const set = syntheticPolicies(policies, namespaces);

const t0 = performance.now();
const analysis = analyze(world, set);
const flows = analysis.flows();
const t1 = performance.now();
const explainTimes: number[] = [];
for (let k = 0; k < 20; k++) {
  const a = analysis.nodes[(k * 37) % world.endpoints.length].id;
  const b = analysis.nodes[(k * 91 + 5) % world.endpoints.length].id;
  const s = performance.now();
  explain(analysis, a, b, '8080/tcp');
  explainTimes.push(performance.now() - s);
}
explainTimes.sort((x, y) => x - y);
const rss = process.memoryUsage().rss / 1048576;
console.log(JSON.stringify({
  endpoints, namespaces, policies, nodes: analysis.nodes.length, pairs: analysis.nodes.length ** 2, flows: flows.length,
  matrixMs: Math.round(t1 - t0), explainMedianMs: +explainTimes[10].toFixed(2), explainMaxMs: +explainTimes[19].toFixed(2), rssMB: Math.round(rss),
}));

// A synthetic host for the enforcement benchmarks: N endpoints in namespaces of 100 (two networks
// each, one internal), 10 policies per namespace (tiers web/api/db/cache, app-specific rules, CIDR
// peers with except, deny internet for data stores). Addresses come from 100.64.0.0/10 (shared
// address space), a range Docker never allocates, so the fail-closed sets of a benchmark ruleset
// loaded on a real host touch no real container.
import { emptyPolicySet, type Policy, type PolicySet } from '../src/model/ir.js';
import type { Endpoint, Network, World } from '../src/model/world.js';

const TIERS = ['web', 'api', 'db', 'cache'] as const;
export const PER_NAMESPACE = 100;

function addr(ns: number, side: 0 | 1, i: number): string {
  // 100.64.0.0/10: namespace ns gets 100.(64 + 2*(ns>>8) + side).(ns & 255).x
  return `100.${64 + ((ns >> 8) << 1) + side}.${ns & 255}.${i + 2}`;
}

export function syntheticEndpoints(count: number): { networks: Network[]; endpoints: Endpoint[] } {
  const networks: Network[] = [];
  const endpoints: Endpoint[] = [];
  const namespaces = Math.ceil(count / PER_NAMESPACE);
  for (let n = 0; n < namespaces; n++) {
    const ns = `syn${n}`;
    const sub = (side: 0 | 1) => addr(n, side, -2).replace(/\.0$/, '.0') + '/24';
    networks.push({ name: `${ns}_front`, driver: 'bridge', subnets: [sub(0)], internal: false, options: {}, icc: true, enableIPv6: false });
    networks.push({ name: `${ns}_back`, driver: 'bridge', subnets: [sub(1)], internal: true, options: {}, icc: true, enableIPv6: false });
    for (let i = 0; i < PER_NAMESPACE && endpoints.length < count; i++) {
      const tier = TIERS[i % 4];
      const front = tier === 'web' || tier === 'api';
      const back = tier !== 'web';
      endpoints.push({
        id: `${ns}/svc${i}`, name: `svc${i}`, namespace: ns, composeService: `svc${i}`, labels: { app: `app${i % 5}`, tier },
        networkMode: { kind: 'bridge' },
        attachments: [...(front ? [{ network: `${ns}_front`, ipv4: addr(n, 0, i) }] : []), ...(back ? [{ network: `${ns}_back`, ipv4: addr(n, 1, i) }] : [])],
        declaredPorts: [{ port: 8080, protocol: 'TCP', name: 'http' }],
        publishedPorts: [],
      });
    }
  }
  return { networks, endpoints };
}

export function syntheticWorld(count: number): World {
  const { networks, endpoints } = syntheticEndpoints(count);
  return { origin: 'bench:enforce', namespaces: [], networks, endpoints, externals: [], host: { addresses: [] }, warnings: [] };
}

/** `count` policies over the synthetic namespaces (10 per namespace). */
export function syntheticPolicies(count: number, endpoints: number): PolicySet {
  const set = emptyPolicySet();
  const namespaces = Math.ceil(endpoints / PER_NAMESPACE);
  const inNs = (ns: string, labels: Record<string, string>) => ({ namespaces: { kind: 'names' as const, names: [ns] }, labels: { matchLabels: labels } });
  for (let p = 0; p < count; p++) {
    const n = Math.floor(p / 10) % namespaces;
    const ns = `syn${n}`;
    const k = p % 10;
    const tier = TIERS[k % 4];
    const from = tier === 'web' ? undefined : tier === 'api' ? 'web' : 'api';
    const policy: Policy = {
      id: `bench:${ns}/p${p}`, name: `${ns}/p${p}`, kind: 'label',
      subject: inNs(ns, k < 4 ? { tier } : { tier, app: `app${k % 5}` }),
      isolates: { ingress: true, egress: tier === 'db' || tier === 'cache' ? false : k % 3 === 0 },
      ingress: [
        from
          ? { action: 'allow', peers: [{ kind: 'endpoints', selector: inNs(ns, { tier: from }) }], ports: [{ protocol: 'TCP', name: 'http' }] }
          : { action: 'allow', peers: 'all', ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 443 }] },
        { action: 'allow', peers: [{ kind: 'cidr', cidr: '100.64.0.0/10', except: [addr(n, 1, -2).replace(/\.0$/, '.0') + '/24'] }], ports: [{ protocol: 'TCP', port: 9000 + k, endPort: 9100 }] },
      ],
      egress: tier === 'db' || tier === 'cache'
        ? [{ action: 'deny', peers: [{ kind: 'internet' }] }]
        : [{ action: 'allow', peers: [{ kind: 'endpoints', selector: inNs(ns, {}) }] }, { action: 'allow', peers: [{ kind: 'host' }], ports: [{ protocol: 'UDP', port: 53 }] }],
    };
    set.policies.push(policy);
  }
  return set;
}

/** One more endpoint in namespace syn0 (a new container), on a free address. */
/**
 * Replica k of an endpoint (k < 40,000): the same identity (labels, namespace, networks) on a new
 * address, 100.120.x.y on its first network (100.121.x.y on its second), which the synthetic host
 * leaves free.
 */
export function replicaEndpoint(like: Endpoint, k: number): Endpoint {
  return { ...like, id: `${like.namespace}/rep${k}`, name: `rep${k}`, containerName: `rep${k}`, attachments: like.attachments.map((a, j) => ({ ...a, ipv4: a.ipv4 ? `100.${120 + j}.${Math.floor(k / 200)}.${(k % 200) + 1}` : undefined })) };
}

export function extraEndpoint(k: number): Endpoint {
  return {
    id: `syn0/extra${k}`, name: `extra${k}`, namespace: 'syn0', composeService: `extra${k}`, labels: { app: `app${k % 5}`, tier: 'api' },
    networkMode: { kind: 'bridge' },
    attachments: [{ network: 'syn0_back', ipv4: `100.65.0.${110 + (k % 140)}` }],
    declaredPorts: [{ port: 8080, protocol: 'TCP', name: 'http' }],
    publishedPorts: [],
  };
}

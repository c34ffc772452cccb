// Violation detection: flows that the policy's intent forbids but the topology, or something outside
// moat, allows or exposes. Reported as events (log, metric, status), not enforced (moat's rules already
// drop what they can); each one says why and how to fix it at the source.
import { connectionsAlong, outsidePublished, resolveWorld } from '../analysis/resolve.js';
import { isAllInterfaces } from '../model/address.js';
import type { PolicySet } from '../model/ir.js';
import { endpointDisplayName, type World } from '../model/world.js';

export interface Violation {
  /** `published-forbidden`, `host-network`, `unmanaged-network`. */
  kind: string;
  endpoint: string;
  containerId: string;
  message: string;
  fix: string;
}

export function findViolations(world: World, policies: PolicySet, managedNetworks: string[]): Violation[] {
  const rw = resolveWorld(world, policies);
  const out: Violation[] = [];
  const managed = new Set(managedNetworks);
  for (let i = 0; i < rw.endpoints.length; i++) {
    const e = rw.endpoints[i];
    if (rw.netnsOwner(i) !== i) continue;
    const who = endpointDisplayName(e);
    const isolatedIn = rw.isolated(i, 'ingress');
    const isolatedOut = rw.isolated(i, 'egress');
    if (e.networkMode.kind === 'host') {
      if (isolatedIn || isolatedOut) {
        out.push({ kind: 'host-network', endpoint: who, containerId: e.id, message: `${who} uses the host's network: its policy isolates it but nothing can enforce that`, fix: 'run it on a bridge network of its own' });
      }
      continue;
    }
    if (e.networkMode.kind !== 'bridge') continue;
    for (const a of e.attachments) {
      const n = rw.networks.get(a.network);
      if (n && n.driver === 'bridge' && !managed.has(a.network) && (isolatedIn || isolatedOut)) {
        out.push({ kind: 'unmanaged-network', endpoint: who, containerId: e.id, message: `${who} is attached to ${a.network}, which moat does not manage: its traffic there is not filtered`, fix: `remove the moat.managed=false label or --unmanaged ${a.network}, or detach the container` });
      }
    }
    // A port Docker publishes to the outside that the policy lets no outside source reach.
    const published = outsidePublished(rw, i);
    if (published.length === 0) continue;
    const intent = connectionsAlong(rw, { kind: 'internet' }, { kind: 'endpoint', index: i }, { kind: 'flat' });
    for (const p of published) {
      if (intent.contains(p.protocol, p.containerPort)) continue;
      const hasAllowlist = policies.publishedPortAllowlists.some((l) => l.hostPort === p.hostPort && l.protocol === p.protocol);
      if (hasAllowlist) continue;
      const bind = isAllInterfaces(p.hostIp) ? `0.0.0.0:${p.hostPort ?? '?'}` : `${p.hostIp}:${p.hostPort ?? '?'}`;
      out.push({
        kind: 'published-forbidden',
        endpoint: who,
        containerId: e.id,
        message: `${who} publishes ${p.containerPort}/${p.protocol.toLowerCase()} on ${bind}, but its policy allows no outside source there (moat drops it; Docker still exposes it)`,
        fix: `publish on 127.0.0.1 or drop the port mapping, or allow the sources in the policy (publishedPorts:)`,
      });
    }
  }
  return out;
}

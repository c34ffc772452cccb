// `moat explain FROM TO PORT[/PROTO]`: the verdict, then both sides (the source's egress and the
// destination's ingress) with the rule that decided, near misses, and the topology's reasons.
import { ConnSet } from '../model/connset.js';
import { formatPos, userError } from '../model/diagnostics.js';
import type { Policy, Rule } from '../model/ir.js';
import type { Protocol } from '../model/world.js';
import type { Analysis } from './reachability.js';
import {
  allowlistsFor,
  partyOf,
  peerMatches,
  ruleMatchesPeer,
  rulePorts,
  topology,
  type Direction,
  type Node,
  type Party,
  type Path,
  type ResolvedWorld,
  viaUserlandProxy,
} from './resolve.js';

export interface RuleRef {
  policy: string;
  policyId: string;
  /** 1-based index among the policy's rules in that direction. */
  rule: number;
  text: string;
  peers: string;
  ports: string;
  at?: string;
}

export type SideStatus = 'not-a-container' | 'not-isolated' | 'allowed' | 'isolated-no-match';

export interface SideExplanation {
  direction: Direction;
  /** The endpoint whose policy this side is, when it is a container. */
  endpoint?: string;
  status: SideStatus;
  allows: boolean;
  /** The default stance used when not isolated. */
  stance?: 'allow' | 'deny';
  isolatedBy: string[];
  allowedBy: RuleRef[];
  deniedBy: RuleRef[];
  nearMisses: string[];
  summary: string;
}

export interface Explanation {
  from: string;
  to: string;
  protocol: Protocol;
  port: number;
  verdict: 'allowed' | 'denied';
  mode: 'topology' | 'flat';
  topology: { paths: string[]; reasons: string[] };
  egress: SideExplanation;
  ingress: SideExplanation;
  published: string[];
}

export function parsePortArg(text: string): { protocol: Protocol; port: number } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(text);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw userError('cli.port', `"${text}" is not a port`, { fix: 'write PORT or PORT/PROTO, e.g. 8080, 443/tcp, 53/udp (1-65535)' });
  }
  return { port, protocol: (m[2] ?? 'tcp').toUpperCase() as Protocol };
}

function peersText(rule: Rule): string {
  if (rule.peers === 'all') return 'any peer';
  return rule.peers
    .map((p) => {
      switch (p.kind) {
        case 'endpoints':
          return p.selector.describes ?? 'selected containers';
        case 'cidr':
          return p.except.length ? `${p.cidr} except ${p.except.join(',')}` : p.cidr;
        default:
          return p.kind;
      }
    })
    .join(', ');
}

function portsText(rule: Rule): string {
  if (!rule.ports || rule.ports.length === 0) return 'all ports';
  return rule.ports
    .map((p) => ('name' in p ? `${p.protocol} port named ${p.name}` : p.port === undefined ? `${p.protocol} all` : `${p.protocol} ${p.port}${p.endPort ? `-${p.endPort}` : ''}`))
    .join(', ');
}

function ref(policy: Policy, direction: Direction, index: number, rule: Rule): RuleRef {
  return {
    policy: policy.name,
    policyId: policy.id,
    rule: index + 1,
    text: rule.text ?? `${direction}[${index}]`,
    peers: peersText(rule),
    ports: portsText(rule),
    at: rule.pos ? formatPos(rule.pos) : undefined,
  };
}

function explainSide(
  rw: ResolvedWorld,
  node: Node,
  direction: Direction,
  party: Party,
  destination: Node,
  protocol: Protocol,
  port: number,
  who: string,
): SideExplanation {
  const base = { direction, isolatedBy: [] as string[], allowedBy: [] as RuleRef[], deniedBy: [] as RuleRef[], nearMisses: [] as string[] };
  if (node.kind !== 'endpoint') {
    return { ...base, endpoint: who, status: 'not-a-container', allows: true, summary: `${who} is not a container: moat puts no ${direction} policy on it` };
  }
  const i = rw.netnsOwner(node.index);
  const destEndpoint = destination.kind === 'endpoint' ? rw.endpoints[rw.netnsOwner(destination.index)] : undefined;
  const selected = rw.selecting(i, direction);
  const isolatedBy = selected.filter((s) => s.isolates).map((s) => s.policy.name);
  const want = ConnSet.ports(protocol, port);
  const allowedBy: RuleRef[] = [];
  const deniedBy: RuleRef[] = [];
  const nearMisses: string[] = [];
  for (const s of selected) {
    s.policy[direction].forEach((rule, idx) => {
      const m = ruleMatchesPeer(rw, rule, party);
      const ports = rulePorts(rule, destEndpoint);
      const portOk = !ports.intersect(want).isEmpty;
      if (rule.action === 'deny') {
        if (m.matched && portOk) deniedBy.push(ref(s.policy, direction, idx, rule));
        return;
      }
      if (!s.isolates) return;
      if (m.matched && portOk) allowedBy.push(ref(s.policy, direction, idx, rule));
      else if (m.matched) {
        const named = (rule.ports ?? []).filter((p) => 'name' in p && ConnSet.none === rulePorts({ ...rule, ports: [p] }, destEndpoint));
        const r = ref(s.policy, direction, idx, rule);
        if (named.length) {
          nearMisses.push(`${r.policy} rule #${r.rule} (${r.text}): peer matches, but named port ${named.map((p) => ('name' in p ? p.name : '')).join(', ')} is not declared by the destination`);
        } else {
          nearMisses.push(`${r.policy} rule #${r.rule} (${r.text}): peer matches, but ${protocol} ${port} is not in ${r.ports}`);
        }
      } else if (m.nearMiss) {
        const r = ref(s.policy, direction, idx, rule);
        nearMisses.push(`${r.policy} rule #${r.rule} (${r.text}): ${m.nearMiss}`);
      }
    });
  }
  const stance = rw.policies.defaultStance;
  const isolated = isolatedBy.length > 0;
  const allowedBase = isolated ? allowedBy.length > 0 : stance === 'allow';
  const allows = allowedBase && deniedBy.length === 0;
  const status: SideStatus = !isolated ? 'not-isolated' : allowedBy.length ? 'allowed' : 'isolated-no-match';
  let summary: string;
  if (deniedBy.length) summary = `denied by ${deniedBy.map((d) => `${d.policy} rule #${d.rule} (${d.text})`).join('; ')}`;
  else if (!isolated) summary = `not isolated: default stance ${stance}${stance === 'allow' ? 's' : 's nothing'}`;
  else if (allowedBy.length) summary = `allowed by ${allowedBy.map((a) => `${a.policy} rule #${a.rule} (${a.peers}; ${a.ports})`).join('; ')}`;
  else summary = `isolated by ${isolatedBy.join(', ')}; no rule matches`;
  return { direction, endpoint: who, status, allows, stance: isolated ? undefined : stance, isolatedBy, allowedBy, deniedBy, nearMisses, summary };
}

function describePath(p: Path): string {
  switch (p.kind) {
    case 'network':
      return `shared network ${p.network}`;
    case 'host':
      return `host over the bridge of ${p.network}`;
    case 'published':
      return `published ports ${p.ports.map((x) => `${x.hostIp || '*'}:${x.hostPort ?? '?'}->${x.containerPort}/${x.protocol.toLowerCase()}`).join(', ')}`;
    case 'outbound':
      return `outbound through ${p.network}`;
    case 'flat':
      return 'flat (topology ignored)';
  }
}

export function explain(analysis: Analysis, fromName: string, toName: string, portText: string): Explanation {
  const a = analysis.nodeIndex(fromName);
  const b = analysis.nodeIndex(toName);
  const known = analysis.nodes.map((n) => n.id).join(', ');
  if (a === undefined) throw userError('cli.unknown-node', `unknown source "${fromName}"`, { fix: `use one of: ${known}` });
  if (b === undefined) throw userError('cli.unknown-node', `unknown destination "${toName}"`, { fix: `use one of: ${known}` });
  const { protocol, port } = parsePortArg(portText);
  const rw = analysis.resolved;
  const from = analysis.resolverNode(a);
  const to = analysis.resolverNode(b);
  const verdict = analysis.connections(a, b).contains(protocol, port) ? 'allowed' : 'denied';
  const topo = analysis.flat ? { paths: [{ kind: 'flat' } as Path], reasons: [] } : topology(rw, from, to);
  const path = topo.paths[0];
  const srcAddress = path?.kind === 'network' ? path.sourceAddress : undefined;
  const dstAddress = path?.kind === 'network' ? path.destinationAddress : undefined;
  const egress = explainSide(rw, from, 'egress', partyOf(to, dstAddress), to, protocol, port, analysis.nodes[a].id);
  const ingress = explainSide(rw, to, 'ingress', partyOf(from, srcAddress), to, protocol, port, analysis.nodes[b].id);
  const reasons = [...topo.reasons];
  const published: string[] = [];
  for (const p of topo.paths) {
    if (p.kind !== 'published') continue;
    const mapped = p.ports.filter((x) => x.protocol === protocol && x.containerPort === port);
    if (!mapped.length) reasons.push(`${protocol} ${port} is not published`);
    for (const m of mapped) {
      const lists = to.kind === 'endpoint' ? allowlistsFor(rw, rw.netnsOwner(to.index), m) : [];
      const party = partyOf(from, srcAddress);
      const listed = lists.some((l) => l.sources.some((s) => peerMatches(rw, s, party).matched));
      const proxied = from.kind === 'endpoint' && viaUserlandProxy(rw);
      published.push(
        `${m.hostIp || '*'}:${m.hostPort ?? '?'}->${m.containerPort}/${m.protocol.toLowerCase()}` +
          (proxied
            ? ' (through docker-proxy: egress is checked toward the host on the host port, and the destination sees the host)'
            : lists.length
              ? listed
                ? ' (source is on its allowlist)'
                : ' (source is not on its allowlist)'
              : ''),
      );
    }
  }
  if (!topo.paths.length && !reasons.length) reasons.push('no path');
  return {
    from: analysis.nodes[a].id,
    to: analysis.nodes[b].id,
    protocol,
    port,
    verdict,
    mode: analysis.flat ? 'flat' : 'topology',
    topology: { paths: topo.paths.map(describePath), reasons },
    egress,
    ingress,
    published,
  };
}

export function renderExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`${e.from} => ${e.to} : ${e.protocol} ${e.port}  ${e.verdict.toUpperCase()}`);
  lines.push(`  topology: ${e.topology.paths.length ? e.topology.paths.join('; ') : 'no path'}${e.topology.reasons.length ? ` (${e.topology.reasons.join('; ')})` : ''}`);
  if (e.published.length) lines.push(`  via: ${e.published.join('; ')}`);
  for (const side of [e.egress, e.ingress]) {
    lines.push(`  ${side.direction} of ${side.endpoint}: ${side.summary}`);
    for (const n of side.nearMisses) lines.push(`    near miss: ${n}`);
  }
  return lines.join('\n') + '\n';
}

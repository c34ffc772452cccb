// The Policy IR: the one form that labels, moat policy files and Kubernetes NetworkPolicies all
// compile into. The analyzer and the kernel compilers read only this. Semantics (docs/semantics.md):
//
//  * A policy selects endpoints (its subject) and may isolate them per direction (ingress, egress).
//  * An endpoint isolated in a direction accepts a connection in that direction only if some
//    allow rule of a policy that selects it (and isolates it in that direction) matches the peer
//    and the port: the union of all allows (Kubernetes' additive semantics).
//  * An endpoint that no policy isolates in a direction follows the policy set's default stance:
//    `allow` (Kubernetes' default, and moat's for gradual adoption) or `deny` (zero trust).
//  * Deny rules (the seed's security.deny.*) of any policy that selects the endpoint win over
//    every allow, whatever the isolation. Deny rules do not isolate by themselves.
//  * A connection A -> B on port p passes when A's egress allows it, B's ingress allows it, and
//    the topology lets the packet get there.
//  * A peer or selector that names something missing matches nothing (and is reported).
import type { SourcePos } from './diagnostics.js';
import type { Protocol } from './world.js';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** Kubernetes label selector: the requirements are ANDed; an empty selector matches everything. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Which namespaces a selector looks in. */
export type NamespaceScope =
  | { kind: 'all' }
  | { kind: 'names'; names: string[] }
  | { kind: 'selector'; selector: LabelSelector };

/** Selects endpoints: those in the scope's namespaces whose effective labels match. */
export interface EndpointSelector {
  namespaces: NamespaceScope;
  labels: LabelSelector;
  /**
   * Set when the selector names a thing that may not exist (a group, a container name): used to
   * report "matches nothing" warnings with the user's words.
   */
  describes?: string;
}

export type Peer =
  /** Containers chosen by selector. */
  | { kind: 'endpoints'; selector: EndpointSelector }
  /** Addresses (Kubernetes ipBlock): matches container addresses too. */
  | { kind: 'cidr'; cidr: string; except: string[] }
  /** The Docker host itself (its own addresses, processes in the host netns). */
  | { kind: 'host' }
  /** Any address that is not a container, the host, or a range the policy declares internal. */
  | { kind: 'internet' }
  /** Everything: containers, host, outside. */
  | { kind: 'any' };

/** A port in a rule: a number or range (all ports of the protocol when port is absent) or a name. */
export type PortSpec =
  | { protocol: Protocol; port?: number; endPort?: number }
  | { protocol: Protocol; name: string };

export interface Rule {
  action: 'allow' | 'deny';
  /** 'all' matches every peer (Kubernetes: `from`/`to` absent or empty). */
  peers: Peer[] | 'all';
  /** Absent: every port of every protocol, ICMP included. Present: these ports only. */
  ports?: PortSpec[];
  pos?: SourcePos;
  /** The rule as the user wrote it, for explain: `web:8080`, `from[0]`, ... */
  text?: string;
}

export type PolicyKind = 'label' | 'moat' | 'netpol' | 'published';

export interface Policy {
  /** Unique id: `label:shop/web`, `moat:policies/shop.yaml#web`, `netpol:shop/allow-web`. */
  id: string;
  /** Name shown to users. */
  name: string;
  kind: PolicyKind;
  pos?: SourcePos;
  subject: EndpointSelector;
  /** Whether the policy isolates its subject in each direction (Kubernetes policyTypes). */
  isolates: { ingress: boolean; egress: boolean };
  ingress: Rule[];
  egress: Rule[];
}

/**
 * An allowlist for a published host port (the seed's `iptables -I DOCKER-USER -s 192.168.1.100
 * --dport 3306 -j ACCEPT` plus the DROP after it). For connections that enter through the host port
 * (the conntrack original destination), only the listed sources pass, and they pass even if the
 * container's ingress rules would not let them.
 */
export interface PublishedPortAllowlist {
  id: string;
  hostPort: number;
  protocol: Protocol;
  /** Restrict to these endpoints' published ports; absent: every endpoint publishing hostPort. */
  target?: EndpointSelector;
  sources: Peer[];
  pos?: SourcePos;
}

/** A named group: membership adds the synthetic label `moat.group/<name>=true` to its members. */
export interface GroupDefinition {
  name: string;
  selector: EndpointSelector;
  pos?: SourcePos;
}

export type DefaultStance = 'allow' | 'deny';

export interface PolicySet {
  policies: Policy[];
  groups: GroupDefinition[];
  publishedPortAllowlists: PublishedPortAllowlist[];
  defaultStance: DefaultStance;
  /** Namespace labels from policy files (`namespaces:`), merged into the world's. */
  namespaceLabels: Record<string, Record<string, string>>;
  /** Named external hosts (from policy files' CIDR sets) shown as matrix nodes. */
  externals: { name: string; cidrs: string[] }[];
  /** Ranges that are not "internet" (besides containers and the host). */
  internalRanges: string[];
}

export function emptyPolicySet(): PolicySet {
  return {
    policies: [],
    groups: [],
    publishedPortAllowlists: [],
    defaultStance: 'allow',
    namespaceLabels: {},
    externals: [],
    internalRanges: [],
  };
}

/** Merges policy sets: policies and lists are concatenated; `deny` stance wins over `allow`. */
export function mergePolicySets(sets: PolicySet[]): PolicySet {
  const out = emptyPolicySet();
  for (const s of sets) {
    out.policies.push(...s.policies);
    out.groups.push(...s.groups);
    out.publishedPortAllowlists.push(...s.publishedPortAllowlists);
    if (s.defaultStance === 'deny') out.defaultStance = 'deny';
    for (const [ns, labels] of Object.entries(s.namespaceLabels)) {
      out.namespaceLabels[ns] = { ...(out.namespaceLabels[ns] ?? {}), ...labels };
    }
    out.externals.push(...s.externals);
    out.internalRanges.push(...s.internalRanges);
  }
  return out;
}

/** Synthetic labels added to every endpoint's effective labels, so selectors can use them. */
export const SYNTHETIC = {
  namespace: 'moat.io/namespace',
  name: 'moat.io/name',
  containerName: 'moat.io/container-name',
  composeProject: 'com.docker.compose.project',
  composeService: 'com.docker.compose.service',
  groupPrefix: 'moat.group/',
} as const;

export function groupLabel(group: string): string {
  return `${SYNTHETIC.groupPrefix}${group}`;
}

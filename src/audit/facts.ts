// The auditor's neutral view of a project: Compose files and the live engine both map onto these
// facts, and the service checks read only them.
import type { SourcePos } from '../model/diagnostics.js';
import type { World } from '../model/world.js';
import type { ComposeProject, ResolvedService } from '../sources/compose/index.js';
import type { PolicySet } from '../model/ir.js';

export interface PortFact {
  /** '' = all interfaces. */
  hostIp: string;
  hostPort?: number;
  /** "8080" or "8000-8010"; undefined when Docker picks. */
  published?: string;
  target: number;
  protocol: string;
  /** Index in the service's resolved `ports` list. */
  index: number;
  pos?: SourcePos;
}

export interface VolumeFact {
  type: string;
  source?: string;
  target: string;
  readOnly: boolean;
  pos?: SourcePos;
}

export interface ServiceFacts {
  name: string;
  image?: string;
  /** Built from a Dockerfile (`build:`), so the image name says nothing about what runs. */
  built: boolean;
  ports: PortFact[];
  /** PublishAllPorts (`docker run -P`), live only. */
  publishAll: boolean;
  /** Container ports declared (expose, EXPOSE, port targets). */
  containerPorts: number[];
  networkMode?: string;
  /** Network keys the service is attached to (Compose keys; live: network names). */
  networks: string[];
  volumes: VolumeFact[];
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  user?: string;
  readOnly: boolean;
  securityOpt: string[];
  environment: Record<string, string | null>;
  /** command + entrypoint as one text, for TLS switches. */
  commandText: string;
  /** Position of a field of the service (`['ports', 0]`, `['privileged']`); falls back to the service. */
  pos(path: (string | number)[]): SourcePos | undefined;
}

export interface NetworkFacts {
  key: string;
  name: string;
  driver: string;
  internal: boolean;
  external: boolean;
  options: Record<string, string>;
  pos?: SourcePos;
}

export interface ProjectFacts {
  name: string;
  source: 'compose' | 'live';
  services: ServiceFacts[];
  networks: Record<string, NetworkFacts>;
  /** For the reachability checks: the World and policies, and the endpoint id of each service. */
  world?: World;
  policySet?: PolicySet;
  endpointIdOf(service: string): string;
}

function cmdText(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  return Array.isArray(v) ? v.join(' ') : v;
}

export function serviceFactsFromCompose(project: ComposeProject, s: ResolvedService): ServiceFacts {
  const containerPorts = new Set<number>();
  for (const e of s.expose) containerPorts.add(e.port);
  for (const p of s.ports) containerPorts.add(p.target);
  return {
    name: s.name,
    image: s.image,
    built: s.config.build !== undefined && s.config.build !== null,
    ports: s.ports.map((p, index) => {
      const f: PortFact = { hostIp: p.hostIp, target: p.target, protocol: p.protocol, index, pos: p.pos };
      if (p.hostPort !== undefined) f.hostPort = p.hostPort;
      if (p.published !== undefined) f.published = p.published;
      return f;
    }),
    publishAll: false,
    containerPorts: [...containerPorts],
    networkMode: s.networkMode,
    networks: Object.keys(s.networks),
    volumes: s.volumes.map((v) => ({ type: v.type, source: v.source, target: v.target, readOnly: v.readOnly, pos: v.pos })),
    privileged: s.privileged,
    capAdd: s.capAdd,
    capDrop: s.capDrop,
    user: s.user,
    readOnly: s.readOnly,
    securityOpt: s.securityOpt,
    environment: s.environment,
    commandText: `${cmdText(s.entrypoint)} ${cmdText(s.command)}`.trim(),
    pos: (path) => project.positionOf(['services', s.name, ...path]),
  };
}

export function projectFactsFromCompose(project: ComposeProject, world?: World, policySet?: PolicySet): ProjectFacts {
  const networks: Record<string, NetworkFacts> = {};
  for (const n of Object.values(project.networks)) {
    networks[n.key] = { key: n.key, name: n.name, driver: n.driver, internal: n.internal, external: n.external, options: n.driverOpts, pos: n.pos };
  }
  return {
    name: project.name,
    source: 'compose',
    services: Object.values(project.services).map((s) => serviceFactsFromCompose(project, s)),
    networks,
    world,
    policySet,
    endpointIdOf: (service) => `${project.name}/${service}`,
  };
}

import type { Diagnostic, SourcePos } from '../../model/diagnostics.js';
import type { ExposedPort, ResolvedPort } from './ports.js';
import type { Obj } from './tree.js';

export interface ComposeOptions {
  /** -f files in order (the first one sets the project directory unless projectDirectory). Empty: compose.yaml etc. in the project directory or cwd. */
  files: string[];
  /** Else COMPOSE_PROJECT_NAME (env or .env), else top-level `name:`, else the project directory's basename, normalised like Compose. */
  projectName?: string;
  projectDirectory?: string;
  /** --profile; COMPOSE_PROFILES (env or .env) adds to these. */
  profiles?: string[];
  /** Process environment (default process.env); it wins over .env. */
  env?: Record<string, string | undefined>;
  /** --env-file (default: <projectDir>/.env when present). */
  envFiles?: string[];
}

export interface ServiceNetwork {
  aliases: string[];
  ipv4Address?: string;
  ipv6Address?: string;
  priority?: number;
  macAddress?: string;
}

export interface ResolvedVolume {
  type: string;
  /** Absolute host path (bind), volume name (volume), or undefined (anonymous volume, tmpfs). */
  source?: string;
  target: string;
  readOnly: boolean;
  pos?: SourcePos;
}

export interface ResolvedService {
  name: string;
  /** The service mapping after interpolation, extends, merging and canonical forms (maps for environment/labels/networks/depends_on, long-form volumes). */
  config: Obj;
  image?: string;
  containerName?: string;
  hostname?: string;
  profiles: string[];
  /** Raw network_mode (`host`, `none`, `bridge`, `service:x`, `container:x`), when set. */
  networkMode?: string;
  /** Networks by their key in the top-level `networks` (`default` when the service names none and has no network_mode). */
  networks: Record<string, ServiceNetwork>;
  ports: ResolvedPort[];
  expose: ExposedPort[];
  labels: Record<string, string>;
  /** null: a key without value that the environment does not provide either. */
  environment: Record<string, string | null>;
  volumes: ResolvedVolume[];
  privileged: boolean;
  readOnly: boolean;
  user?: string;
  capAdd: string[];
  capDrop: string[];
  securityOpt: string[];
  command?: string | string[];
  entrypoint?: string | string[];
  dependsOn: string[];
  /** deploy.replicas (or `scale`), when set. */
  replicas?: number;
  pos?: SourcePos;
}

export interface ResolvedNetwork {
  /** Key in the top-level `networks`. */
  key: string;
  /** The Docker network name: `<project>_<key>` unless `name:` or external. */
  name: string;
  driver: string;
  driverOpts: Record<string, string>;
  internal: boolean;
  external: boolean;
  enableIpv6: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  ipam: { driver?: string; config: { subnet?: string; gateway?: string; ipRange?: string }[] };
  config: Obj;
  pos?: SourcePos;
}

export interface ComposeProject {
  name: string;
  directory: string;
  files: string[];
  /** Active services (profiles applied). */
  services: Record<string, ResolvedService>;
  /** Services defined but disabled by profiles. */
  disabledServices: string[];
  networks: Record<string, ResolvedNetwork>;
  profiles: string[];
  /** The interpolation environment (.env overlaid by the process environment). */
  environment: Record<string, string>;
  /** file:line:col of the YAML node a resolved path came from, e.g. ['services','db','ports',0]. */
  positionOf(path: (string | number)[]): SourcePos | undefined;
  warnings: Diagnostic[];
}

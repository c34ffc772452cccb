// What the auditor knows about well-known services: risky ports, data-service images, TLS switches.
import ipaddr from 'ipaddr.js';

/** High-risk ports (seed 4.1 plus the usual scanner targets). */
export const HIGH_RISK_PORTS: ReadonlyMap<number, string> = new Map([
  [22, 'SSH'],
  [23, 'Telnet'],
  [445, 'SMB'],
  [1433, 'SQL Server'],
  [1521, 'Oracle'],
  [2181, 'ZooKeeper'],
  [2375, 'Docker API (plain)'],
  [2376, 'Docker API (TLS)'],
  [2379, 'etcd'],
  [2380, 'etcd peer'],
  [3306, 'MySQL/MariaDB'],
  [3389, 'RDP'],
  [5432, 'PostgreSQL'],
  [5672, 'AMQP (RabbitMQ)'],
  [5900, 'VNC'],
  [5984, 'CouchDB'],
  [6379, 'Redis'],
  [6443, 'Kubernetes API'],
  [7000, 'Cassandra'],
  [8086, 'InfluxDB'],
  [8500, 'Consul'],
  [9042, 'Cassandra CQL'],
  [9092, 'Kafka'],
  [9200, 'Elasticsearch'],
  [9300, 'Elasticsearch transport'],
  [10250, 'kubelet'],
  [11211, 'Memcached'],
  [15672, 'RabbitMQ management'],
  [27017, 'MongoDB'],
  [27018, 'MongoDB'],
  [27019, 'MongoDB'],
]);

export type DataKind =
  | 'postgres'
  | 'mysql'
  | 'mongo'
  | 'redis'
  | 'memcached'
  | 'elasticsearch'
  | 'mssql'
  | 'couchdb'
  | 'cassandra'
  | 'influxdb'
  | 'clickhouse'
  | 'neo4j'
  | 'rabbitmq'
  | 'kafka'
  | 'zookeeper'
  | 'etcd'
  | 'docker';

/** Image repository (last path component, no tag) -> kind. */
const IMAGE_KINDS: [RegExp, DataKind][] = [
  [/^(postgres|postgis|timescaledb|timescaledb-ha|pgvector|supabase-postgres|postgresql)$/, 'postgres'],
  [/^(mysql|mariadb|percona|percona-server|mysql-server)$/, 'mysql'],
  [/^(mongo|mongodb|mongodb-community-server)$/, 'mongo'],
  [/^(redis|redis-stack|redis-stack-server|valkey|keydb|dragonfly)$/, 'redis'],
  [/^memcached$/, 'memcached'],
  [/^(elasticsearch|opensearch)$/, 'elasticsearch'],
  [/^(mssql|server|azure-sql-edge)$/, 'mssql'],
  [/^couchdb$/, 'couchdb'],
  [/^(cassandra|scylla)$/, 'cassandra'],
  [/^influxdb$/, 'influxdb'],
  [/^clickhouse(-server)?$/, 'clickhouse'],
  [/^neo4j$/, 'neo4j'],
  [/^rabbitmq$/, 'rabbitmq'],
  [/^(kafka|cp-kafka)$/, 'kafka'],
  [/^(zookeeper|cp-zookeeper)$/, 'zookeeper'],
  [/^etcd$/, 'etcd'],
  [/^(docker|dind)$/, 'docker'],
];

/** Well-known container ports of data services, used when the image says nothing (a local build). */
const PORT_KINDS: ReadonlyMap<number, DataKind> = new Map([
  [5432, 'postgres'],
  [3306, 'mysql'],
  [27017, 'mongo'],
  [6379, 'redis'],
  [11211, 'memcached'],
  [9200, 'elasticsearch'],
  [1433, 'mssql'],
  [5984, 'couchdb'],
  [9042, 'cassandra'],
]);

/** The repository part of an image reference: `docker.io/library/postgres:16@sha256:..` -> `postgres`. */
export function imageRepo(image: string): string {
  let s = image.trim().toLowerCase();
  const at = s.indexOf('@');
  if (at >= 0) s = s.slice(0, at);
  const slash = s.lastIndexOf('/');
  const colon = s.lastIndexOf(':');
  if (colon > slash) s = s.slice(0, colon);
  return s.slice(slash + 1);
}

export function kindOfImage(image: string | undefined): DataKind | undefined {
  if (!image) return undefined;
  const full = image.toLowerCase();
  const repo = imageRepo(image);
  if (repo === 'server' && !full.includes('mssql')) return undefined;
  for (const [re, kind] of IMAGE_KINDS) if (re.test(repo)) return kind;
  return undefined;
}

/** Companion ports of data services (MySQL X protocol, Elasticsearch transport, ...). */
const COMPANION_PORTS = new Set([33060, 9300, 27018, 27019, 6380, 7000, 7001]);

/**
 * Data-service kind from the image, else (a local build) from its container ports: only when every
 * port it declares belongs to a data service, so a front end that happens to expose 3306 is not a database.
 */
export function dataKind(image: string | undefined, containerPorts: number[]): DataKind | undefined {
  const byImage = kindOfImage(image);
  if (byImage) return byImage;
  if (image !== undefined && image.trim() !== '') return undefined;
  let found: DataKind | undefined;
  for (const p of containerPorts) {
    const k = PORT_KINDS.get(p);
    if (k) found ??= k;
    else if (!COMPANION_PORTS.has(p)) return undefined;
  }
  return found;
}

/** Databases and caches (what the network and TLS checks are about). */
export const DATA_KINDS: ReadonlySet<DataKind> = new Set(['postgres', 'mysql', 'mongo', 'redis', 'memcached', 'elasticsearch', 'mssql', 'couchdb', 'cassandra', 'influxdb', 'clickhouse', 'neo4j']);

/**
 * Whether TLS is configured for a data service, from its command, entrypoint, environment and mounts.
 * Returns undefined for kinds whose TLS set-up we cannot see statically (TLS in a mounted config file we do not read).
 */
export function tlsConfigured(kind: DataKind, text: string, env: Record<string, string | null>): boolean | undefined {
  const t = text.toLowerCase();
  const e = (k: string) => (env[k] ?? '').toLowerCase();
  switch (kind) {
    case 'postgres':
      return /\bssl\s*=\s*(on|true|1)\b/.test(t) || /ssl_cert_file/.test(t);
    case 'redis':
      return /--tls-port\b/.test(t) || /\btls-port\b/.test(t);
    case 'mysql':
      return /require[-_]secure[-_]transport/.test(t) || /--ssl-cert\b/.test(t) || /--ssl[-_]ca\b/.test(t);
    case 'mongo':
      return /--tls(mode|certificatekeyfile)\b/.test(t) || /--ssl(mode|pemkeyfile)\b/.test(t);
    case 'memcached':
      return /(^|\s)-z(\s|$)/.test(t) || /--enable-ssl\b/.test(t);
    case 'elasticsearch':
      if (e('xpack.security.http.ssl.enabled') === 'true') return true;
      if (e('xpack.security.http.ssl.enabled') === 'false') return false;
      return /xpack\.security\.http\.ssl\.enabled=true/.test(t) ? true : undefined;
    default:
      return undefined;
  }
}

/** Environment variable names that hold secrets. */
const SECRET_NAME = /(^|_)(PASSWORD|PASSWD|PASS|PWD|SECRET|SECRET_KEY|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|AUTH_KEY|CREDENTIALS?)($|_)/i;
const NOT_SECRET_NAME = /(_FILE|_PATH|_FILES|_DIR|_LENGTH|_LEN|_MIN|_MAX|_POLICY|_METHOD|_ALGORITHM|_HASH_ALGO|_TYPE|_ENABLED|_EXPIRY|_EXPIRE|_TTL|_URL_FILE|_SCHEME|_SCHEMES|_ROTATION|_RESET|_REQUIRED|_CHANGE)$/i;
const NOT_SECRET_VALUE = /^(true|false|yes|no|on|off|0|1|none|null|changeme|empty|random|\/run\/secrets\/.*|\$\{.*\}|\$[A-Za-z_][A-Za-z0-9_]*)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !NOT_SECRET_NAME.test(name) && !/^(ALLOW_EMPTY|RANDOM_ROOT|MYSQL_ALLOW_EMPTY|MYSQL_RANDOM_ROOT)/i.test(name);
}

/** Whether an environment value looks like a literal secret (not empty, not a boolean, not a secret file path). */
export function isLiteralSecretValue(value: string | null): boolean {
  if (value === null) return false;
  const v = value.trim();
  if (v === '' || NOT_SECRET_VALUE.test(v)) return false;
  return true;
}

/** Loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x). */
export function isLoopback(ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  let a = ipaddr.parse(ip);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  return a.range() === 'loopback';
}

/** '' (all interfaces, both families), '0.0.0.0' (all IPv4), '::' (all IPv6). */
export function isAllInterfaces(ip: string): boolean {
  if (ip === '') return true;
  if (!ipaddr.isValid(ip)) return false;
  return ipaddr.parse(ip).range() === 'unspecified';
}

/** A specific address on a public (globally routed) range. */
export function isPublicAddress(ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  let a = ipaddr.parse(ip);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  const r = a.range();
  return r === 'unicast';
}

export function describeInterfaces(ip: string): string {
  if (ip === '') return 'all interfaces (0.0.0.0 and ::)';
  if (ip === '0.0.0.0') return 'all IPv4 interfaces (0.0.0.0)';
  if (isAllInterfaces(ip)) return 'all IPv6 interfaces (::)';
  return ip;
}

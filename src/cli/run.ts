// `moat run`: the controller daemon. Keeps moat's kernel rules in step with Docker and the policy
// files, repairs drift, and serves /healthz, /readyz, /metrics and /status (docs/controller.md).
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { Controller } from '../controller/controller.js';
import { ControlServer, DEFAULT_LISTEN, parseListen } from '../controller/server.js';
import { parseDuration } from '../controller/timing.js';
import { parseCidr } from '../model/address.js';
import { UserError } from '../model/diagnostics.js';
import { action, EXIT, withInputOptions, type InputOptions } from './common.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export interface RunOptions extends InputOptions {
  project?: string;
  backend: 'nft' | 'iptables';
  table: string;
  chainPrefix: string;
  setPrefix?: string;
  stateDir: string;
  nflogGroup: string;
  unmanaged?: string[];
  ipv6?: boolean;
  listen: string;
  tokenFile?: string;
  resyncInterval: string;
  driftInterval: string;
  debounce: string;
  maxDebounce: string;
  failClosedPool?: string[];
  watch?: boolean;
  logLevel: string;
}

function bad(code: string, message: string, fix: string): UserError {
  return new UserError({ severity: 'error', code, message, fix });
}

function duration(flag: string, text: string, min: number): number {
  const v = parseDuration(text);
  if (v === undefined || (v !== 0 && v < min)) throw bad('cli.duration', `${flag} ${text} is not a duration of at least ${min} ms (or 0)`, 'use e.g. 250ms, 30s, 5m');
  return v;
}

export function runCommand(): Command {
  return withInputOptions(new Command('run'))
    .description('run the controller: watch Docker and the policy files, keep the kernel rules in step, repair drift, serve health and metrics')
    .option('--project <name>', 'only this Compose project (com.docker.compose.project label) and its networks')
    .addOption(new Option('--backend <kind>', 'kernel backend').choices(['nft', 'iptables']).default('nft'))
    .option('--table <name>', 'nft table name (nft backend)', 'moat')
    .option('--chain-prefix <prefix>', 'iptables chain prefix (iptables backend)', 'MOAT')
    .option('--set-prefix <prefix>', 'ipset name prefix (iptables backend)')
    .option('--state-dir <dir>', 'state directory (SQLite database, applied rulesets)', '/var/lib/moat')
    .option('--nflog-group <n>', 'NFLOG group for dropped packets', '100')
    .option('--unmanaged <network>', 'a network moat must not manage (repeatable; or label the network moat.managed=false)', collect)
    .option('--no-ipv6', 'do not program IPv6 rules (iptables backend)')
    .option('--listen <address>', 'where /healthz, /readyz, /metrics and /status are served: unix:///PATH or HOST:PORT', DEFAULT_LISTEN)
    .option('--token-file <file>', 'bearer token required by the HTTP door (mandatory for a non-loopback address)')
    .option('--resync-interval <duration>', 'full resync period (0: only at start and after reconnects)', '60s')
    .option('--drift-interval <duration>', 'kernel drift check period (0: only on resync)', '10s')
    .option('--debounce <duration>', 'quiet time that ends a burst of Docker events', '10ms')
    .option('--max-debounce <duration>', 'longest a burst can delay an apply', '100ms')
    .option('--fail-closed-pool <cidr>', "keep this address pool fail-closed before its networks exist (repeatable; e.g. Docker's default-address-pools)", collect)
    .option('--no-watch', 'do not watch the policy files (SIGHUP still reloads)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default('info'))
    .addHelpText('after', '\nSignals: SIGHUP reloads the policy files; SIGTERM/SIGINT stop the controller (the kernel keeps its rules).\nThe controller holds the Docker socket, which is root-equivalent: see docs/controller.md.')
    .action(
      action(async (opts: RunOptions) => {
        if (opts.file?.length || opts.snapshot) throw bad('run.live-only', 'the controller follows the live engine', 'drop -f / --snapshot (use --docker-host to pick the engine)');
        const group = Number(opts.nflogGroup);
        if (!Number.isInteger(group) || group < 0 || group > 65535) throw bad('cli.nflog-group', `--nflog-group ${opts.nflogGroup} is not a group number`, 'use 0 to 65535');
        if (!/^[a-z][a-z0-9_]{0,30}$/.test(opts.table)) throw bad('cli.table', `--table ${opts.table} is not a valid nft table name`, 'use lower-case letters, digits and _ (up to 31)');
        if (opts.project !== undefined && !/^[a-z0-9][a-z0-9_-]*$/.test(opts.project)) throw bad('cli.project', `--project ${opts.project} is not a Compose project name`, 'use lower-case letters, digits, - and _');
        for (const p of opts.failClosedPool ?? []) if (!parseCidr(p)) throw bad('cli.pool', `--fail-closed-pool ${p} is not a CIDR`, 'use e.g. 172.17.0.0/16');
        const listen = parseListen(opts.listen);
        let token: string | undefined;
        if (opts.tokenFile) {
          try {
            token = readFileSync(opts.tokenFile, 'utf8').trim();
          } catch (e) {
            throw bad('cli.token-file', `cannot read --token-file ${opts.tokenFile}: ${(e as Error).message}`, 'check the path and permissions (the file should be mode 0600)');
          }
        }
        const logger = pino({ level: opts.logLevel, base: { pid: process.pid, name: 'moat' } });
        const server = new ControlServer(listen, { healthz: () => c.healthz(), readyz: () => c.readyz(), metrics: async () => ({ contentType: c.metrics.registry.contentType, body: await c.metrics.registry.metrics() }), status: () => c.status() }, token);
        const c = new Controller({
          dockerHost: opts.dockerHost,
          project: opts.project,
          policyPaths: opts.policy ?? [],
          labels: opts.labels !== false,
          stateDir: opts.stateDir,
          enforce: {
            backend: opts.backend,
            table: opts.table,
            chainPrefix: opts.chainPrefix,
            setPrefix: opts.setPrefix,
            stateDir: opts.stateDir,
            nflogGroup: group,
            unmanagedNetworks: opts.unmanaged,
            ipv6: opts.ipv6,
          },
          resyncIntervalMs: duration('--resync-interval', opts.resyncInterval, 1000),
          driftIntervalMs: duration('--drift-interval', opts.driftInterval, 500),
          debounceMs: duration('--debounce', opts.debounce, 0),
          maxDebounceMs: duration('--max-debounce', opts.maxDebounce, 0),
          failClosedPools: opts.failClosedPool,
          watchPolicies: opts.watch !== false,
          logger,
        });
        const where = await server.listen();
        logger.info({ listen: where, backend: opts.backend, project: opts.project }, 'moat controller starting');
        let stopping = false;
        const done = new Promise<number>((resolve) => {
          const stop = (sig: string) => {
            if (stopping) return;
            stopping = true;
            logger.info({ signal: sig }, 'stopping (the kernel keeps its rules)');
            void Promise.all([c.stop(), server.close()]).then(() => resolve(EXIT.ok));
          };
          process.on('SIGTERM', () => stop('SIGTERM'));
          process.on('SIGINT', () => stop('SIGINT'));
          process.on('SIGHUP', () => void c.reloadPolicy('SIGHUP'));
        });
        try {
          await c.start();
        } catch (e) {
          await server.close();
          throw e;
        }
        logger.info({ ready: c.readyz().ok }, 'moat controller running');
        return done;
      }),
    );
}

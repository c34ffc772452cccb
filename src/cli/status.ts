// `moat status`: what the controller enforces now, for which containers, since when, with drift and
// errors. Asks the running controller (its /status); when it does not answer, reads the copy the
// controller keeps in its state database.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_LISTEN, parseListen, request } from '../controller/server.js';
import { DB_FILE, StateStore } from '../controller/store.js';
import { UserError } from '../model/diagnostics.js';
import { action, EXIT, formatOption, out } from './common.js';

interface StatusOptions {
  listen: string;
  tokenFile?: string;
  stateDir: string;
  format: string;
  containers?: boolean;
}

type Status = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function formatStatus(s: Status, live: boolean, showContainers = true): string {
  const lines: string[] = [];
  const ago = (t?: string) => (t ? `${t}` : 'never');
  lines.push(live ? `controller: running (pid ${s.pid}, since ${s.startedAt})${s.ready ? ', ready' : ', NOT READY'}` : `controller: NOT ANSWERING; last status saved ${ago(s.savedAt)}`);
  lines.push(`backend: ${s.backend} (${s.target})${s.project ? `, project ${s.project}` : ''}`);
  lines.push(`docker: ${s.docker?.connected ? 'connected' : 'disconnected'}, reconnects ${s.docker?.reconnects ?? 0}, last event ${ago(s.docker?.lastEventAt)}`);
  const pol = s.policy ?? {};
  lines.push(`policy: ${pol.valid ? 'valid' : 'INVALID (the previous good policy stays in force)'}, enforced since ${ago(pol.enforcedSince)}; files: ${(pol.files ?? []).join(', ') || '(labels only)'}`);
  for (const e of pol.errors ?? []) lines.push(`  error: ${String(e).replace(/\n/g, '\n    ')}`);
  for (const e of pol.labelErrors ?? []) lines.push(`  label error: ${String(e).replace(/\n/g, '\n    ')}`);
  const r = s.ruleset;
  if (r) lines.push(`ruleset: applied ${r.appliedAt}: ${r.chains} chains, ${r.rules} rules, ${r.setElements} set elements; managed networks: ${(r.managedNetworks ?? []).join(', ') || 'none'}`);
  else lines.push('ruleset: nothing applied yet');
  const d = s.drift ?? {};
  lines.push(`drift: ${d.lastCheck ? `${d.lastCheck.drifted ? 'DRIFTED' : 'none'} at last check ${d.lastCheck.at}` : 'not checked yet'}; ${d.repairs ?? 0} repair(s) since start`);
  for (const f of d.lastCheck?.findings ?? []) lines.push(`  ${f}`);
  if (d.lastCheck && d.lastCheck.dockerUserJump === false) lines.push('  FORWARD does not jump to DOCKER-USER');
  if (s.lastError) lines.push(`last error: ${s.lastError.at}: ${s.lastError.message}`);
  const v = s.violations ?? [];
  lines.push(`violations: ${v.length}`);
  for (const x of v) lines.push(`  ${x.kind}: ${x.message}\n    fix: ${x.fix}`);
  const eps = (s.endpoints ?? []) as Status[];
  const enforced = eps.filter((e) => e.enforced).length;
  lines.push(`containers: ${eps.length} known, ${enforced} enforced`);
  if (showContainers) {
    for (const e of eps) lines.push(`  ${e.enforced ? 'enforced' : 'pending '} ${e.name} ${e.id.slice(0, 12)} ${(e.addresses ?? []).join(',') || '-'}${e.since ? ` since ${e.since}` : ''}${e.ingressChain || e.egressChain ? ` [${[e.ingressChain, e.egressChain].filter(Boolean).join(' ')}]` : ''}`);
  }
  for (const a of (s.applies ?? []) as Status[]) lines.push(`  apply ${a.at} ${a.ok ? 'ok' : 'FAILED'} ${a.mode} ${Math.round(a.durationMs)}ms ${a.reason}${a.error ? `: ${a.error}` : ''}`);
  return `${lines.join('\n')}\n`;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('what the controller enforces now, for which containers, since when, with drift and errors')
    .option('--listen <address>', 'the controller\'s address (as given to `moat run --listen`)', DEFAULT_LISTEN)
    .option('--token-file <file>', 'bearer token for the controller')
    .option('--state-dir <dir>', 'state directory, read when the controller does not answer', '/var/lib/moat')
    .option('--no-containers', 'leave out the list of containers')
    .addOption(formatOption(['text', 'json']))
    .addHelpText('after', '\nExit code: 0 when the controller runs, is ready, the policy is valid and nothing drifted; 1 otherwise.')
    .action(
      action(async (opts: StatusOptions) => {
        const address = parseListen(opts.listen);
        let token: string | undefined;
        if (opts.tokenFile) {
          try {
            token = readFileSync(opts.tokenFile, 'utf8').trim();
          } catch (e) {
            throw new UserError({ severity: 'error', code: 'cli.token-file', message: `cannot read --token-file ${opts.tokenFile}: ${(e as Error).message}`, fix: 'check the path and permissions' });
          }
        }
        let status: Status | undefined;
        let live = false;
        let why = '';
        try {
          const r = await request(address, '/status', token);
          if (r.status === 200) {
            status = JSON.parse(r.body) as Status;
            live = true;
          } else why = `the controller answered ${r.status}${r.status === 401 ? ' (pass --token-file)' : ''}`;
        } catch (e) {
          why = (e as Error).message;
        }
        if (!status) {
          const db = join(opts.stateDir, DB_FILE);
          if (!existsSync(db)) {
            throw new UserError({ severity: 'error', code: 'status.no-controller', message: `no controller answers at ${opts.listen} (${why}) and there is no state in ${opts.stateDir}`, fix: 'start it with `moat run` (or systemctl start moat), or pass --listen / --state-dir' });
          }
          const store = new StateStore(opts.stateDir, true);
          try {
            status = store.status<Status>() ?? {};
            status.applies = store.applies(10);
          } finally {
            store.close();
          }
          process.stderr.write(`moat status: the controller does not answer at ${opts.listen} (${why}); showing its last saved state\n`);
        }
        out(opts.format === 'json' ? `${JSON.stringify({ live, ...status }, null, 2)}\n` : formatStatus(status, live, opts.containers !== false));
        const healthy = live && status.ready && status.policy?.valid && !status.drift?.lastCheck?.drifted;
        return healthy ? EXIT.ok : EXIT.findings;
      }),
    );
}

// The deployment files: the systemd unit's ExecStart and the Compose file's command are accepted by
// `moat run`'s own option parser, and the Compose file has what the controller needs (host network,
// NET_ADMIN, the Docker socket read-only) and nothing more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Command } from 'commander';
import { runCommand } from '../../../src/cli/run.js';

function parsesAsRun(args: string[]): Record<string, unknown> {
  const cmd = runCommand();
  let seen: Record<string, unknown> | undefined;
  cmd.exitOverride();
  cmd.action((opts: Record<string, unknown>) => {
    seen = opts;
  });
  const program = new Command('moat').exitOverride().addCommand(cmd);
  program.parse(['node', 'moat', ...args]);
  assert.ok(seen, 'run action reached');
  return seen!;
}

test('systemd unit: ExecStart is a valid `moat run`, capabilities bounded, reload sends SIGHUP', () => {
  const unit = readFileSync('deploy/moat.service', 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1].split(/\s+/);
  const i = exec.indexOf('moat');
  const opts = parsesAsRun(exec.slice(i + 1));
  assert.deepEqual(opts.policy, ['/etc/moat/policies']);
  assert.equal(opts.listen, 'unix:///run/moat/moat.sock');
  assert.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN$/m);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  assert.match(unit, /^ReadWritePaths=\/var\/lib\/moat \/run\/moat$/m);
});

test('compose file: host network, only NET_ADMIN, docker socket read-only, command valid', () => {
  const doc = parse(readFileSync('deploy/compose.yaml', 'utf8'));
  const svc = doc.services.moat;
  assert.equal(svc.network_mode, 'host');
  assert.deepEqual(svc.cap_drop, ['ALL']);
  assert.deepEqual(svc.cap_add, ['NET_ADMIN']);
  assert.ok(svc.volumes.includes('/var/run/docker.sock:/var/run/docker.sock:ro'));
  assert.equal(svc.privileged, undefined);
  const opts = parsesAsRun(svc.command);
  assert.equal(opts.stateDir, '/var/lib/moat');
});

// Suppressions, the four report formats (SARIF checked structurally), --fail-on, and --fix
// (base + override resolved with the project's own resolver and audited again).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { buildFix } from '../../../src/audit/fix.js';
import { auditComposeProject, failsAt, runAudit } from '../../../src/audit/index.js';
import { renderJson, renderMarkdown, renderSarif, renderText } from '../../../src/audit/report.js';
import { parseSuppressionConfig } from '../../../src/audit/suppress.js';
import { UserError } from '../../../src/model/diagnostics.js';
import { loadComposeProject } from '../../../src/sources/compose/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '../../..');
const FIX = join(REPO, 'test/fixtures/audit');
const SUPPRESS = join(FIX, 'suppress');

describe('suppressions', () => {
  test('inline comments (trailing, line above, service line) and the config file; each listed with its reason', async () => {
    const { result } = await runAudit({ composeFiles: [join(SUPPRESS, 'compose.yaml')], env: {}, config: join(SUPPRESS, 'audit.yaml') });
    const sup = result.suppressed.map((s) => `${s.finding.checkId}@${s.finding.service}:${s.finding.pos?.line} ${s.suppression.origin} ${s.suppression.reason}`).sort();
    assert.deepEqual(sup, [
      'db-no-tls@db:13 config TLS terminates in the sidecar',
      'plaintext-secret@db:19 config test credentials only',
      'port-all-interfaces@web:10 inline ',
      "port-all-interfaces@web:9 inline public web server, behind the host firewall",
      "root-user@web:3 inline the image's entrypoint drops to www-data",
    ]);
    // A trailing comment covers its own line only: 9090 on the next line is still reported.
    assert.ok(result.findings.some((f) => f.checkId === 'port-all-interfaces' && f.pos?.line === 11));
    assert.ok(result.warnings.some((w) => /unknown check "no-such-check"/.test(w)));
    assert.ok(result.warnings.some((w) => /moat-ignore privileged matches no finding/.test(w)));
    assert.ok(result.warnings.some((w) => /ignore overlay-unencrypted matches no finding/.test(w)));
    assert.ok(result.warnings.some((w) => /gives no reason/.test(w)));
    const text = renderText(result, { base: REPO });
    assert.match(text, /suppressed \(5\)/);
    assert.match(text, /root-user \(web\) test\/fixtures\/audit\/suppress\/compose\.yaml:3:\d+: moat-ignore at test\/fixtures\/audit\/suppress\/compose\.yaml:2: the image's entrypoint drops to www-data/);
  });

  test('inline suppressions can be ignored', async () => {
    const { result } = await runAudit({ composeFiles: [join(SUPPRESS, 'compose.yaml')], env: {}, inline: false });
    assert.equal(result.suppressed.length, 0);
  });

  test('a bad config file is a user error listing every problem with its line', () => {
    assert.throws(
      () => parseSuppressionConfig(readFileSync(join(SUPPRESS, 'bad-config.yaml'), 'utf8'), 'bad-config.yaml'),
      (e: unknown) =>
        e instanceof UserError &&
        e.diagnostics.length === 2 &&
        e.diagnostics[0].pos?.line === 2 &&
        /unknown check id "no-such-check"/.test(e.diagnostics[0].message) &&
        /without reason/.test(e.diagnostics[1].message),
    );
  });
});

describe('reports', () => {
  const load = () => runAudit({ composeFiles: [join(SUPPRESS, 'compose.yaml')], env: {}, config: join(SUPPRESS, 'audit.yaml') });

  test('SARIF 2.1.0: rules, results with ruleId/ruleIndex/level, relative uris, regions', async () => {
    const { result } = await load();
    const log = JSON.parse(renderSarif(result, { base: REPO }));
    assert.equal(log.version, '2.1.0');
    assert.match(log.$schema, /sarif-2\.1\.0/);
    assert.equal(log.runs.length, 1);
    const run = log.runs[0];
    assert.equal(run.tool.driver.name, 'moat');
    const rules = run.tool.driver.rules as { id: string; shortDescription: { text: string }; defaultConfiguration: { level: string }; properties: Record<string, unknown> }[];
    assert.equal(new Set(rules.map((r) => r.id)).size, rules.length, 'rule ids unique');
    for (const r of rules) {
      assert.ok(r.shortDescription.text.length > 0);
      assert.ok(['error', 'warning', 'note'].includes(r.defaultConfiguration.level));
      assert.match(String(r.properties['security-severity']), /^\d+(\.\d+)?$/);
    }
    assert.equal(run.results.length, result.findings.length + result.suppressed.length);
    for (const res of run.results) {
      assert.equal(rules[res.ruleIndex].id, res.ruleId);
      assert.ok(['error', 'warning', 'note'].includes(res.level));
      assert.ok(res.message.text.length > 0);
      const loc = res.locations[0].physicalLocation;
      assert.equal(loc.artifactLocation.uri, 'test/fixtures/audit/suppress/compose.yaml');
      assert.equal(loc.artifactLocation.uriBaseId, '%SRCROOT%');
      assert.ok(Number.isInteger(loc.region.startLine) && loc.region.startLine >= 1);
      assert.ok(Number.isInteger(loc.region.startColumn) && loc.region.startColumn >= 1);
    }
    const suppressed = run.results.filter((r: { suppressions?: unknown[] }) => r.suppressions);
    assert.equal(suppressed.length, 5);
    assert.ok(suppressed.some((r: { suppressions: { kind: string }[] }) => r.suppressions[0].kind === 'inSource'));
    assert.ok(suppressed.some((r: { suppressions: { kind: string }[] }) => r.suppressions[0].kind === 'external'));
  });

  test('JSON and Markdown carry the same findings; text is grouped by service and colourless unless asked', async () => {
    const { result } = await load();
    const json = JSON.parse(renderJson(result, { base: REPO }));
    assert.equal(json.findings.length, result.findings.length);
    assert.equal(json.summary.suppressed, 5);
    assert.deepEqual(Object.keys(json.findings[0]).sort(), ['cis', 'column', 'data', 'file', 'fix', 'id', 'line', 'message', 'seed', 'service', 'severity', 'source', 'title']);
    const md = renderMarkdown(result, { base: REPO });
    for (const f of result.findings) assert.ok(md.includes(`\`${f.checkId}\``));
    assert.match(md, /## service db/);
    assert.match(md, /## Suppressed/);
    const plain = renderText(result, { base: REPO });
    assert.doesNotMatch(plain, /\x1b\[/);
    assert.match(plain, /^service db$/m);
    assert.match(plain, /^service web$/m);
    assert.match(renderText(result, { base: REPO, color: true }), /\x1b\[/);
  });

  test('--fail-on thresholds', async () => {
    const { result } = await load();
    // Remaining: web port 9090 (medium), db reachability (high) and network (medium).
    assert.equal(failsAt(result, 'critical'), false);
    assert.equal(failsAt(result, 'high'), true);
    assert.equal(failsAt(result, 'low'), true);
  });
});

describe('moat audit (command line)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'cli-entry.ts'), 'audit', ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });

  test('exit codes: 0 below the threshold, 1 at it, 2 for bad input (a diagnostic, no stack trace)', () => {
    const f = ['-f', 'test/fixtures/audit/checks/privileged.yaml'];
    assert.equal(cli([...f, '--fail-on', 'critical', '--format', 'json']).status, 1);
    const ok = cli(['-f', 'test/fixtures/audit/checks/hardened.yaml', '--fail-on', 'info']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /0 findings/);
    const bad = cli(['--daemon-json', 'test/fixtures/audit/daemon/invalid.json']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /invalid\.json:3:\d+: error: .*not valid JSON/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
    assert.equal(cli([]).status, 2);
  });

  test('--format sarif --output FILE, --dockerfile and --daemon-json together', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-audit-'));
    try {
      const outFile = join(dir, 'out.sarif');
      const r = cli(['--daemon-json', 'test/fixtures/audit/daemon/exposed.json', '--dockerfile', 'test/fixtures/audit/dockerfile/Dockerfile.root', '--format', 'sarif', '--output', outFile]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      const log = JSON.parse(readFileSync(outFile, 'utf8'));
      const uris = new Set(log.runs[0].results.map((x: { locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }) => x.locations[0].physicalLocation.artifactLocation.uri));
      assert.deepEqual([...uris].sort(), ['test/fixtures/audit/daemon/exposed.json', 'test/fixtures/audit/dockerfile/Dockerfile.root']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--fix', () => {
  const base = join(FIX, 'fix', 'compose.yaml');

  async function fixRound() {
    const project = await loadComposeProject({ files: [base], env: {} });
    const before = auditComposeProject(project).findings;
    const plan = buildFix(project, before);
    const dir = mkdtempSync(join(tmpdir(), 'moat-fix-'));
    const over = join(dir, 'moat-fix.yaml');
    writeFileSync(over, plan.text);
    // The project directory stays the base file's (as with docker compose -f a -f b).
    const fixed = await loadComposeProject({ files: [base, over], env: {} });
    const after = auditComposeProject(fixed).findings;
    rmSync(dir, { recursive: true, force: true });
    return { before, after, plan };
  }

  test('the override is a Compose file: services and networks only, ports replaced with !override', async () => {
    const { plan } = await fixRound();
    const doc = YAML.parseDocument(plan.text);
    assert.deepEqual(doc.errors, []);
    const body = doc.toJS() as { services: Record<string, Record<string, unknown>>; networks: Record<string, unknown> };
    assert.deepEqual(Object.keys(body).sort(), ['networks', 'services']);
    const ports = doc.getIn(['services', 'web', 'ports'], true) as { tag?: string };
    assert.equal(ports.tag, '!override');
    assert.deepEqual(body.services.web.ports, [
      { target: 80, published: '80', host_ip: '127.0.0.1', protocol: 'tcp' },
      { target: 443, published: '8443', host_ip: '::1', protocol: 'tcp' },
      { target: 9000, published: '9000', host_ip: '127.0.0.1', protocol: 'tcp' },
    ]);
    assert.deepEqual(body.networks, { data: { internal: true } });
    assert.deepEqual(body.services.db.cap_drop, ['ALL']);
    assert.ok((body.services.db.cap_add as string[]).includes('CHOWN'), 'a root entrypoint keeps what it needs to switch users');
    assert.ok((body.services.web.cap_add as string[]).includes('NET_BIND_SERVICE'), 'nginx listens on 80');
    assert.equal((body.services.api.cap_add as string[] | undefined), undefined, 'api runs as 1000 and listens on nothing privileged');
    assert.ok(plan.notes.some((n) => /"cachenet" not made internal/.test(n)));
  });

  test('base + override, resolved and audited again: the fixed findings disappear', async () => {
    const { before, after, plan } = await fixRound();
    const key = (f: { checkId: string; service?: string }) => `${f.checkId}@${f.service}`;
    const nonPort = plan.fixed.filter((f) => !f.checkId.startsWith('port-'));
    assert.ok(nonPort.length >= 12, `fixes planned: ${nonPort.length}`);
    const remaining = new Set(after.map(key));
    for (const f of nonPort) assert.ok(!remaining.has(key(f)), `${key(f)} fixed`);
    assert.ok(remaining.has('db-network-not-internal@cache'), 'the network that could not be made internal still reports');
    assert.ok(before.some((f) => f.checkId === 'db-network-not-internal' && f.service === 'db'));
    assert.ok(!after.some((f) => f.checkId === 'cap-add-dangerous'), 'the capabilities added back are not dangerous ones');
  });

  test('base + override: the re-bound ports are no longer on all interfaces', async () => {
    // Compose appends ports from later files; only the `!override` tag (Compose 2.24.4+) replaces them,
    // and the project's resolver applies it (test/unit/compose/tags.test.ts).
    const { after } = await fixRound();
    assert.deepEqual(after.filter((f) => f.service === 'web' && f.checkId.startsWith('port-')), []);
  });
});

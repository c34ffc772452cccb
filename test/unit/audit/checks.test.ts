// Every Compose check has a fixture that triggers it (test/fixtures/audit/checks/<id>.yaml, the lines
// marked `# @finding` are where findings must point) and hardened.yaml triggers none of them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKS } from '../../../src/audit/catalogue.js';
import { runAudit, type Finding } from '../../../src/audit/index.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/audit/checks');

function markedLines(file: string): number[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l, i) => (l.includes('# @finding') ? i + 1 : 0))
    .filter((n) => n > 0);
}

/** A marker on line L matches a finding on L, or a finding about the whole service that points at its first attribute (L+1). */
function matches(f: Finding, line: number): boolean {
  return f.pos?.line === line || (f.atService === true && f.pos?.line === line + 1);
}

async function audit(file: string): Promise<Finding[]> {
  const r = await runAudit({ composeFiles: [file], env: {}, inline: false });
  return r.result.findings;
}

const composeChecks = CHECKS.filter((c) => c.scope === 'service' || c.scope === 'project');

describe('compose checks', () => {
  test('hardened.yaml triggers no check', async () => {
    const findings = await audit(join(DIR, 'hardened.yaml'));
    assert.deepEqual(
      findings.map((f) => `${f.checkId} ${f.service ?? ''}: ${f.message}`),
      [],
    );
  });

  for (const check of composeChecks) {
    test(`${check.id}: triggered by its fixture, at the marked lines, and nothing else marked is missed`, async () => {
      const file = join(DIR, `${check.id}.yaml`);
      assert.ok(existsSync(file), `fixture ${file} exists`);
      const findings = (await audit(file)).filter((f) => f.checkId === check.id);
      assert.ok(findings.length > 0, `${check.id} found`);
      for (const f of findings) {
        assert.equal(f.severity, check.severity);
        assert.equal(f.pos?.file, file, 'points into the fixture');
      }
      const marks = markedLines(file);
      for (const line of marks) {
        assert.ok(findings.some((f) => matches(f, line)), `a ${check.id} finding at line ${line}; got ${findings.map((f) => f.pos?.line).join(',')}`);
      }
      for (const f of findings) {
        if (marks.length) assert.ok(marks.some((l) => matches(f, l)), `unexpected ${check.id} finding at line ${f.pos?.line}: ${f.message}`);
      }
    });
  }
});

describe('check details', () => {
  test('ports: IPv4, IPv6, interpolation default, range (one finding), long syntax', async () => {
    const findings = (await audit(join(DIR, 'port-all-interfaces.yaml'))).filter((f) => f.checkId === 'port-all-interfaces');
    const byTarget = new Map(findings.map((f) => [f.data?.target, f]));
    assert.equal(findings.length, 7);
    assert.match(byTarget.get(80)!.message, /all interfaces \(0\.0\.0\.0 and ::\)/);
    assert.match(byTarget.get(81)!.message, /all IPv4 interfaces/);
    assert.match(byTarget.get(82)!.message, /all IPv6 interfaces/);
    assert.match(byTarget.get(83)!.message, /all IPv4 interfaces/, 'the interpolation default 0.0.0.0 is applied');
    assert.match(byTarget.get(8000)!.message, /8000-8002->8000-8002\/tcp/);
    assert.equal(byTarget.get(8000)!.data?.count, 3);
    assert.match(byTarget.get(84)!.message, /all IPv6 interfaces/);
    assert.equal(byTarget.has(86), false, 'loopback is fine');
  });

  test('high-risk ports are found by port and by image, not also as port-all-interfaces', async () => {
    const findings = await audit(join(DIR, 'port-high-risk.yaml'));
    const risky = findings.filter((f) => f.checkId === 'port-high-risk');
    assert.deepEqual(risky.map((f) => f.service).sort(), ['cache', 'db', 'search', 'ssh']);
    assert.match(risky.find((f) => f.service === 'ssh')!.message, /^SSH port/);
    assert.equal(findings.filter((f) => f.checkId === 'port-all-interfaces').length, 0);
  });

  test('the Docker socket read-only is still reported, and says why', async () => {
    const findings = (await audit(join(DIR, 'docker-socket.yaml'))).filter((f) => f.checkId === 'docker-socket');
    assert.deepEqual(findings.map((f) => f.service).sort(), ['long', 'short']);
    assert.ok(findings.every((f) => /read-only, which does not restrict the API/.test(f.message)));
  });

  test('plaintext secrets: literals only, never the value in the message', async () => {
    const findings = (await audit(join(DIR, 'plaintext-secret.yaml'))).filter((f) => f.checkId === 'plaintext-secret');
    assert.deepEqual(findings.map((f) => f.data?.variable).sort(), ['AWS_SECRET_ACCESS_KEY', 'GF_SECURITY_ADMIN_PASSWORD', 'POSTGRES_PASSWORD']);
    for (const f of findings) assert.doesNotMatch(f.message, /example|wJalr|admin$/);
  });

  test('db-reachable-from-entry names the entry service from the matrix', async () => {
    const findings = (await audit(join(DIR, 'db-reachable-from-entry.yaml'))).filter((f) => f.checkId === 'db-reachable-from-entry');
    assert.equal(findings.length, 1);
    assert.equal(findings[0].service, 'db');
    assert.match(findings[0].message, /public entry "web"/);
  });
});

// The catalogue is complete (id, title, severity, rationale, fix, seed section) and docs/audit.md
// documents every check with the same severity, seed section and CIS id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKS } from '../../../src/audit/catalogue.js';
import { SEVERITIES } from '../../../src/audit/types.js';

const DOC = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../../docs/audit.md'), 'utf8');

test('every check is complete and unique', () => {
  assert.equal(new Set(CHECKS.map((c) => c.id)).size, CHECKS.length);
  for (const c of CHECKS) {
    assert.match(c.id, /^[a-z][a-z0-9-]+$/);
    assert.ok(SEVERITIES.includes(c.severity));
    for (const field of [c.title, c.rationale, c.fix]) assert.ok(field.length > 10, `${c.id}: text`);
    assert.match(c.seed, /^\d\.\d$/, `${c.id}: seed section`);
    if (c.cis) assert.match(c.cis, /^\d\.\d{1,2}$/);
  }
});

test('docs/audit.md documents every check as the catalogue says', () => {
  for (const c of CHECKS) {
    const at = DOC.indexOf(`#### \`${c.id}\``);
    assert.ok(at >= 0, `${c.id} documented`);
    const section = DOC.slice(at, DOC.indexOf('\n####', at + 5) >>> 0 || undefined);
    assert.ok(section.includes(`**Severity:** ${c.severity}`), `${c.id}: severity`);
    assert.ok(section.includes(`**Seed section:** ${c.seed}`), `${c.id}: seed`);
    assert.ok(section.includes(`**CIS Docker Benchmark v1.6.0:** ${c.cis ?? '—'}`), `${c.id}: CIS`);
  }
});

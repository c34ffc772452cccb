import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LabelSelector } from '../../src/model/ir.js';
import { labelSelectorMatcher, matchesLabelSelector } from '../../src/model/selector.js';
import { safeComment } from '../../src/enforce/validate.js';

test('labelSelectorMatcher answers as matchesLabelSelector', () => {
  const selectors: LabelSelector[] = [
    {},
    { matchLabels: {} },
    { matchLabels: { tier: 'web' } },
    { matchLabels: { tier: 'web', app: 'a' } },
    { matchLabels: { constructor: 'x' } },
    { matchLabels: { toString: 'x' } },
    { matchLabels: { missing: 'x' } },
    { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'db'] }] },
    { matchLabels: { app: 'a' }, matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] },
  ];
  const labelSets: Record<string, string>[] = [
    {},
    { tier: 'web' },
    { tier: 'web', app: 'a' },
    { tier: 'db', app: 'a' },
    { app: 'a' },
    { constructor: 'x' },
    { toString: 'y' },
    Object.assign(Object.create(null) as Record<string, string>, { tier: 'web' }),
  ];
  for (const s of selectors) {
    const m = labelSelectorMatcher(s);
    for (const l of labelSets) assert.equal(m(l), matchesLabelSelector(s, l), `${JSON.stringify(s)} on ${JSON.stringify(l)}`);
  }
});

test('safeComment: the fast path gives what the replacements give', () => {
  const slow = (text: string, max = 120) => {
    const s = text.replace(/[^A-Za-z0-9 ._:/@=,+#-]/g, '_').replace(/\s+/g, ' ').trim();
    return s.length > max ? s.slice(0, max) : s;
  };
  const samples = ['', ' ', 'ctr:shop/web', 'policy:moat:a.yaml#web', ' a', 'a ', 'a  b', 'a b', 'a\tb', 'é', 'a"b;c{}', 'x'.repeat(130), 'x '.repeat(70), '\u00a0a', 'a\u2028b'];
  for (const t of samples) for (const max of [120, 63, 5]) assert.equal(safeComment(t, max), slow(t, max), JSON.stringify(t));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interpolateString } from '../../../src/sources/compose/interpolate.js';
import { parseDotEnv } from '../../../src/sources/compose/dotenv.js';
import { UserError } from '../../../src/model/diagnostics.js';

const env: Record<string, string> = { SET: 'value', EMPTY: '', B: 'bee', PORT: '8080' };
const ctx = (unset: string[] = []) => ({ lookup: (n: string) => env[n], onUnset: (n: string) => unset.push(n) });
const I = (s: string, unset?: string[]) => interpolateString(s, ctx(unset));

test('plain and braced variables', () => {
  assert.equal(I('$SET'), env.SET);
  assert.equal(I('${SET}'), env.SET);
  assert.equal(I('a-${SET}-b'), `a-${env.SET}-b`);
  assert.equal(I('$SET.x'), `${env.SET}.x`);
  assert.equal(I('${PORT}:80'), `${env.PORT}:80`);
});

test('unset variable becomes empty and is reported', () => {
  const unset: string[] = [];
  assert.equal(I('x${NOPE}y$NOPE2', unset), 'xy');
  assert.deepEqual(unset, ['NOPE', 'NOPE2']);
});

test(':- and - defaults distinguish empty from unset', () => {
  assert.equal(I('${NOPE:-d}'), 'd');
  assert.equal(I('${EMPTY:-d}'), 'd');
  assert.equal(I('${SET:-d}'), env.SET);
  assert.equal(I('${NOPE-d}'), 'd');
  assert.equal(I('${EMPTY-d}'), '');
  assert.equal(I('${SET-d}'), env.SET);
  assert.equal(I('${NOPE:-127.0.0.1:13306}:3306'), '127.0.0.1:13306:3306');
  assert.equal(I('${NOPE:-}'), '');
});

test(':+ and + alternatives', () => {
  assert.equal(I('${SET:+alt}'), 'alt');
  assert.equal(I('${EMPTY:+alt}'), '');
  assert.equal(I('${EMPTY+alt}'), 'alt');
  assert.equal(I('${NOPE+alt}'), '');
  assert.equal(I('${NOPE:+alt}'), '');
});

test(':? and ? required variables', () => {
  assert.equal(I('${SET:?must}'), env.SET);
  assert.equal(I('${EMPTY?must}'), '');
  for (const [tpl, name] of [['${NOPE:?give it}', 'NOPE'], ['${EMPTY:?give it}', 'EMPTY'], ['${NOPE?give it}', 'NOPE']]) {
    assert.throws(() => interpolateString(tpl, ctx(), { file: 'f.yml', line: 3, col: 7 }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      const d = e.diagnostics[0];
      assert.equal(d.message, `required variable ${name} is missing a value: give it`);
      assert.deepEqual(d.pos, { file: 'f.yml', line: 3, col: 7 });
      assert.ok(d.fix);
      return true;
    });
  }
});

test('nested defaults', () => {
  assert.equal(I('${NOPE:-${B:-x}}'), env.B);
  assert.equal(I('${NOPE:-${NOPE2:-x}}'), 'x');
  assert.equal(I('${NOPE:-${NOPE2:-${B}}}-z'), `${env.B}-z`);
  assert.equal(I('${SET:-${NOPE:?not evaluated}}'), env.SET);
});

test('$$ escapes a dollar', () => {
  assert.equal(I('$$SET'), '$SET');
  assert.equal(I('a$$b'), 'a$b');
  assert.equal(I('$${SET}'), '${SET}');
  assert.equal(I('cost 5$'), 'cost 5$');
});

test('malformed templates are user errors', () => {
  assert.throws(() => I('${SET'), UserError);
  assert.throws(() => I('${1abc}'), UserError);
  assert.throws(() => I('${SET!x}'), UserError);
});

test('.env parsing: quotes, comments, export, interpolation', () => {
  const text = [
    '# comment',
    'A=plain value # comment',
    "B='single $A'",
    'C="double ${A}\\n"',
    'export D=d',
    'E=',
    "F=''",
    'G=${A}-g',
    'H=x#nocomment',
    'M="line1',
    'line2"',
  ].join('\n');
  const v = parseDotEnv(text, '.env', () => undefined);
  assert.equal(v.A, 'plain value');
  assert.equal(v.B, 'single $A');
  assert.equal(v.C, 'double plain value\n');
  assert.equal(v.D, 'd');
  assert.equal(v.E, '');
  assert.equal(v.F, '');
  assert.equal(v.G, 'plain value-g');
  assert.equal(v.H, 'x#nocomment');
  assert.equal(v.M, 'line1\nline2');
  assert.throws(() => parseDotEnv('not a line!', '.env', () => undefined), UserError);
});

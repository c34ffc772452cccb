// Dockerfile checks: the final stage's USER, and EXPOSE of high-risk ports.
import { readFileSync } from 'node:fs';
import { UserError, type SourcePos } from '../model/diagnostics.js';
import { checkById } from './catalogue.js';
import { HIGH_RISK_PORTS } from './known.js';
import type { Finding } from './types.js';

interface Instruction {
  keyword: string;
  args: string;
  line: number;
  col: number;
}

/** Splits a Dockerfile into instructions (continuation lines joined, comments and parser directives dropped). */
export function parseDockerfile(text: string): Instruction[] {
  const lines = text.split(/\r?\n/);
  const out: Instruction[] = [];
  let escape = '\\';
  let i = 0;
  let directives = true;
  const maxLines = lines.length;
  while (i < maxLines) {
    const raw = lines[i];
    const startLine = i + 1;
    i++;
    if (directives) {
      const d = /^\s*#\s*escape\s*=\s*(\S)\s*$/i.exec(raw);
      if (d) {
        escape = d[1];
        continue;
      }
      if (!/^\s*#\s*\w+\s*=/.test(raw)) directives = false;
    }
    if (/^\s*(#|$)/.test(raw)) continue;
    let body = raw;
    while (body.trimEnd().endsWith(escape) && i < maxLines) {
      body = body.trimEnd().slice(0, -1);
      let next = lines[i];
      i++;
      while (/^\s*#/.test(next) && i < maxLines) {
        next = lines[i];
        i++;
      }
      body += ` ${next}`;
    }
    const m = /^(\s*)(\S+)\s*(.*)$/.exec(body);
    if (!m) continue;
    out.push({ keyword: m[2].toUpperCase(), args: m[3].trim(), line: startLine, col: m[1].length + 1 });
  }
  return out;
}

export function runDockerfileChecks(text: string, file: string): Finding[] {
  const ins = parseDockerfile(text);
  const out: Finding[] = [];
  const pos = (x: Instruction): SourcePos => ({ file, line: x.line, col: x.col });
  const add = (checkId: string, message: string, p: SourcePos, data?: Finding['data']) => {
    out.push({ checkId, severity: checkById(checkId)!.severity, message, source: 'dockerfile', pos: p, ...(data ? { data } : {}) });
  };
  // Final stage: instructions after the last FROM.
  let start = 0;
  ins.forEach((x, idx) => {
    if (x.keyword === 'FROM') start = idx;
  });
  const final = ins.slice(start);
  const users = final.filter((x) => x.keyword === 'USER');
  const last = users[users.length - 1];
  if (!last) add('dockerfile-no-user', 'the final stage has no USER instruction: the image runs as root', final[0] ? pos(final[0]) : { file, line: 1, col: 1 });
  else {
    const user = last.args.split(/\s+/)[0] ?? '';
    if (/^(root|0)(:.*)?$/.test(user)) add('dockerfile-no-user', `the final stage ends with USER ${user}`, pos(last));
  }
  for (const x of ins.filter((y) => y.keyword === 'EXPOSE')) {
    for (const tok of x.args.split(/\s+/).filter(Boolean)) {
      const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(tok);
      if (!m) continue;
      const a = Number(m[1]);
      const b = m[2] ? Number(m[2]) : a;
      for (let p = a; p <= b && p - a < 65536; p++) {
        const what = HIGH_RISK_PORTS.get(p);
        if (what) add('dockerfile-expose-high-risk', `EXPOSE ${p} (${what})`, pos(x), { port: p });
      }
    }
  }
  return out;
}

export function readDockerfile(file: string): Finding[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError({ severity: 'error', code: 'audit.dockerfile', message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, pos: { file, line: 0, col: 0 }, fix: 'Check the --dockerfile path.' });
  }
  return runDockerfileChecks(text, file);
}

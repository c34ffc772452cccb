// `moat diff`: flows added, removed and changed between two analyses (two policy sets or two
// snapshots), for review in CI.
import type { Analysis } from './reachability.js';
import { flowsOf } from './render.js';

export interface FlowChange {
  kind: 'added' | 'removed' | 'changed';
  from: string;
  to: string;
  before: string;
  after: string;
}

export function diffAnalyses(before: Analysis, after: Analysis): FlowChange[] {
  const key = (from: string, to: string) => `${from}\u0000${to}`;
  const b = new Map(flowsOf(before).map((f) => [key(f.from, f.to), f]));
  const a = new Map(flowsOf(after).map((f) => [key(f.from, f.to), f]));
  const changes: FlowChange[] = [];
  for (const [k, f] of a) {
    const old = b.get(k);
    if (!old) changes.push({ kind: 'added', from: f.from, to: f.to, before: 'None', after: f.connections.toString() });
    else if (old.connections !== f.connections) {
      changes.push({ kind: 'changed', from: f.from, to: f.to, before: old.connections.toString(), after: f.connections.toString() });
    }
  }
  for (const [k, f] of b) {
    if (!a.has(k)) changes.push({ kind: 'removed', from: f.from, to: f.to, before: f.connections.toString(), after: 'None' });
  }
  const order = { removed: 0, changed: 1, added: 2 };
  return changes.sort((x, y) => x.from.localeCompare(y.from) || x.to.localeCompare(y.to) || order[x.kind] - order[y.kind]);
}

export function renderDiff(changes: FlowChange[]): string {
  if (!changes.length) return 'no change in allowed flows\n';
  const sign = { added: '+', removed: '-', changed: '~' };
  return (
    changes
      .map((c) =>
        c.kind === 'changed' ? `~ ${c.from} => ${c.to} : ${c.before} -> ${c.after}` : `${sign[c.kind]} ${c.from} => ${c.to} : ${c.kind === 'added' ? c.after : c.before}`,
      )
      .join('\n') + `\n${changes.length} change${changes.length === 1 ? '' : 's'}\n`
  );
}

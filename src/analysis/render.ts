// Matrix output: text, JSON, CSV, Markdown, DOT. Pure functions of an Analysis.
import type { ConnSet } from '../model/connset.js';
import type { Analysis } from './reachability.js';

export type MatrixFormat = 'text' | 'json' | 'csv' | 'md' | 'dot';
export const MATRIX_FORMATS: MatrixFormat[] = ['text', 'json', 'csv', 'md', 'dot'];

export interface Flow {
  from: string;
  to: string;
  connections: ConnSet;
}

export function flowsOf(analysis: Analysis): Flow[] {
  return analysis.flows().map((f) => ({ from: analysis.nodes[f.from].id, to: analysis.nodes[f.to].id, connections: f.connections }));
}

export function renderMatrix(analysis: Analysis, format: MatrixFormat): string {
  const flows = flowsOf(analysis);
  switch (format) {
    case 'text':
      return flows.map((f) => `${f.from} => ${f.to} : ${f.connections.toString()}`).join('\n') + (flows.length ? '\n' : '');
    case 'json':
      return `${JSON.stringify(matrixJson(analysis, flows), null, 2)}\n`;
    case 'csv':
      return ['from,to,connections', ...flows.map((f) => [f.from, f.to, f.connections.toString()].map(csvCell).join(','))].join('\n') + '\n';
    case 'md':
      return [
        '| from | to | allowed |',
        '|---|---|---|',
        ...flows.map((f) => `| ${mdCell(f.from)} | ${mdCell(f.to)} | ${mdCell(f.connections.toString())} |`),
      ].join('\n') + '\n';
    case 'dot':
      return renderDot(analysis, flows);
  }
}

/** The documented JSON form (docs/matrix-json.md). */
export function matrixJson(analysis: Analysis, flows: Flow[] = flowsOf(analysis)) {
  return {
    moatMatrix: 1,
    origin: analysis.world.origin,
    mode: analysis.flat ? 'flat' : 'topology',
    nodes: analysis.nodes.map((n) => ({
      id: n.id,
      kind: n.kind,
      ...(n.endpoint ? { namespace: n.endpoint.namespace, name: n.endpoint.name, endpointId: n.endpoint.id } : {}),
      addresses: n.addresses,
    })),
    flows: flows.map((f) => ({ from: f.from, to: f.to, allowed: f.connections.toJSON(), text: f.connections.toString() })),
    warnings: analysis.warnings.map((w) => w.message),
  };
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function dotId(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function renderDot(analysis: Analysis, flows: Flow[]): string {
  const lines = ['digraph moat {', '  rankdir=LR;', '  node [shape=box, fontname="Helvetica"];'];
  const byNs = new Map<string, string[]>();
  for (const n of analysis.nodes) {
    if (n.endpoint) {
      const list = byNs.get(n.endpoint.namespace) ?? [];
      list.push(n.id);
      byNs.set(n.endpoint.namespace, list);
    } else {
      lines.push(`  ${dotId(n.id)} [shape=ellipse, style=dashed];`);
    }
  }
  let c = 0;
  for (const [ns, ids] of byNs) {
    lines.push(`  subgraph cluster_${c++} {`, `    label=${dotId(ns)};`);
    for (const id of ids) lines.push(`    ${dotId(id)};`);
    lines.push('  }');
  }
  for (const f of flows) lines.push(`  ${dotId(f.from)} -> ${dotId(f.to)} [label=${dotId(f.connections.toString())}];`);
  lines.push('}');
  return lines.join('\n') + '\n';
}

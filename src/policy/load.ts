// Loads policies from files and directories (moat/v1 and NetworkPolicy YAML, in any mix) and
// from the labels found in the world, into one PolicySet.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError, type Diagnostic } from '../model/diagnostics.js';
import { emptyPolicySet, mergePolicySets, type PolicySet } from '../model/ir.js';
import type { World } from '../model/world.js';
import { parseYamlDocuments } from '../util/yaml.js';
import { compileLabels, type LabelPositions } from './labels/index.js';
import { compileMoatDocuments, MOAT_API_VERSION } from './moatfile/index.js';
import { parseNetworkPolicies } from './netpol/index.js';

export interface LoadedPolicies {
  policySet: PolicySet;
  diagnostics: Diagnostic[];
  files: string[];
}

/** Expands files and directories (*.yaml, *.yml, *.json, sorted) into a file list. */
export function policyFiles(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new UserError({ severity: 'error', code: 'policy.missing', message: `policy path ${p} does not exist`, fix: 'check the --policy argument' });
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (/\.(ya?ml|json)$/.test(name)) out.push(join(p, name));
      }
    } else out.push(p);
  }
  return out;
}

/** Parses one policy file: moat/v1 documents and NetworkPolicy documents. */
export function loadPolicyFile(file: string, text: string = readFileSync(file, 'utf8')): { policySet: PolicySet; diagnostics: Diagnostic[] } {
  const { docs, diagnostics } = parseYamlDocuments(text, file);
  if (diagnostics.length) return { policySet: emptyPolicySet(), diagnostics };
  const moatDocs = docs.filter((d) => d.doc.get('apiVersion') === MOAT_API_VERSION);
  const otherDocs = docs.filter((d) => d.doc.get('apiVersion') !== MOAT_API_VERSION);
  const sets: PolicySet[] = [];
  const all: Diagnostic[] = [];
  if (moatDocs.length) {
    const r = compileMoatDocuments(moatDocs);
    sets.push(r.policySet);
    all.push(...r.diagnostics);
  }
  if (otherDocs.length) {
    const r = parseNetworkPolicies(text, file);
    const set = emptyPolicySet();
    set.policies.push(...r.policies);
    sets.push(set);
    // The NetworkPolicy parser sees every document; drop what it says about moat's own documents.
    const inMoatDoc = (d: Diagnostic) => !!d.pos && moatDocs.some((m) => inDoc(m.doc, d.pos!.line, m.lineCounter));
    all.push(...r.diagnostics.filter((d) => !(d.severity === 'warning' && inMoatDoc(d))));
  }
  return { policySet: mergePolicySets(sets), diagnostics: all };
}

function inDoc(doc: { range: [number, number, number] }, line: number, lc: { linePos(o: number): { line: number } }): boolean {
  return line >= lc.linePos(doc.range[0]).line && line <= lc.linePos(doc.range[1]).line;
}

/** Loads every policy source; errors are returned, not thrown, so `validate` can list them all. */
export function loadPolicies(paths: string[], world: World | undefined, labelPositions?: LabelPositions, useLabels = true): LoadedPolicies {
  const files = policyFiles(paths);
  const sets: PolicySet[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      diagnostics.push({ severity: 'error', code: 'policy.unreadable', message: `cannot read ${f}: ${(e as Error).message}`, fix: 'check the path and permissions' });
      continue;
    }
    const r = loadPolicyFile(f, text);
    sets.push(r.policySet);
    diagnostics.push(...r.diagnostics);
  }
  if (world && useLabels) {
    const r = compileLabels(world, labelPositions);
    sets.push(r.policySet);
    diagnostics.push(...r.diagnostics);
  }
  return { policySet: mergePolicySets(sets), diagnostics, files };
}

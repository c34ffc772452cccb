// YAML with positions: parse documents keeping a LineCounter so that any path into a document
// can be turned into file:line:col for error messages.
import { isNode, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { Diagnostic, SourcePos } from '../model/diagnostics.js';

export interface YamlDoc {
  doc: Document.Parsed;
  file: string;
  lineCounter: LineCounter;
  /** Position of the node at a path (or the closest existing ancestor). */
  posOf(path: readonly (string | number)[]): SourcePos;
  /** Position of a map key at a path (for "unknown key" messages). */
  keyPosOf(path: readonly (string | number)[]): SourcePos;
}

export function parseYamlDocuments(text: string, file: string): { docs: YamlDoc[]; diagnostics: Diagnostic[] } {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, merge: true, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const diagnostics: Diagnostic[] = [];
  const docs: YamlDoc[] = [];
  const at = (offset: number): SourcePos => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  for (const doc of list as Document.Parsed[]) {
    for (const e of doc.errors) {
      diagnostics.push({
        severity: 'error',
        code: 'yaml.syntax',
        message: `YAML syntax error: ${e.message.split('\n')[0]}`,
        fix: 'fix the YAML syntax (indentation, quotes, colons) at this position',
        pos: at(e.pos[0]),
      });
    }
    if (doc.errors.length) continue;
    if (doc.contents === null) continue;
    const posOf = (path: readonly (string | number)[]): SourcePos => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true);
        if (isNode(node) && node.range) return at(node.range[0]);
      }
      return { file, line: 1, col: 1 };
    };
    const keyPosOf = (path: readonly (string | number)[]): SourcePos => {
      const parent = doc.getIn(path.slice(0, -1), true) as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined;
      const last = path[path.length - 1];
      const item = parent?.items?.find((i) => i.key && (i.key as { value?: unknown }).value === last);
      if (item?.key?.range) return at(item.key.range[0]);
      return posOf(path);
    };
    docs.push({ doc, file, lineCounter, posOf, keyPosOf });
  }
  return { docs, diagnostics };
}

// A throw-away network namespace for checking rulesets against the real kernel (needs root, nft).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('ip', ['netns', 'list']).status === 0 && spawnSync('nft', ['--version']).status === 0;
}

export function hasTool(tool: string, args = ['--version']): boolean {
  return spawnSync(tool, args).status === 0;
}

export function createNetns(prefix = 'moatu'): string {
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  return name;
}

export function deleteNetns(name: string): void {
  spawnSync('ip', ['netns', 'del', name]);
}

export function inNetns(name: string, cmd: string, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', name, cmd, ...args], { input, encoding: 'utf8' });
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** A table listing with its sets, maps and chains in name order (a change adds them at the end). */
export function byBlock(text: string): string {
  const blocks: string[] = [];
  let cur: string[] | undefined;
  for (const line of text.split('\n')) {
    if (/^\t(set|map|chain) /.test(line)) cur = [line];
    else if (cur && line === '\t}') {
      blocks.push([...cur, line].join('\n'));
      cur = undefined;
    } else if (cur) cur.push(line);
  }
  return blocks.sort().join('\n');
}

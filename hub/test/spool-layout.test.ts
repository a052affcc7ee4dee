/**
 * The layout of the durability code (issue 10, item 7): hub/src/core below both spool/ and storage/, storage/
 * below spool/, no import cycle between the files of these folders (type-only imports count too), and no file
 * over 500 lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const FOLDERS = ['core', 'storage', 'spool'];

function filesOf(folder: string): string[] {
  return readdirSync(join(src, folder))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${folder}/${f}`);
}

/** Relative imports of a file (import and export ... from), as paths under src, .ts. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from\s+'(\.[^']+)'/gms)) {
    out.push(relative(src, resolve(dirname(join(src, file)), m[1]!)).replace(/\.js$/, '.ts'));
  }
  return out;
}

const files = FOLDERS.flatMap(filesOf);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('durability code layout', () => {
  it('finds the files and their imports', () => {
    expect(files).toContain('spool/spool.ts');
    expect(graph.get('spool/spool.ts')).toContain('spool/drainer.ts');
  });

  it('core imports nothing from spool/ or storage/, storage imports nothing from spool/', () => {
    const wrong: string[] = [];
    for (const [file, deps] of graph) {
      for (const dep of deps) {
        const [from, to] = [file.split('/')[0]!, dep.split('/')[0]!];
        if (from === 'core' && to !== 'core') wrong.push(`${file} -> ${dep}`);
        if (from === 'storage' && to === 'spool') wrong.push(`${file} -> ${dep}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const dep of graph.get(file) ?? []) if (graph.has(dep)) visit(dep, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('keeps every file at 500 lines or fewer', () => {
    const long = files
      .map((f) => [f, readFileSync(join(src, f), 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 500);
    expect(long).toEqual([]);
  });
});

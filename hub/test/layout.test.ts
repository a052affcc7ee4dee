/**
 * The hub's layout rules (docs/architecture.md), checked on the source: the hub imports the device SDK's codec
 * entry only (never the device client), no import cycle between hub files, and only the application entry
 * (app.ts) imports transports.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

const files = sourceFiles(src);
const IMPORT = /^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2])!);
}

/** Relative imports resolved to source files (type-only imports count: they tie the files together too). */
function localImports(file: string): string[] {
  return importsOf(file)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

describe('hub layout', () => {
  it('imports the device SDK through its codec entry only', () => {
    const offenders = files.filter((f) =>
      importsOf(f).some((spec) => spec.startsWith('@tendril/device-sdk') && spec !== '@tendril/device-sdk/codec'),
    );
    expect(offenders.map((f) => relative(src, f))).toEqual([]);
  });

  it('has no import cycle between hub files', () => {
    const graph = new Map(files.map((f) => [f, localImports(f).filter((t) => files.includes(t))]));
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(src, p)).join(' -> '));
        return;
      }
      state.set(f, 'visiting');
      for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('lets only the application entry import a transport; commands and devices know none', () => {
    const transports = ['device-channel/', 'mqtt/'];
    const offenders = files.filter((f) => {
      const rel = relative(src, f);
      if (rel === 'app.ts' || rel === 'index.ts' || transports.some((t) => rel.startsWith(t))) return false;
      return localImports(f).some((t) => transports.some((tr) => relative(src, t).startsWith(tr)));
    });
    expect(offenders.map((f) => relative(src, f))).toEqual([]);
  });
});

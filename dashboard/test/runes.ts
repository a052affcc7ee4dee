/**
 * Loads a `.svelte.ts` module (runes: $state, $derived) in vitest without the Svelte Vite plugin: the root
 * vitest config serves every package and has no Svelte plugin, so the module is compiled here the way the
 * plugin would (TypeScript stripped by esbuild, then svelte/compiler compileModule for the client), written
 * next to its source under a dot-name, and imported. Relative imports keep working; `svelte` and
 * `svelte/reactivity` point at the client builds (node would pick the server ones, which are not reactive),
 * and tests get flushSync and effect roots from the same client runtime through `svelteClient()`.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { compileModule } from 'svelte/compiler';

const require = createRequire(import.meta.url);
const svelteRoot = dirname(require.resolve('svelte/package.json'));
const CLIENT = {
  svelte: join(svelteRoot, 'src/index-client.js'),
  reactivity: join(svelteRoot, 'src/reactivity/index-client.js'),
  internal: join(svelteRoot, 'src/internal/client/index.js'),
};

const written: string[] = [];
process.on('exit', () => {
  for (const f of written) rmSync(f, { force: true });
});

function compile(file: string): string {
  const ts = readFileSync(file, 'utf8');
  const js = transformSync(ts, { loader: 'ts', target: 'es2022', format: 'esm' }).code;
  let code = compileModule(js, { filename: basename(file).replace(/\.ts$/, '.js'), generate: 'client', dev: false }).js
    .code;
  code = code
    .replace(/from ['"]svelte\/internal\/client['"]/g, `from ${JSON.stringify(CLIENT.internal)}`)
    .replace(/from ['"]svelte\/reactivity['"]/g, `from ${JSON.stringify(CLIENT.reactivity)}`)
    .replace(/from ['"]svelte['"]/g, `from ${JSON.stringify(CLIENT.svelte)}`);
  // Imports of other rune modules are compiled the same way.
  code = code.replace(/from ['"](\.{1,2}\/[^'"]+\.svelte)\.js['"]/g, (_m, rel: string) => {
    const target = resolve(dirname(file), `${rel}.ts`);
    return `from ${JSON.stringify(compile(target))}`;
  });
  const out = join(dirname(file), `.${basename(file, '.ts')}.${process.pid}.test-build.js`);
  writeFileSync(out, code);
  if (!written.includes(out)) written.push(out);
  return out;
}

/** Imports `../src/...svelte.ts` (relative to this folder) compiled with runes. */
export async function importRunes<T>(relFromTest: string): Promise<T> {
  const file = fileURLToPath(new URL(relFromTest, import.meta.url));
  const before = written.length;
  try {
    return (await import(/* @vite-ignore */ compile(file))) as T;
  } finally {
    // Loaded: the compiled files are not needed any more (and must not linger beside the sources).
    for (const f of written.splice(before)) rmSync(f, { force: true });
  }
}

/** The client runtime the compiled modules use: flushSync, effect roots. */
export async function svelteClient(): Promise<{
  flushSync: (fn?: () => void) => void;
  effect_root: (fn: () => void) => () => void;
}> {
  const svelte = (await import(/* @vite-ignore */ CLIENT.svelte)) as { flushSync: (fn?: () => void) => void };
  const internal = (await import(/* @vite-ignore */ CLIENT.internal)) as {
    effect_root: (fn: () => void) => () => void;
  };
  return { flushSync: svelte.flushSync, effect_root: internal.effect_root };
}

/** A frame scheduler the test runs by hand. */
export class ManualFrames {
  queue = new Set<() => void>();
  schedule(fn: () => void): void {
    this.queue.add(fn);
  }
  run(): void {
    const q = [...this.queue];
    this.queue.clear();
    for (const fn of q) fn();
  }
}

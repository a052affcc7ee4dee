/**
 * Bundles a TypeScript entry that imports the hub and the device SDK from source into one ESM file that a
 * child process can run with plain `node` (the hub in a process of its own, to SIGKILL it mid-stream).
 * Packages with native code or large trees stay external and load from the repository's node_modules.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** Source aliases of the workspace packages (longest first: esbuild matches a package name, then subpaths). */
export const WORKSPACE_ALIASES: Record<string, string> = {
  '@tendril/device-sdk/codec': repo('device-sdk/src/codec/index.ts'),
  '@tendril/device-sdk': repo('device-sdk/src/index.ts'),
  '@tendril/hub': repo('hub/src/index.ts'),
  '@tendril/simulator': repo('simulator/src/index.ts'),
};

/**
 * Bundles `entry` (an absolute path) to `hub/dist/e2e/<name>.mjs` and returns that path. The bundle sits two
 * levels below the hub package, as hub/dist/<module>.js does, so the files the hub reads relative to its own
 * module (the auth plugin's list of common passwords, `../../src/auth/...`) are found from the bundle too.
 */
export async function bundleForProcess(entry: string): Promise<string> {
  const outDir = repo('hub/dist/e2e');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, basename(entry).replace(/\.ts$/, '.mjs'));
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    external: [
      'fastify',
      'fastify-plugin',
      '@fastify/*',
      'ws',
      'better-sqlite3',
      'prom-client',
      '@influxdata/*',
      'mqtt',
      'mqtt-packet',
    ],
    alias: WORKSPACE_ALIASES,
    logLevel: 'error',
  });
  return outfile;
}

// Pieces every benchmark needs: flags, CPU pinning, and loading TypeScript sources without a build.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const args = process.argv.slice(2);

/** `--name N` as a number, or `dflt` when absent. */
export function opt(name, dflt) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** The median of the finite numbers in `xs` (the mean of the middle two for an even count); NaN if none. */
export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** True when `taskset` can pin processes here (util-linux). */
export function hasTaskset() {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Bundles TypeScript entry points (paths relative to the repository root) into a temp dir and imports
 * them: `{ name: module, ..., cleanup() }`. Lets a benchmark use the test harness and hub internals
 * straight from source.
 */
export async function loadTypeScript(entries, label = 'bench') {
  const outdir = mkdtempSync(join(tmpdir(), `tendril-${label}-`));
  const entryPoints = Object.fromEntries(Object.entries(entries).map(([name, path]) => [name, join(repoRoot, path)]));
  await build({
    entryPoints,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir,
    outExtension: { '.js': '.mjs' },
    logLevel: 'silent',
  });
  const names = Object.keys(entries);
  const modules = await Promise.all(names.map((name) => import(join(outdir, `${name}.mjs`))));
  return {
    ...Object.fromEntries(names.map((n, i) => [n, modules[i]])),
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/** POSTs one line-protocol body to an InfluxDB /write URL over `agent`; resolves on 204. */
export function postLines(agent, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 204
            ? resolve()
            : reject(new Error(`raw /write -> ${res.statusCode}: ${Buffer.concat(chunks)}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** CPU seconds (user + system) of a process so far, from /proc (Linux). */
export function cpuSecondsOf(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

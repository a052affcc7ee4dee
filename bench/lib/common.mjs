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

/** The value at fraction `p` (0-1) of an ascending array; NaN when it is empty. */
export function percentile(sorted, p) {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * The IPC side of a server process a benchmark spawned (bench/servers/*.mjs): `next(type)` resolves with its
 * next message of that type, and rejects after `timeoutMs` or when the process exits first; `sample()` asks
 * for a `sample` message and resolves with it.
 */
export function serverChannel(child, label, defaultTimeoutMs = 30_000) {
  const next = (type, timeoutMs = defaultTimeoutMs) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for '${type}' from ${label}`)), timeoutMs);
      const exited = (code) => reject(new Error(`${label} exited with ${code} while we waited for '${type}'`));
      const on = (m) => {
        if (m.type !== type) return;
        clearTimeout(t);
        child.off('message', on);
        child.off('exit', exited);
        resolve(m);
      };
      child.on('message', on);
      child.once('exit', exited);
    });
  return { child, next, sample: () => (child.send({ type: 'sample' }), next('sample')) };
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

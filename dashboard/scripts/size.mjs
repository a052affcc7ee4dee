#!/usr/bin/env node
/**
 * Prints the dashboard's initial JavaScript (what index.html loads before the app can show anything: its
 * module script and modulepreload links) gzipped, and fails the build past the budget (issue 13: 100 KB).
 * Lazy chunks (loaded on navigation) are listed apart. Run after `vite build`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 100 * 1024;
const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const initial = new Set();
for (const m of html.matchAll(/<script[^>]*\bsrc="\/([^"]+\.js)"/g)) initial.add(m[1]);
for (const m of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="\/([^"]+\.js)"/g)) initial.add(m[1]);
const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
let total = 0;
for (const file of initial) total += gz(file);
const lazy = readdirSync(join(dist, 'assets'))
  .filter((f) => f.endsWith('.js') && !initial.has(`assets/${f}`))
  .map((f) => `${f} ${kb(gz(`assets/${f}`))}`);
console.log(
  `dashboard initial JS: ${kb(total)} gzipped (${initial.size} file${initial.size === 1 ? '' : 's'}; budget ${kb(BUDGET_BYTES)})`,
);
if (lazy.length > 0) console.log(`  loaded later: ${lazy.join(', ')}`);
if (total > BUDGET_BYTES) {
  console.error(`dashboard initial JS is over budget: ${kb(total)} > ${kb(BUDGET_BYTES)} gzipped`);
  process.exit(1);
}

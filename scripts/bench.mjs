#!/usr/bin/env node
// `npm run bench`: builds, then runs every benchmark in bench/ one after the other with its defaults and
// prints what each reports. Each benchmark measures its own baseline in the same run (docs/performance.md);
// run one alone with `node bench/<name>.mjs`; its flags are documented at the top of its file.
// `npm run bench -- ingest connections` runs only the named ones.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ALL = [
  'bytes-per-reading',
  'ingest',
  'ingest-influx',
  'connections',
  'influx-write',
  'spool',
  'mqtt-ingest',
  'mqtt-ack-designs',
];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !ALL.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${ALL.join(', ')}`);
  process.exit(2);
}
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status ?? 1;

if (run('npm', ['run', 'build', '--silent']) !== 0) process.exit(1);
let failed = 0;
for (const name of wanted.length ? wanted : ALL) {
  const file = `bench/${name}.mjs`;
  if (!existsSync(new URL(`../${file}`, import.meta.url))) continue;
  console.log(`\n=== ${file} ===`);
  if (run(process.execPath, [file]) !== 0) {
    failed++;
    console.error(`${file} failed`);
  }
}
process.exit(failed ? 1 : 0);

#!/usr/bin/env node
// What an fdatasync costs after appending to a file against after overwriting zeros written (and synced)
// before: the question behind pre-zeroed spool segments (issue 16, docs/performance.md "Fewer wake-ups,
// pre-zeroed segments, multi-row inserts"). Each case writes --count records of --bytes, one write and one
// fdatasync each, into a fresh file in the OS temp dir (the hub's disk in the benchmarks), --rounds times in
// turn. Reports process CPU and wall time per fdatasync, medians, and the ratio to appending.
// Reproduce: node bench/fdatasync-prezeroed.mjs [--bytes 3000] [--count 2000] [--rounds 3] [--json]
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, median, opt } from './lib/common.mjs';

const BYTES = opt('bytes', 3000);
const COUNT = opt('count', 2000);
const ROUNDS = opt('rounds', 3);

function measure(prezeroed) {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-fdatasync-'));
  try {
    const fd = openSync(join(dir, 'segment'), 'w+');
    if (prezeroed) {
      const zeros = Buffer.alloc(1 << 20);
      for (let at = 0; at < BYTES * COUNT; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
      fdatasyncSync(fd);
    }
    const record = Buffer.alloc(BYTES, 7);
    const cpu = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < COUNT; i++) {
      writeSync(fd, record, 0, BYTES, i * BYTES);
      fdatasyncSync(fd);
    }
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    closeSync(fd);
    return { cpuMicros: (used.user + used.system) / COUNT, wallMicros: (wallMs * 1000) / COUNT };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const samples = { append: [], prezeroed: [] };
for (let r = 0; r < ROUNDS; r++) {
  samples.append.push(measure(false));
  samples.prezeroed.push(measure(true));
}
const summary = Object.fromEntries(
  Object.entries(samples).map(([name, xs]) => [
    name,
    { cpuMicros: median(xs.map((x) => x.cpuMicros)), wallMicros: median(xs.map((x) => x.wallMicros)), samples: xs },
  ]),
);
if (args.includes('--json'))
  console.log(JSON.stringify({ bytes: BYTES, count: COUNT, rounds: ROUNDS, summary }, null, 2));
else {
  console.log(`${COUNT} writes of ${BYTES} B, one fdatasync each, median of ${ROUNDS}, in ${tmpdir()}`);
  console.log('| file | CPU µs per fdatasync | wall µs per fdatasync | CPU vs appending |');
  console.log('|---|---:|---:|---:|');
  for (const [name, s] of Object.entries(summary))
    console.log(
      `| ${name} | ${s.cpuMicros.toFixed(0)} | ${s.wallMicros.toFixed(0)} | ${(s.cpuMicros / summary.append.cpuMicros).toFixed(2)}x |`,
    );
}

#!/usr/bin/env node
// The SQLite store's row layout (docs/storage.md, "SQLite"): CPU per reading row for the layout hubs before
// issue 16 used (key (device, epoch, seq) plus an index on (device, ts): two B-tree inserts per reading)
// against the current one (key (device, ts, epoch, seq): one), in transactions of 5 000 rows (a drain batch
// at 10 000 readings/s and more) and of 500 (what smaller transactions would cost), 100 devices, rows as the
// store writes them (three values as JSON), WAL with synchronous=FULL as the hub opens it. Same process, same
// run, each case measured --rounds times in turn; the table gives the median and the ratio to the old layout.
// A second table tries variants of writing the current layout in transactions of 5 000 (issue 16): statements
// of 4 and 16 rows instead of one, pages of 8 and 16 KiB instead of 4, a 64 MiB page cache; the ratio is to
// one row per statement with SQLite's defaults, measured in the same rounds.
// Reproduce: node bench/sqlite-layout.mjs [--rows 200000] [--rounds 3] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { args, median, opt } from './lib/common.mjs';

const ROWS = opt('rows', 200_000);
const ROUNDS = opt('rounds', 3);
const DEVICES = 100;
const LAYOUTS = {
  'before issue 16: (device, epoch, seq) + index (device, ts)': `CREATE TABLE readings (device INTEGER NOT NULL,
    epoch INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, v TEXT NOT NULL,
    PRIMARY KEY (device, epoch, seq)) STRICT, WITHOUT ROWID; CREATE INDEX readings_by_time ON readings (device, ts);`,
  'now: (device, ts, epoch, seq)': `CREATE TABLE readings (device INTEGER NOT NULL, epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL, ts INTEGER NOT NULL, v TEXT NOT NULL, PRIMARY KEY (device, ts, epoch, seq)) STRICT, WITHOUT ROWID;`,
};

/**
 * CPU µs per row writing ROWS rows in transactions of `perTxn` rows into a fresh file; `rowsPerStatement`
 * rows per INSERT (perTxn must be a multiple), `pageSize` and `cacheKiB` as pragmas (0: SQLite's default).
 */
function measure(schema, perTxn, { rowsPerStatement = 1, pageSize = 0, cacheKiB = 0 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-sqlite-'));
  try {
    const db = new Database(join(dir, 'readings.db'));
    if (pageSize) db.pragma(`page_size = ${pageSize}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    if (cacheKiB) db.pragma(`cache_size = -${cacheKiB}`);
    db.exec(schema);
    const insert = db.prepare(
      `INSERT OR IGNORE INTO readings (device, epoch, seq, ts, v) VALUES ${Array(rowsPerStatement).fill('(?, ?, ?, ?, ?)').join(', ')}`,
    );
    const params = new Array(5 * rowsPerStatement);
    let i = 0;
    const txn = db.transaction((n) => {
      for (const end = i + n; i < end; ) {
        for (let k = 0; k < params.length; i++) {
          const device = (i % DEVICES) + 1;
          const s = 3 * device;
          params[k++] = device;
          params[k++] = 1;
          params[k++] = Math.floor(i / DEVICES) + 1;
          params[k++] = 1_767_225_600_000 + i * 10;
          params[k++] = `{"${s}":21.5,"${s + 1}":40.25,"${s + 2}":1013.25}`;
        }
        insert.run(params);
      }
    });
    txn(perTxn * 5); // warm-up: statement, caches, file growth
    const start = process.cpuUsage();
    for (let done = 0; done < ROWS; done += perTxn) txn(perTxn);
    const used = process.cpuUsage(start);
    db.close();
    return (used.user + used.system) / ROWS;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const perTxn of [5000, 500]) {
  const samples = Object.fromEntries(Object.keys(LAYOUTS).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++)
    for (const [name, schema] of Object.entries(LAYOUTS)) samples[name].push(measure(schema, perTxn));
  const base = median(Object.values(samples)[0]);
  for (const [name, xs] of Object.entries(samples))
    results.push({
      layout: name,
      rowsPerTransaction: perTxn,
      cpuMicrosPerRow: median(xs),
      samples: xs,
      vsOld: median(xs) / base,
    });
}
const CURRENT = LAYOUTS['now: (device, ts, epoch, seq)'];
const VARIANTS = {
  'one row per statement, defaults': {},
  '4 rows per statement': { rowsPerStatement: 4 },
  '16 rows per statement': { rowsPerStatement: 16 },
  '8 KiB pages': { pageSize: 8192 },
  '16 KiB pages': { pageSize: 16384 },
  '64 MiB page cache': { cacheKiB: 65536 },
};
const variantSamples = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++)
  for (const [name, v] of Object.entries(VARIANTS)) variantSamples[name].push(measure(CURRENT, 5000, v));
const variantBase = median(Object.values(variantSamples)[0]);
const variants = Object.entries(variantSamples).map(([name, xs]) => ({
  variant: name,
  cpuMicrosPerRow: median(xs),
  samples: xs,
  vsDefaults: median(xs) / variantBase,
}));
if (args.includes('--json')) console.log(JSON.stringify({ rows: ROWS, rounds: ROUNDS, results, variants }, null, 2));
else {
  console.log(`${ROWS} rows per case, ${DEVICES} devices, median of ${ROUNDS}`);
  console.log('| layout | rows per transaction | CPU µs per row | vs the old layout |');
  console.log('|---|---:|---:|---:|');
  for (const r of results)
    console.log(`| ${r.layout} | ${r.rowsPerTransaction} | ${r.cpuMicrosPerRow.toFixed(2)} | ${r.vsOld.toFixed(2)}x |`);
  console.log('\nThe current layout, transactions of 5 000 rows:');
  console.log('| variant | CPU µs per row | vs one row per statement |');
  console.log('|---|---:|---:|');
  for (const v of variants)
    console.log(`| ${v.variant} | ${v.cpuMicrosPerRow.toFixed(2)} | ${v.vsDefaults.toFixed(2)}x |`);
}

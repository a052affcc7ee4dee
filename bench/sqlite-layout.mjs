#!/usr/bin/env node
// The SQLite store's row layout (docs/storage.md, "SQLite"): CPU per reading row for the layout hubs before
// issue 16 used (key (device, epoch, seq) plus an index on (device, ts): two B-tree inserts per reading)
// against the current one (key (device, ts, epoch, seq): one), in transactions of 5 000 rows (a drain batch
// at 10 000 readings/s and more) and of 500 (what smaller transactions would cost), 100 devices, rows as the
// store writes them (three values as JSON), WAL with synchronous=FULL as the hub opens it. Same process, same
// run, each case measured --rounds times in turn; the table gives the median and the ratio to the old layout.
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

/** CPU µs per row writing ROWS rows in transactions of `perTxn` rows into a fresh file. */
function measure(schema, perTxn) {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-sqlite-'));
  try {
    const db = new Database(join(dir, 'readings.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(schema);
    const insert = db.prepare('INSERT OR IGNORE INTO readings (device, epoch, seq, ts, v) VALUES (?, ?, ?, ?, ?)');
    let i = 0;
    const txn = db.transaction((n) => {
      for (const end = i + n; i < end; i++) {
        const device = (i % DEVICES) + 1;
        const s = 3 * device;
        insert.run(
          device,
          1,
          Math.floor(i / DEVICES) + 1,
          1_767_225_600_000 + i * 10,
          `{"${s}":21.5,"${s + 1}":40.25,"${s + 2}":1013.25}`,
        );
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
if (args.includes('--json')) console.log(JSON.stringify({ rows: ROWS, rounds: ROUNDS, results }, null, 2));
else {
  console.log(`${ROWS} rows per case, ${DEVICES} devices, median of ${ROUNDS}`);
  console.log('| layout | rows per transaction | CPU µs per row | vs the old layout |');
  console.log('|---|---:|---:|---:|');
  for (const r of results)
    console.log(`| ${r.layout} | ${r.rowsPerTransaction} | ${r.cpuMicrosPerRow.toFixed(2)} | ${r.vsOld.toFixed(2)}x |`);
}

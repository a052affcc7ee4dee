#!/usr/bin/env node
/**
 * Size of the device SDK as an application ships it: esbuild bundle (minified, ESM, platform neutral),
 * then gzip level 9. Prints raw / minified / gzip bytes and exits 1 when the device bundle's gzip size is
 * over the budget (5120 bytes).
 *
 * The budgeted figure is the device bundle: device-sdk/src/index.ts as a device application imports it
 * (`import { TendrilDevice, CommandRejected } from '@tendril/device-sdk'`), so the bundler keeps the client
 * and the parts of the codec it uses. The whole entry (every export, including the hub-side encoders and
 * decoders that a device never ships) is printed too, as is the codec's share of the device bundle.
 *
 * Usage: node scripts/sdk-size.mjs [--json]
 */
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET_GZIP_BYTES = 5120;
const root = fileURLToPath(new URL('..', import.meta.url));
const entry = './device-sdk/src/index.ts';

const measurements = [
  {
    name: 'device bundle',
    what: "import { TendrilDevice, CommandRejected } from '@tendril/device-sdk'",
    contents: `export { TendrilDevice, CommandRejected } from '${entry}';`,
    budget: BUDGET_GZIP_BYTES,
  },
  {
    name: '  codec share',
    what: 'the parts of the codec the client uses, alone (encoder, decoder, truncateUtf8, limits)',
    contents: `export { encodeDeviceFrame, decodeHubFrame, truncateUtf8, DEFAULT_LIMITS } from '${entry}';`,
  },
  {
    name: 'whole entry',
    what: 'every export of device-sdk/src/index.ts, hub-side codec included',
    contents: `export * from '${entry}';`,
  },
];

async function bundle(contents, minify) {
  const out = await build({
    stdin: { contents, resolveDir: root, loader: 'ts', sourcefile: 'size-entry.ts' },
    bundle: true,
    minify,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0].contents;
}

const results = [];
for (const m of measurements) {
  const raw = (await bundle(m.contents, false)).length;
  const minified = await bundle(m.contents, true);
  const gzip = gzipSync(minified, { level: 9 }).length;
  results.push({ name: m.name.trim(), what: m.what, raw, min: minified.length, gzip, budget: m.budget ?? null });
}

const device = results[0];
const over = device.gzip > BUDGET_GZIP_BYTES;

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ budgetGzipBytes: BUDGET_GZIP_BYTES, withinBudget: !over, results }, null, 2));
} else {
  const pad = (s, n) => String(s).padStart(n);
  console.log('device SDK size: esbuild --bundle --minify --format=esm --platform=neutral, then gzip -9 (bytes)');
  console.log(`${'bundle'.padEnd(16)}${pad('raw', 8)}${pad('min', 8)}${pad('gzip', 8)}`);
  for (const [i, r] of results.entries()) {
    console.log(`${measurements[i].name.padEnd(16)}${pad(r.raw, 8)}${pad(r.min, 8)}${pad(r.gzip, 8)}   ${r.what}`);
  }
  console.log(
    over
      ? `FAIL: the device bundle is ${device.gzip} bytes gzipped, over the budget of ${BUDGET_GZIP_BYTES} by ${device.gzip - BUDGET_GZIP_BYTES}`
      : `ok: the device bundle is ${device.gzip} bytes gzipped, within the budget of ${BUDGET_GZIP_BYTES}`,
  );
}
process.exitCode = over ? 1 : 0;

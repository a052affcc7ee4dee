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
 * --detail adds where the device bundle's bytes come from: each source file's minified bytes and its share
 * of the gzip size (how much smaller the gzipped bundle is without that file's code; the shares do not add
 * up to the total, since gzip also saves across files), and how much of the gzip size is message text
 * (string and template literals containing a space), measured by emptying those literals.
 *
 * Usage: node scripts/sdk-size.mjs [--json] [--detail]
 */
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, transform } from 'esbuild';

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

const gzipSize = (text) => gzipSync(text, { level: 9 }).length;

/** Each source file's minified code in the bundle, in bundle order. */
async function codeByFile(contents) {
  // Whitespace kept, so that esbuild marks where each file's code begins with a `// path` line.
  const out = await build({
    stdin: { contents, resolveDir: root, loader: 'ts', sourcefile: 'size-entry.ts' },
    bundle: true,
    minifyIdentifiers: true,
    minifySyntax: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const files = [];
  for (const part of out.outputFiles[0].text.split(/^(?=\/\/ \S+\.ts$)/m)) {
    const file = /^\/\/ (\S+\.ts)$/m.exec(part)?.[1] ?? '(bundle glue)';
    const { code } = await transform(part, { minifyWhitespace: true, loader: 'js', format: 'esm', target: 'es2022' });
    files.push({ file, code });
  }
  return files;
}

/** The text with the contents of every message-like literal (a string or template with a space) removed. */
async function withoutMessages(text) {
  const { default: ts } = await import('typescript');
  const source = ts.createSourceFile('bundle.js', text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
  const edits = [];
  const visit = (node) => {
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /\s/.test(node.text)) {
      edits.push([node.getStart(source), node.getEnd(), '""']);
      return;
    }
    if (ts.isTemplateExpression(node)) {
      const holes = node.templateSpans.map((span) => '${' + span.expression.getText(source) + '}').join('');
      edits.push([node.getStart(source), node.getEnd(), '`' + holes + '`']);
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  let out = text;
  for (const [start, end, replacement] of edits.sort((a, b) => b[0] - a[0]))
    out = out.slice(0, start) + replacement + out.slice(end);
  return out;
}

async function detail(contents) {
  const files = await codeByFile(contents);
  const all = files.map((f) => f.code).join('');
  const total = gzipSize(all);
  const byFile = files
    .filter((f) => f.code.length > 0)
    .map((f) => ({
      file: f.file,
      min: f.code.length,
      gzipShare:
        total -
        gzipSize(
          files
            .filter((o) => o !== f)
            .map((o) => o.code)
            .join(''),
        ),
    }));
  const minified = new TextDecoder().decode(await bundle(contents, true));
  const messagesGzip = gzipSize(minified) - gzipSize(await withoutMessages(minified));
  return { byFile, messagesGzip };
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
const details = process.argv.includes('--detail') ? await detail(measurements[0].contents) : undefined;

if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify(
      { budgetGzipBytes: BUDGET_GZIP_BYTES, withinBudget: !over, results, deviceBundleDetail: details },
      null,
      2,
    ),
  );
} else {
  const pad = (s, n) => String(s).padStart(n);
  console.log('device SDK size: esbuild --bundle --minify --format=esm --platform=neutral, then gzip -9 (bytes)');
  console.log(`${'bundle'.padEnd(16)}${pad('raw', 8)}${pad('min', 8)}${pad('gzip', 8)}`);
  for (const [i, r] of results.entries()) {
    console.log(`${measurements[i].name.padEnd(16)}${pad(r.raw, 8)}${pad(r.min, 8)}${pad(r.gzip, 8)}   ${r.what}`);
  }
  if (details) {
    console.log(
      '\ndevice bundle by source file: minified bytes, and its share of the gzip size (bundle minus bundle without it)',
    );
    for (const f of details.byFile) console.log(`  ${f.file.padEnd(34)}${pad(f.min, 8)}${pad(f.gzipShare, 8)}`);
    console.log(
      `message text (string and template literals with a space): ${details.messagesGzip} of the ${device.gzip} gzip bytes`,
    );
  }
  console.log(
    over
      ? `FAIL: the device bundle is ${device.gzip} bytes gzipped, over the budget of ${BUDGET_GZIP_BYTES} by ${device.gzip - BUDGET_GZIP_BYTES}`
      : `ok: the device bundle is ${device.gzip} bytes gzipped, within the budget of ${BUDGET_GZIP_BYTES}`,
  );
}
process.exitCode = over ? 1 : 0;

#!/usr/bin/env node
/** Entry of `npm run hub -- ...` (hub/dist/cli/main.js): see hub.ts. */
import { readAllStdin, runCli } from './hub.js';

runCli(process.argv.slice(2), {
  env: process.env,
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  readStdin: readAllStdin,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tendril hub: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);

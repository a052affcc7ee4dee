#!/usr/bin/env node
/** `npm run simulate -- --hub URL --devices N --rate R [--duration S] [--json]` (see --help). */
import { HubApiError } from './hub-api.js';
import { HELP, parseOptions, UsageError } from './options.js';
import { runSimulation } from './run.js';

async function main(): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`tendril-simulate: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (!options) {
    process.stdout.write(HELP);
    return 0;
  }
  // First Ctrl-C: stop, drain and print the summary. Second: leave at once.
  const interrupted = new Promise<void>((resolve) => {
    let count = 0;
    const onSignal = () => {
      if (++count > 1) process.exit(130);
      process.stderr.write('\nstopping (Ctrl-C again to quit at once)\n');
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  try {
    const summary = await runSimulation(options, { stdout: process.stdout, stderr: process.stderr, interrupted });
    return summary.reconciled ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError || error instanceof HubApiError) {
      process.stderr.write(`tendril-simulate: ${error.message}\n`);
      return error instanceof UsageError ? 2 : 1;
    }
    throw error;
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `tendril-simulate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);

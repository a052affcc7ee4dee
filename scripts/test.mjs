#!/usr/bin/env node
// `npm test`: the whole suite, including the real InfluxDB, Mosquitto and Chromium tests.
//
//   npm test                         every *.test.ts
//   npm test -- hub/test/foo.test.ts  extra arguments go to `vitest run`
//
// 1. Makes sure the system packages the tests need are installed: with CI=true it always runs
//    scripts/install-system-deps.sh (a no-op when all is present); elsewhere it runs it only when
//    something is missing and it can (root or password-less sudo), and otherwise stops with a message.
// 2. Runs `vitest run` with the default reporter on the console and the JSON reporter to
//    test-results/vitest.json.
// 3. Kills any test server a crashed worker left behind (test/support records them in a temp dir).
// 4. Ends with exactly one line `N passed, N failed` (`, N skipped` when some were) computed from the
//    JSON report. Exit code non-zero if anything failed, vitest crashed, or no test ran.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const reportPath = join(root, 'test-results', 'vitest.json');
const installScript = join(root, 'scripts', 'install-system-deps.sh');

/** Executables the tests start, and the Debian package each comes from. */
const systemDeps = [
  { bin: 'influxd', pkg: 'influxdb', env: 'INFLUXD_PATH' },
  { bin: 'mosquitto', pkg: 'mosquitto', env: 'MOSQUITTO_PATH' },
  { bin: 'mosquitto_pub', pkg: 'mosquitto-clients' },
  { bin: 'chromium', pkg: 'chromium', env: 'CHROMIUM_PATH' },
  { bin: 'openssl', pkg: 'openssl', env: 'OPENSSL_PATH' },
  { bin: 'docker-compose', pkg: 'docker-compose' },
  // The C SDK (device-sdk/c, run by test/e2e/c-sdk*.test.ts); the install script adds libclang-rt-14-dev
  // (libFuzzer, sanitizers), libmbedtls-dev and libnewlib-arm-none-eabi with them.
  { bin: 'make', pkg: 'make' },
  { bin: 'clang', pkg: 'clang' },
  { bin: 'arm-none-eabi-gcc', pkg: 'gcc-arm-none-eabi' },
  { bin: 'valgrind', pkg: 'valgrind' },
];

function summaryLine(passed, failed, skipped) {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
}

/** Prints the closing line and exits; nothing may be printed after it. */
function finish(passed, failed, skipped, exitCode) {
  console.log(summaryLine(passed, failed, skipped));
  process.exit(exitCode);
}

function note(message) {
  console.log(`[test] ${message}`);
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findExecutable(bin) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.some((dir) => dir && isExecutable(join(dir, bin)));
}

function missingSystemDeps() {
  return systemDeps.filter(
    ({ bin, env }) => !(env && process.env[env] && isExecutable(process.env[env])) && !findExecutable(bin),
  );
}

function canInstall() {
  if (process.getuid?.() === 0) return true;
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
}

function ensureSystemDeps() {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  const missing = missingSystemDeps();
  if (!ci && missing.length === 0) return;
  const packages = [...new Set(missing.map((d) => d.pkg))];
  if (!ci && !canInstall()) {
    console.error(
      `[test] missing system packages: ${packages.join(', ')} (for ${missing.map((d) => d.bin).join(', ')}).\n` +
        `[test] Install them with \`sudo bash scripts/install-system-deps.sh\` and run npm test again.`,
    );
    finish(0, 1, 0, 1);
  }
  note(ci ? 'CI: checking system packages' : `installing missing system packages: ${packages.join(', ')}`);
  const result = spawnSync('bash', [installScript], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`[test] scripts/install-system-deps.sh failed (exit ${result.status ?? result.signal})`);
    finish(0, 1, 0, 1);
  }
  const stillMissing = missingSystemDeps();
  if (stillMissing.length > 0) {
    console.error(
      `[test] still missing after the install: ${stillMissing.map((d) => `${d.bin} (${d.pkg})`).join(', ')}`,
    );
    finish(0, 1, 0, 1);
  }
}

function runVitest(args, pidDir) {
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  if (!existsSync(vitest)) {
    console.error('[test] vitest is not installed: run `npm ci` (or `npm install`) first.');
    finish(0, 1, 0, 1);
  }
  const vitestArgs = ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${reportPath}`, ...args];
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [vitest, ...vitestArgs], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, TENDRIL_TEST_PID_DIR: pidDir },
    });
    const forward = (signal) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', (err) => {
      console.error(`[test] could not start vitest: ${err.message}`);
      resolvePromise({ code: 1, signal: null });
    });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolvePromise({ code, signal });
    });
  });
}

/**
 * Servers started through test/support record themselves in pidDir and remove the record when they
 * exit. Whatever is still recorded survived its worker: kill it, but only if its command line still
 * names its temp dir (so a recycled PID is never touched).
 */
function reapLeftoverServers(pidDir) {
  let reaped = 0;
  for (const file of existsSync(pidDir) ? readdirSync(pidDir) : []) {
    try {
      const { pid, marker, name, keepDir } = JSON.parse(readFileSync(join(pidDir, file), 'utf8'));
      if (typeof marker !== 'string' || !marker) continue;
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        // the process is gone already
      }
      if (cmdline.includes(marker)) {
        process.kill(pid, 'SIGKILL');
        reaped++;
        console.error(`[test] killed a leftover ${name} (PID ${pid}): a test did not stop it`);
      }
      // The marker is the server's temp dir (test/support makes them as <tmpdir>/tendril-<name>-XXXXXX).
      if (
        dirname(marker) === tmpdir() &&
        basename(marker).startsWith('tendril-') &&
        !keepDir &&
        process.env.TENDRIL_KEEP_TEST_DIRS !== '1'
      ) {
        rmSync(marker, { recursive: true, force: true });
      }
    } catch {
      // unreadable record
    }
  }
  rmSync(pidDir, { recursive: true, force: true });
  return reaped;
}

function readReport() {
  try {
    return JSON.parse(readFileSync(reportPath, 'utf8'));
  } catch {
    return undefined;
  }
}

async function main() {
  ensureSystemDeps();
  mkdirSync(dirname(reportPath), { recursive: true });
  rmSync(reportPath, { force: true });
  const pidDir = mkdtempSync(join(tmpdir(), 'tendril-test-pids-'));
  const { code, signal } = await runVitest(process.argv.slice(2), pidDir);
  reapLeftoverServers(pidDir);

  const report = readReport();
  if (!report) {
    console.error(
      `[test] vitest ended (exit ${code ?? signal}) without writing ${reportPath}: counting the run as failed`,
    );
    finish(0, 1, 0, 1);
  }
  // Counted per test from the report's files (vitest's top-level totals leave out tests whose worker died).
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const file of report.testResults ?? []) {
    const tests = file.assertionResults ?? [];
    for (const test of tests) {
      if (test.status === 'passed') passed++;
      else if (test.status === 'failed') failed++;
      else if (test.status === 'skipped' || test.status === 'todo' || test.status === 'disabled') skipped++;
      else {
        // 'pending' at the end: its worker died before reporting the file (vitest loses the whole file's results).
        note(`no result (its test worker died): ${file.name} > ${test.fullName ?? test.title}`);
        failed++;
      }
    }
    // A file that fails to load (syntax error, throwing import, failing beforeAll) fails no test of its own.
    if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
      note(`test file failed outside its tests: ${file.name}`);
      failed++;
    }
  }
  // Errors outside any test (unhandled rejections in a worker, a crashed pool) fail the run without failing a test.
  if (code !== 0 && failed === 0) {
    note(`vitest exited with ${code ?? signal} although no test failed (unhandled errors or a crash; see above)`);
    failed = 1;
  }
  if (passed + failed === 0) {
    note('no test ran: a run without tests does not count');
    finish(0, 0, skipped, 1);
  }
  finish(passed, failed, skipped, failed > 0 ? 1 : 0);
}

await main();

/**
 * Runs an external server (influxd, mosquitto, a hub under test...) as a child process for a test:
 * output goes to a log file in the server's own temp dir, start() waits for a readiness probe, stop is
 * by PID (SIGTERM, then SIGKILL after a grace period) and waits for the exit. kill9() and restart() keep
 * the port and the data dir, for crash and recovery tests.
 *
 * A test run that dies does not leave servers behind: every live child is SIGKILLed from a process 'exit'
 * handler and from SIGINT/SIGTERM/SIGHUP handlers, and, when TENDRIL_TEST_PID_DIR is set (scripts/test.mjs
 * sets it), each child is recorded there so the runner can reap what survived a SIGKILLed worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { errorMessage } from './wait-for.js';

export interface ServerProcessOptions {
  /** Short name used in log file names and error messages, e.g. "influxd". */
  name: string;
  command: string;
  args?: readonly string[];
  /** Merged over process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Temp dir owned by this server (config, data, log). Removed by stop() unless keepDir. */
  dir: string;
  /**
   * Readiness probe: resolves truthy once the server serves. Throwing or resolving falsy means "not yet".
   * Called every probeIntervalMs until it passes, the process exits, or readyTimeoutMs elapses.
   */
  ready: () => Promise<unknown>;
  /** What readiness means, for error messages, e.g. "GET http://127.0.0.1:4711/ping -> 204". */
  readyWhat: string;
  /** Default 20000 (the machine is shared; influxd is ready in well under a second when idle). */
  readyTimeoutMs?: number;
  /** Default 25. */
  probeIntervalMs?: number;
  /** Time between SIGTERM and SIGKILL on stop. Default 5000. */
  stopGraceMs?: number;
  /** Keep the dir on stop() (or set TENDRIL_KEEP_TEST_DIRS=1 for every server). */
  keepDir?: boolean;
}

const live = new Set<ServerProcess>();

export class ServerProcess {
  readonly name: string;
  readonly dir: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(private readonly options: ServerProcessOptions) {
    this.name = options.name;
    this.dir = options.dir;
    this.logPath = join(options.dir, `${options.name}.log`);
  }

  /** PID of the running process; throws when it is not running (a stale PID must never be signalled). */
  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined || !this.running) throw new Error(`${this.name} is not running`);
    return pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.lastExit === undefined;
  }

  /** Spawns the process (if not running) and resolves once the readiness probe passes. */
  async start(): Promise<void> {
    if (this.stopped) throw new Error(`${this.name} was stopped for good (stop() removes its dir); start a new one`);
    if (this.running) return;
    const { command, args = [], env, cwd } = this.options;
    const logFd = openSync(this.logPath, 'a');
    writeSync(logFd, `\n=== ${new Date().toISOString()} start: ${command} ${args.join(' ')}\n`);
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: cwd ?? this.dir,
        env: { ...process.env, ...env },
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    this.child = child;
    this.lastExit = undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.lastExit = { code, signal };
        live.delete(this);
        forgetPid(child.pid);
        resolve();
      });
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    live.add(this);
    installReaper();
    if (child.pid !== undefined) recordPid(child.pid, this.dir, this.name, this.keepDir);
    await this.waitReady(spawnError);
  }

  private async waitReady(spawnError: Promise<Error>): Promise<void> {
    const { ready, readyWhat, readyTimeoutMs = 20_000, probeIntervalMs = 25 } = this.options;
    const deadline = Date.now() + readyTimeoutMs;
    let lastProbeError: unknown;
    let failure: Error | undefined;
    void spawnError.then((err) => {
      failure = err;
    });
    for (;;) {
      if (failure) throw new Error(`${this.name} could not be started (${this.options.command}): ${failure.message}`);
      if (this.lastExit) {
        throw new Error(
          `${this.name} exited (code ${this.lastExit.code}, signal ${this.lastExit.signal}) before it was ready ` +
            `(waiting for ${readyWhat}).\n${this.describeLog()}`,
        );
      }
      try {
        if (await ready()) return;
        lastProbeError = undefined;
      } catch (err) {
        lastProbeError = err;
      }
      if (Date.now() >= deadline) {
        await this.kill9().catch(() => undefined);
        const probe = lastProbeError === undefined ? '' : ` Last probe error: ${errorMessage(lastProbeError)}.`;
        throw new Error(
          `${this.name} did not become ready within ${readyTimeoutMs} ms (waiting for ${readyWhat}).${probe}\n${this.describeLog()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, probeIntervalMs));
    }
  }

  /** SIGTERM, then SIGKILL after stopGraceMs; resolves when the process has exited. Keeps the dir. */
  async terminate(): Promise<void> {
    if (!this.running || !this.child) return;
    const child = this.child;
    child.kill('SIGTERM');
    const graceMs = this.options.stopGraceMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace-over'>((resolve) => {
      timer = setTimeout(() => resolve('grace-over'), graceMs);
    });
    const outcome = await Promise.race([this.exited.then(() => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'grace-over') {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** SIGKILL (a crash, as far as the server can tell); resolves when the process has exited. Keeps port and dir. */
  async kill9(): Promise<void> {
    if (!this.running || !this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the process if it runs (gracefully) and starts it again with the same port, config and data dir. */
  async restart(): Promise<void> {
    await this.terminate();
    await this.start();
  }

  /** Terminates the process and removes its dir (unless keepDir). Final; safe to call twice. */
  async stop(): Promise<void> {
    await this.terminate();
    this.stopped = true;
    if (!this.keepDir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Synchronous best-effort removal of the dir, for exit handlers (unless keepDir). */
  removeDirNow(): void {
    if (this.keepDir) return;
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort while exiting
    }
  }

  private get keepDir(): boolean {
    return this.options.keepDir === true || process.env.TENDRIL_KEEP_TEST_DIRS === '1';
  }

  /** Last lines of the server's log. */
  logTail(lines = 40): string {
    try {
      const text = readFileSync(this.logPath, 'utf8');
      return text
        .split('\n')
        .slice(-lines - 1)
        .join('\n')
        .trimEnd();
    } catch (err) {
      return `(log unreadable: ${errorMessage(err)})`;
    }
  }

  private describeLog(): string {
    return `--- last lines of ${this.logPath} ---\n${this.logTail()}\n--- end of log ---`;
  }
}

/** Spawns a server and waits until it is ready; on failure the process is gone and the error carries its log tail. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const server = new ServerProcess(options);
  try {
    await server.start();
  } catch (err) {
    await server.kill9().catch(() => undefined);
    if (!server.running && !options.keepDir) {
      // Keep the dir only when asked: the error message already carries the log tail.
      rmSync(options.dir, { recursive: true, force: true });
    }
    throw err;
  }
  return server;
}

/** A fresh temp dir, e.g. makeTempDir('influxd') -> /tmp/tendril-influxd-XXXXXX. */
export function makeTempDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `tendril-${name}-`));
}

/** True while a process with this PID exists (signal 0 probes without signalling). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ExecutableSpec {
  /** Executable name, looked up in PATH and the sbin dirs (mosquitto lives in /usr/sbin). */
  name: string;
  /** Debian package that provides it. */
  aptPackage: string;
  /** Environment variable that may point at the binary instead. */
  envVar?: string;
  /** Extra absolute paths to try. */
  candidates?: readonly string[];
}

/** Absolute path of a system binary, or an error that says which apt package provides it and how to install it. */
export function requireExecutable(spec: ExecutableSpec): string {
  const fromEnv = spec.envVar ? process.env[spec.envVar] : undefined;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(
      `${spec.envVar}=${fromEnv} is not an executable file. Unset it to use ${spec.name} from the "${spec.aptPackage}" package.`,
    );
  }
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
  ];
  const paths = [...(spec.candidates ?? []), ...dirs.filter((d) => isAbsolute(d)).map((d) => join(d, spec.name))];
  for (const path of paths) if (isExecutable(path)) return path;
  throw new Error(
    `${spec.name} is not installed (looked in PATH and the sbin dirs${spec.envVar ? `; ${spec.envVar} is not set` : ''}). ` +
      `It comes with the Debian package "${spec.aptPackage}": run \`bash scripts/install-system-deps.sh\` ` +
      `(installs every system package the tests need) or \`apt-get install ${spec.aptPackage}\`.`,
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// ---- leftovers: kill children when this process goes away ----

let reaperInstalled = false;
const reaperSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function killAllLive(): void {
  for (const server of live) {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    server.removeDirNow();
  }
}

function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on('exit', killAllLive);
  for (const signal of reaperSignals) {
    const onSignal = (): void => {
      killAllLive();
      process.off(signal, onSignal);
      // Keep the default meaning of the signal (terminate) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** Set by scripts/test.mjs: one file per live child so the runner can reap survivors of a SIGKILLed worker. */
function pidDir(): string | undefined {
  return process.env.TENDRIL_TEST_PID_DIR || undefined;
}

/**
 * Records a child for the test runner's reaper. `marker` is the child's temp dir, which must appear in its
 * command line, so the runner never kills an unrelated process that reused the PID; the runner also
 * removes that dir unless keepDir.
 */
export function recordPid(pid: number, marker: string, name: string, keepDir = false): void {
  const dir = pidDir();
  if (!dir) return;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${pid}.json`), JSON.stringify({ pid, marker, name, keepDir }));
  } catch {
    // Best effort: the exit handlers still cover the normal case.
  }
}

export function forgetPid(pid: number | undefined): void {
  const dir = pidDir();
  if (!dir || pid === undefined) return;
  try {
    unlinkSync(join(dir, `${pid}.json`));
  } catch {
    // not recorded
  }
}

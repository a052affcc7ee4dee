/**
 * Debian's Chromium driven by playwright-core (no browser downloads here). Each launch gets its own temp
 * profile dir; close() shuts the browser down and removes it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { chromium, type BrowserContext, type LaunchOptions, type Page } from 'playwright-core';
import { forgetPid, makeTempDir, pidAlive, recordPid, requireExecutable } from './server-process.js';
import { waitFor } from './wait-for.js';

/** Flags that keep Chromium quiet and offline on a shared, headless machine (see the machine notes). */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ChromiumOptions {
  /** Accept self-signed TLS (tests of the hub's own https/wss). Default false. */
  ignoreHTTPSErrors?: boolean;
  /** Extra Chromium flags. */
  args?: readonly string[];
  /** Default 30000. */
  launchTimeoutMs?: number;
}

export interface ChromiumInstance {
  context: BrowserContext;
  userDataDir: string;
  /** PID of the browser's main process. */
  readonly pid: number;
  newPage(): Promise<Page>;
  /** Closes the browser, waits until its process is gone, removes the profile dir. Safe to call twice. */
  close(): Promise<void>;
}

export async function launchChromium(options: ChromiumOptions = {}): Promise<ChromiumInstance> {
  const executablePath = requireExecutable({
    name: 'chromium',
    aptPackage: 'chromium',
    envVar: 'CHROMIUM_PATH',
  });
  const userDataDir = await makeTempDir('chromium');
  const launchOptions: LaunchOptions & { ignoreHTTPSErrors?: boolean } = {
    executablePath,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(options.args ?? [])],
    timeout: options.launchTimeoutMs ?? 30_000,
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
  };
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, launchOptions);
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw new Error(`Chromium (${executablePath}) did not start: ${(err as Error).message}`);
  }
  const pid = findBrowserPid(userDataDir);
  if (pid !== undefined) recordPid(pid, userDataDir, 'chromium');

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await context.close();
      if (pid !== undefined) {
        await waitFor(() => !pidAlive(pid), { what: `Chromium (PID ${pid}) to exit after close()`, timeoutMs: 10_000 });
        forgetPid(pid);
      }
      await rm(userDataDir, { recursive: true, force: true });
    })();
    return closed;
  };

  return {
    context,
    userDataDir,
    get pid() {
      if (pid === undefined) throw new Error(`could not find the Chromium process for profile ${userDataDir}`);
      return pid;
    },
    newPage: () => context.newPage(),
    close,
  };
}

/**
 * The browser's main process: our direct child whose command line names this profile dir. (Playwright does
 * not expose the PID of a persistent context; the profile dir is unique to this launch.)
 */
function findBrowserPid(userDataDir: string): number | undefined {
  const needle = `--user-data-dir=${userDataDir}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows "pid (comm) state"; comm may contain spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline.includes(needle)) return Number(entry);
    } catch {
      // process went away while we looked
    }
  }
  return undefined;
}

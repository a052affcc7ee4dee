import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getFreePort, getFreePorts } from '../support/free-port.js';
import { makeTempDir, pidAlive, requireExecutable, startServerProcess } from '../support/server-process.js';

// A tiny HTTP server in a child Node process stands in for "some server" so these tests need no system package.
const serverScript = `
  const http = require('node:http');
  console.log('booting on port ' + process.env.PORT);
  if (process.env.CRASH) { console.error('fatal: ' + process.env.CRASH); process.exit(3); }
  if (process.env.IGNORE_TERM) process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
  http.createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
`;

const httpOk = (port: number) => async () => (await fetch(`http://127.0.0.1:${port}/`)).ok;

describe('startServerProcess', () => {
  it('waits for readiness, logs to its dir, restarts on the same port, and stops by PID', async () => {
    const port = await getFreePort();
    const dir = await makeTempDir('selftest');
    const server = await startServerProcess({
      name: 'node-http',
      command: process.execPath,
      args: ['-e', serverScript],
      env: { PORT: String(port) },
      dir,
      ready: httpOk(port),
      readyWhat: `GET http://127.0.0.1:${port}/`,
    });
    const firstPid = server.pid;
    expect(pidAlive(firstPid)).toBe(true);
    expect(server.logTail()).toContain(`booting on port ${port}`);

    await server.kill9();
    expect(pidAlive(firstPid)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();

    await server.restart();
    expect(server.pid).not.toBe(firstPid);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok');

    const secondPid = server.pid;
    await server.stop();
    expect(pidAlive(secondPid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it('falls back to SIGKILL when SIGTERM is ignored past the grace period', async () => {
    const port = await getFreePort();
    const server = await startServerProcess({
      name: 'stubborn',
      command: process.execPath,
      args: ['-e', serverScript],
      env: { PORT: String(port), IGNORE_TERM: '1' },
      dir: await makeTempDir('selftest'),
      ready: httpOk(port),
      readyWhat: 'HTTP 200',
      stopGraceMs: 200,
    });
    const pid = server.pid;
    await server.stop();
    expect(pidAlive(pid)).toBe(false);
  });

  it('fails with the exit status and the log tail when the server dies before it is ready', async () => {
    const port = await getFreePort();
    const dir = await makeTempDir('selftest');
    const started = startServerProcess({
      name: 'crasher',
      command: process.execPath,
      args: ['-e', serverScript],
      env: { PORT: String(port), CRASH: 'config file unreadable' },
      dir,
      ready: httpOk(port),
      readyWhat: `GET http://127.0.0.1:${port}/`,
    });
    await expect(started).rejects.toThrow(
      /crasher exited \(code 3, signal null\) before it was ready \(waiting for GET http:\/\/127\.0\.0\.1:\d+\/\)/,
    );
    await expect(started).rejects.toThrow('fatal: config file unreadable');
    expect(existsSync(dir)).toBe(false);
  });

  it('names what it waited for and shows the log when readiness times out, and leaves no process behind', async () => {
    const [port, wrongPort] = await getFreePorts(2);
    // The server comes up, but on a port the probe does not look at.
    const dir = await makeTempDir('selftest');
    const started = startServerProcess({
      name: 'never-ready',
      command: process.execPath,
      args: ['-e', serverScript],
      env: { PORT: String(port) },
      dir,
      ready: httpOk(wrongPort!),
      readyWhat: `GET http://127.0.0.1:${wrongPort}/`,
      // Long enough for a node process to start and print on a loaded machine (300 ms was not, under CI load).
      readyTimeoutMs: 3000,
    });
    const err = (await started.catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(
      `never-ready did not become ready within 3000 ms (waiting for GET http://127.0.0.1:${wrongPort}/)`,
    );
    expect(err.message).toContain(`booting on port ${port}`);
    // The process was killed: its port is free again.
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    expect(existsSync(dir)).toBe(false);
  });
});

describe('requireExecutable', () => {
  it('finds a system binary', () => {
    expect(requireExecutable({ name: 'sh', aptPackage: 'dash' })).toMatch(/\/sh$/);
  });

  it('says which apt package to install and how', () => {
    expect(() => requireExecutable({ name: 'tendril-no-such-binary', aptPackage: 'tendril-pkg' })).toThrow(
      /tendril-no-such-binary is not installed.*Debian package "tendril-pkg".*bash scripts\/install-system-deps\.sh/,
    );
  });
});

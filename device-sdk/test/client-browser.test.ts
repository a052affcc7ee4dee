/**
 * The SDK in a real browser: Debian's Chromium loads the esbuild bundle of device-sdk/src/index.ts and runs
 * TendrilDevice on the browser's own WebSocket against the FAKE hub on 127.0.0.1. The page comes from a
 * server on 127.0.0.1 too: Chromium's local-network-access checks block a data: page from reaching loopback.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchChromium, type ChromiumInstance } from '../../test/support/chromium.js';
import { FakeHub, waitUntil } from './support/fake-hub.js';

let browser: ChromiumInstance;
let hub: FakeHub;
let pageServer: Server;
let pageUrl: string;

beforeAll(async () => {
  const out = await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    globalName: 'Tendril',
    platform: 'browser',
    write: false,
  });
  const html = `<!doctype html><title>sdk</title><script>${out.outputFiles[0]!.text}</script>`;
  pageServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html)).listen(
    0,
    '127.0.0.1',
  );
  await once(pageServer, 'listening');
  pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`;
  [browser, hub] = await Promise.all([launchChromium(), FakeHub.start({ heartbeatMs: 1000 })]);
});

afterAll(async () => {
  await browser?.close();
  await hub?.close();
  expect(hub?.violations ?? []).toEqual([]);
  await new Promise((resolve) => pageServer?.close(resolve));
});

it('connects, sends, gets acks and answers a command with the browser WebSocket', async () => {
  const tab = await browser.newPage();
  await tab.goto(pageUrl);
  await tab.evaluate((url) => {
    const T = (globalThis as any).Tendril;
    const d = new T.TendrilDevice({
      url,
      deviceId: 'browser-1',
      token: 'secret',
      epoch: 42,
      metrics: [
        { name: 'clicks', kind: 'int' },
        { name: 'visible', kind: 'bool' },
      ],
    });
    d.onCommand('whoami', () => ({ agent: 'chromium' }));
    (globalThis as any).device = d;
    d.start();
    d.send({ clicks: 1, visible: true });
    d.send({ clicks: 2 });
  }, hub.url);

  const conn = await hub.connection(0, 15_000);
  const stats = await tab.evaluate(async () => {
    const d = (globalThis as any).device;
    await d.flush(5000);
    return d.stats;
  });
  expect(stats).toMatchObject({ sent: 2, acked: 2, buffered: 0, connected: true });
  expect(hub.storedSeqs('browser-1', 42)).toEqual([1, 2]);

  conn.send({ type: 'command', commandId: 7, name: 'whoami', args: '', timeoutMs: 1000 });
  await waitUntil(
    () => conn.frames.filter((f) => f.type === 'commandResult').length === 2,
    'the browser to answer the command',
  );
  expect(conn.frames.filter((f) => f.type === 'commandResult').map((f) => (f as { detail: string }).detail)).toEqual([
    '',
    '{"agent":"chromium"}',
  ]);

  await tab.evaluate(() => (globalThis as any).device.close());
  await waitUntil(() => conn.closed, 'the browser to close the connection');
  expect(conn.closed).toEqual({ code: 1000, reason: '' });
});

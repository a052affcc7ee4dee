/**
 * Issue "Hardening", item 1: devices that never read cannot grow the hub's memory without bound. Ten
 * authenticated devices send readings full of undeclared aliases (each would draw 64 ERROR frames), never read
 * what the hub sends, and send unsolicited Pongs, for 30 s. The hub's heap must stay bounded: the ERROR budget
 * (§7.1.5) caps what one bad reading costs, and the per-device output cap (§6.6.7) caps what waits for a device.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { TestDevice } from './device-client.js';
import { provision, startHub } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const DEVICES = 10;
const RUN_MS = 30_000;

describe('memory with non-reading devices (§6.6.7, §7.1.5)', () => {
  it(`stays bounded while ${DEVICES} devices that never read send bad readings and unsolicited Pongs for ${RUN_MS / 1000} s`, async () => {
    // A long heartbeat, so the devices stay connected the whole run: the bound must not rely on it.
    const hub = await startHub({ config: { heartbeatMs: 120_000 } });
    const devices: TestDevice[] = [];
    try {
      for (let i = 0; i < DEVICES; i++) {
        const id = `deaf-${i}`;
        const token = await provision(hub.app, id);
        const d = await TestDevice.connect(hub.listening!.deviceUrl, { autoPong: false });
        await d.hello({ deviceId: id, token });
        (d.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
        devices.push(d);
      }
      const values = Array.from({ length: 64 }, (_, i) => ({ alias: 100 + i, kind: 'f32' as const, value: 1 }));
      const seqs = new Array<number>(DEVICES).fill(0);
      const send = () => {
        devices.forEach((d, i) => {
          if (d.ws.readyState !== WebSocket.OPEN) return;
          for (let k = 0; k < 20; k++) d.send({ type: 'reading', seq: ++seqs[i]!, ts: Date.now(), values });
          d.ws.pong(Buffer.from('unsolicited'));
        });
      };
      // Warm up (JIT, buffers), then measure from a settled heap.
      for (let i = 0; i < 20; i++) {
        send();
        await new Promise((r) => setTimeout(r, 25));
      }
      const before = heapMiB();
      const samples: number[] = [];
      const started = Date.now();
      while (Date.now() - started < RUN_MS) {
        send();
        await new Promise((r) => setTimeout(r, 25));
        if (samples.length < Math.floor((Date.now() - started) / 5000)) samples.push(heapMiB());
      }
      const after = heapMiB();
      const sent = seqs.reduce((a, b) => a + b, 0);
      // ~48 000 bad readings (3 million rejected values) went in; without the bounds the hub queued ~600 KB/s
      // per device (issue 11), 180 MB over this run.
      expect(sent).toBeGreaterThan(20_000);
      expect(
        after - before,
        `heap grew from ${before.toFixed(1)} to ${after.toFixed(1)} MiB (samples ${samples.map((s) => s.toFixed(1)).join(', ')})`,
      ).toBeLessThan(24);
      const metrics = (await hub.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(Number(/^tendril_error_frames_suppressed_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(100_000);
    } finally {
      for (const d of devices) d.ws.terminate();
      await hub.dispose();
    }
  }, 90_000);
});

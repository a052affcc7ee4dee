import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startInfluxDB } from '../support/influxdb.js';
import { pidAlive } from '../support/server-process.js';

describe('startInfluxDB', () => {
  it('serves /write and /query on loopback, survives kill -9 with its data, and stops by PID', async () => {
    const influx = await startInfluxDB({ db: 'selftest' });
    try {
      expect(influx.url).toBe(`http://127.0.0.1:${influx.port}`);
      await influx.write('temperature,device=d1 value=21.5 1700000000000');
      const expected = [
        {
          statement_id: 0,
          series: [{ name: 'temperature', columns: ['time', 'value'], values: [[1700000000000, 21.5]] }],
        },
      ];
      expect(await influx.query("SELECT value FROM temperature WHERE device = 'd1'")).toEqual(expected);

      // A crash: the point was acknowledged (204), so the WAL must bring it back on the same port and data dir.
      const crashedPid = influx.pid;
      await influx.kill9();
      expect(pidAlive(crashedPid)).toBe(false);
      await influx.restart();
      expect(influx.pid).not.toBe(crashedPid);
      expect(await influx.query("SELECT value FROM temperature WHERE device = 'd1'")).toEqual(expected);
    } finally {
      const pid = influx.process.running ? influx.pid : undefined;
      await influx.stop();
      if (pid !== undefined) expect(pidAlive(pid)).toBe(false);
      expect(existsSync(influx.dataDir)).toBe(false);
    }
  });
});

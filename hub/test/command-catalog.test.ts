/**
 * Command catalogues per device model: set by an admin, read by anyone, kept in hub.db across restarts,
 * audited, and checked by POST /devices/:id/commands. Real hub (createHub), real SQLite.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CATALOG_LIMITS } from '../src/commands/catalog.js';
import { auth, provision, startHub, tempDir, type TestHub } from './helpers.js';

const RELAY_CATALOG = {
  commands: [
    {
      name: 'relay',
      label: 'Switch relay',
      description: 'Turn the relay on or off.',
      args: [{ name: 'on', type: 'boolean', label: 'On', required: true, default: true }],
    },
    {
      name: 'set-interval',
      label: 'Set reporting interval',
      args: [{ name: 'ms', type: 'integer', label: 'Interval (ms)', min: 100, max: 86_400_000, required: true }],
    },
    { name: 'reboot', args: [{ name: 'delayMs', type: 'integer', min: 0, max: 600_000 }] },
  ],
};

describe('command catalogue', () => {
  let hub: TestHub;
  let dir: ReturnType<typeof tempDir>;
  beforeEach(async () => {
    dir = tempDir();
    hub = await startHub({ listen: false, dataDir: dir.path });
  });
  afterEach(async () => {
    await hub.dispose();
    dir.remove();
  });

  const put = (model: string, payload: unknown) =>
    hub.app.inject({
      method: 'PUT',
      url: `/api/v1/models/${model}/commands`,
      headers: auth,
      payload: payload as object,
    });
  const send = (id: string, payload: Record<string, unknown>) =>
    hub.app.inject({ method: 'POST', url: `/api/v1/devices/${id}/commands`, headers: auth, payload });

  it('is set by PUT, read by GET, kept across a restart, and audited', async () => {
    const res = await put('power-meter', RELAY_CATALOG);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ model: 'power-meter', allowUnlisted: false, updatedBy: 'admin-token' });
    expect((await hub.app.inject({ method: 'GET', url: '/api/v1/models/nope', headers: auth })).json().error.code).toBe(
      'MODEL_NOT_FOUND',
    );

    await hub.app.close();
    hub = await startHub({ listen: false, dataDir: dir.path });
    const one = await hub.app.inject({ method: 'GET', url: '/api/v1/models/power-meter', headers: auth });
    expect(one.statusCode).toBe(200);
    expect(one.json().commands).toEqual(RELAY_CATALOG.commands);
    const list = await hub.app.inject({ method: 'GET', url: '/api/v1/models', headers: auth });
    expect(list.json().models.map((m: { model: string }) => m.model)).toEqual(['power-meter']);
    const audit = await hub.app.inject({ method: 'GET', url: '/api/v1/audit?action=model.*', headers: auth });
    expect(audit.json().entries[0]).toMatchObject({ action: 'model.commands.set', target: 'model:power-meter' });

    const del = await hub.app.inject({ method: 'DELETE', url: '/api/v1/models/power-meter/commands', headers: auth });
    expect(del.statusCode).toBe(204);
    expect((await hub.app.inject({ method: 'GET', url: '/api/v1/models', headers: auth })).json().models).toEqual([]);
  });

  it('refuses a catalogue that breaks the documented schema with 400 INVALID_REQUEST', async () => {
    const tooMany = Array.from({ length: CATALOG_LIMITS.maxCommands + 1 }, (_, i) => ({ name: `c${i}` }));
    const bad: Array<[string, unknown]> = [
      ['no commands', {}],
      ['too many commands', { commands: tooMany }],
      ['bad name', { commands: [{ name: 'has space' }] }],
      ['unknown type', { commands: [{ name: 'x', args: [{ name: 'a', type: 'date' }] }] }],
      ['unknown field', { commands: [{ name: 'x', colour: 'red' }] }],
      ['duplicate command', { commands: [{ name: 'x' }, { name: 'x' }] }],
      [
        'duplicate arg',
        {
          commands: [
            {
              name: 'x',
              args: [
                { name: 'a', type: 'string' },
                { name: 'a', type: 'string' },
              ],
            },
          ],
        },
      ],
      ['min above max', { commands: [{ name: 'x', args: [{ name: 'a', type: 'integer', min: 5, max: 1 }] }] }],
      [
        'default out of range',
        { commands: [{ name: 'x', args: [{ name: 'a', type: 'integer', max: 5, default: 9 }] }] },
      ],
      ['default of another type', { commands: [{ name: 'x', args: [{ name: 'a', type: 'boolean', default: 1 }] }] }],
      ['long label', { commands: [{ name: 'x', label: 'l'.repeat(CATALOG_LIMITS.maxLabel + 1) }] }],
    ];
    for (const [what, body] of bad) {
      const res = await put('m', body);
      expect(res.statusCode, what).toBe(400);
      expect(res.json().error.code, what).toBe('INVALID_REQUEST');
    }
    expect((await hub.app.inject({ method: 'GET', url: '/api/v1/models', headers: auth })).json().models).toEqual([]);
  });

  it("checks commands against the device model's catalogue; other models take any command", async () => {
    await provision(hub.app, 'pm-1', { model: 'power-meter' });
    await provision(hub.app, 'other-1', { model: 'unlisted-model' });
    await put('power-meter', RELAY_CATALOG);

    const unknown = await send('pm-1', { name: 'self-destruct' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe('COMMAND_UNKNOWN');
    expect(unknown.json().error.message).toContain('relay, set-interval, reboot');
    const badArgs: Array<[string, Record<string, unknown>]> = [
      ['wrong type', { name: 'relay', args: { on: 'yes' } }],
      ['missing required', { name: 'set-interval', args: {} }],
      ['required with a default', { name: 'relay' }],
      ['no args for a required one', { name: 'set-interval' }],
      ['below min', { name: 'set-interval', args: { ms: 5 } }],
      ['not whole', { name: 'set-interval', args: { ms: 1000.5 } }],
      ['unknown argument', { name: 'reboot', args: { delayMs: 0, force: true } }],
      ['not an object', { name: 'reboot', args: [1, 2] }],
    ];
    for (const [what, body] of badArgs) {
      const res = await send('pm-1', body);
      expect(res.statusCode, what).toBe(400);
      expect(res.json().error.code, what).toBe('COMMAND_ARGS_INVALID');
    }
    expect((await send('pm-1', { name: 'relay', args: { on: false } })).statusCode).toBe(202);
    expect((await send('pm-1', { name: 'reboot' })).statusCode).toBe(202);
    expect((await send('other-1', { name: 'anything', args: [1, 'free json'] })).statusCode).toBe(202);

    // allowUnlisted: listed commands are still checked, others go out as free JSON.
    await put('power-meter', { ...RELAY_CATALOG, allowUnlisted: true });
    expect((await send('pm-1', { name: 'calibrate', args: { any: ['thing'] } })).statusCode).toBe(202);
    expect((await send('pm-1', { name: 'relay', args: { on: 1 } })).json().error.code).toBe('COMMAND_ARGS_INVALID');
  });
});

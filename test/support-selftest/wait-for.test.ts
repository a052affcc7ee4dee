import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { once, waitFor, WaitTimeoutError } from '../support/wait-for.js';

describe('waitFor', () => {
  it('resolves with the first truthy value of a predicate', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? `after ${calls}` : undefined), {
      what: 'the third call',
      intervalMs: 1,
    });
    expect(value).toBe('after 3');
  });

  it('names what was awaited and the last predicate error when it times out', async () => {
    const err = await waitFor(
      () => {
        throw new Error('still booting');
      },
      { what: 'the fake server', timeoutMs: 50 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toBe(
      'timed out after 50 ms waiting for the fake server: last attempt threw: still booting',
    );
  });

  it('races a promise against the timeout', async () => {
    await expect(waitFor(Promise.resolve(42), { what: 'an answer' })).resolves.toBe(42);
    await expect(
      waitFor(new Promise(() => undefined), { what: 'a promise that never settles', timeoutMs: 20 }),
    ).rejects.toThrow('timed out after 20 ms waiting for a promise that never settles');
  });
});

describe('once', () => {
  it('resolves with the arguments of the next matching event', async () => {
    const emitter = new EventEmitter();
    const got = once(emitter, 'message', { what: 'message "b"', filter: (m: string) => m === 'b' });
    emitter.emit('message', 'a');
    emitter.emit('message', 'b', 2);
    await expect(got).resolves.toEqual(['b', 2]);
    expect(emitter.listenerCount('message')).toBe(0);
    expect(emitter.listenerCount('error')).toBe(0);
  });

  it('rejects with the emitted error, and names the event on timeout', async () => {
    const emitter = new EventEmitter();
    const failing = once(emitter, 'open', { what: 'the socket to open' });
    emitter.emit('error', new Error('ECONNREFUSED'));
    await expect(failing).rejects.toThrow('ECONNREFUSED');
    await expect(once(emitter, 'open', { what: 'the socket to open', timeoutMs: 20 })).rejects.toThrow(
      "timed out after 20 ms waiting for the socket to open: no 'open' event",
    );
    expect(emitter.listenerCount('open')).toBe(0);
  });
});

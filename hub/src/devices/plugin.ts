/**
 * The devices layer as a plugin: the registry (hub.db), presence, and the device sessions transports attach
 * devices to. Decorates `app.devices`. Connection state that changes often (durable seq, presence) is
 * flushed to the registry every `registryFlushMs` (durable seqs and last-seen times alone every
 * PROGRESS_FLUSH_EVERY-th time) and at close.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { TimerHandle } from '../core/clock.js';
import { EndOfTurn } from '../ingest/turn.js';
import type { Spool } from '../spool/index.js';
import { PresenceTracker } from './presence.js';
import { DeviceRegistry } from './registry.js';
import { DeviceSessions } from './sessions.js';

export interface Devices {
  registry: DeviceRegistry;
  presence: PresenceTracker;
  sessions: DeviceSessions;
}

declare module 'fastify' {
  interface FastifyInstance {
    devices: Devices;
  }
}

export interface DevicesOptions {
  /** How often connection state (durable seq, presence) is written to the registry (default 1000 ms). */
  registryFlushMs?: number | undefined;
  /** Pause announced with BACKOFF STORE_BUSY (default 1000 ms). */
  storeBusyPauseMs?: number | undefined;
}

export const devicesPlugin = fp<DevicesOptions>(
  async (app: FastifyInstance, opts) => {
    const { hubConfig: config, clock, timers, metrics, durability } = app;
    const registry = new DeviceRegistry(config.dataDir);
    if (durability.spool) raiseAckedSeqs(registry, durability.spool);
    const presence = new PresenceTracker(registry, durability.store, clock, app.log);
    const sessions = new DeviceSessions({
      registry,
      presence,
      ingest: {
        sink: durability.sink,
        metrics,
        turn: new EndOfTurn(),
        clock,
        deviceRate: config.deviceRate,
        deviceBurst: config.deviceBurst,
        storeBusyPauseMs: opts.storeBusyPauseMs ?? 1000,
        log: app.log,
      },
      clock,
      timers,
      log: app.log,
    });
    app.decorate('devices', { registry, presence, sessions });
    app.lifecycle.onShutdown('transports', () => sessions.beginShutdown());

    const flushTimer: TimerHandle = timers.setInterval(() => {
      try {
        registry.flush(false);
      } catch (err) {
        app.log.error({ err }, 'writing connection state to the registry failed; retrying at the next flush');
      }
    }, opts.registryFlushMs ?? 1000);
    flushTimer.unref?.();
    app.addHook('onClose', async () => {
      timers.clearInterval(flushTimer);
      registry.close();
    });
  },
  { name: 'tendril-devices', dependencies: ['tendril-base', 'tendril-durability'] },
);

/**
 * After a crash the registry's durable seqs (flushed periodically) can lag the spool's (made durable before
 * every ack). Starting from the larger one keeps WELCOME.ackedSeq (§6.3.4) and the duplicate check (§7.2)
 * from re-accepting readings that were already acked.
 */
function raiseAckedSeqs(registry: DeviceRegistry, spool: Spool): void {
  for (const [deviceId, epochs] of spool.durableSeqs()) {
    const device = registry.get(deviceId);
    if (!device) continue;
    for (const [epoch, seq] of epochs)
      if (seq > registry.ackedSeqOf(deviceId, epoch)) registry.setAckedSeq(device, epoch, seq);
  }
  registry.flush();
}

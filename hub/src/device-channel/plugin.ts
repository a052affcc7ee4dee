/**
 * The tendril.v1 device channel as a plugin: the WebSocket route /v1/device and the DeviceChannel behind it.
 * @fastify/websocket must be registered first (app.ts does, with perMessageDeflate off and maxPayload =
 * maxFrameBytes). At shutdown (transports phase) it settles what devices sent, acks it and closes them.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { SUBPROTOCOL } from '@tendril/device-sdk/codec';
import { errorBody } from '../errors.js';
import { DeviceChannel } from './channel.js';

export interface DeviceChannelPluginOptions {
  /** Time a turn of the event loop spends on device frames before sockets wait for the next (default 3 ms). */
  ingestTurnMs?: number | undefined;
  /** Up to this many device sockets a spent ingest budget pauses all of them (default 256, see DeviceChannel). */
  pauseAllSocketsUpTo?: number | undefined;
  /** Pre-authentication pool, failed-HELLO throttle, ERROR budget and per-device output bound (defaults in DeviceChannel). */
  maxPendingHandshakes?: number | undefined;
  maxPendingPerAddress?: number | undefined;
  maxBufferedBytes?: number | undefined;
  authFailuresPerAddress?: number | undefined;
  authFailureWindowMs?: number | undefined;
  authThrottleDelayMs?: number | undefined;
  errorFramesPerSecond?: number | undefined;
  errorFramesBurst?: number | undefined;
}

/** The tuning options above, as a list (app.ts hands over only these). */
export const DEVICE_CHANNEL_TUNING = [
  'ingestTurnMs',
  'pauseAllSocketsUpTo',
  'maxPendingHandshakes',
  'maxPendingPerAddress',
  'maxBufferedBytes',
  'authFailuresPerAddress',
  'authFailureWindowMs',
  'authThrottleDelayMs',
  'errorFramesPerSecond',
  'errorFramesBurst',
] as const satisfies ReadonlyArray<keyof DeviceChannelPluginOptions>;

declare module 'fastify' {
  interface FastifyInstance {
    /** The tendril.v1 transport (diagnostics and tests: socket counts, turn pauses). */
    deviceChannel: DeviceChannel;
  }
}

/** True when the Sec-WebSocket-Protocol header offers tendril.v1. */
export function offersSubprotocol(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const values = Array.isArray(header) ? header : [header];
  return values.some((v) => v.split(',').some((p) => p.trim() === SUBPROTOCOL));
}

const kResponse = Symbol('tendril.upgradeResponse');
type UpgradeRequest = { [kResponse]?: ServerResponse };

function defined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

export const deviceChannelPlugin = fp<DeviceChannelPluginOptions>(
  async (app: FastifyInstance, opts) => {
    const { hubConfig: config, devices, metrics, clock, timers } = app;
    const channel = new DeviceChannel({
      registry: devices.registry,
      sessions: devices.sessions,
      metrics,
      clock,
      timers,
      heartbeatMs: config.heartbeatMs,
      helloTimeoutMs: config.helloTimeoutMs,
      deviceRate: config.deviceRate,
      maxFrameBytes: config.maxFrameBytes,
      maxConnections: config.maxConnections,
      ...defined(Object.fromEntries(DEVICE_CHANNEL_TUNING.map((k) => [k, opts[k]])) as DeviceChannelPluginOptions),
      log: app.log,
    });
    app.decorate('deviceChannel', channel);
    app.lifecycle.onShutdown('transports', () => channel.shutdown());
    app.route({
      method: 'GET',
      url: '/v1/device',
      websocket: true,
      // Devices authenticate in HELLO (§6.1), not with HTTP credentials.
      config: { role: 'public' },
      // §1.1.3: refuse at the handshake, before any upgrade, when tendril.v1 is not offered.
      preValidation: async (request, reply) => {
        if (request.ws && !offersSubprotocol(request.headers['sec-websocket-protocol'])) {
          return reply
            .code(400)
            .send(
              errorBody(
                'SUBPROTOCOL_REQUIRED',
                `The device channel requires the WebSocket subprotocol ${SUBPROTOCOL}: send the header "Sec-WebSocket-Protocol: ${SUBPROTOCOL}" (docs/protocol.md §1.1).`,
              ),
            );
        }
        (request.raw as UpgradeRequest)[kResponse] = reply.raw;
      },
      handler: (socket, request) => {
        // handleProtocols (app.ts) selects tendril.v1 whenever it is offered, and preValidation made sure it was.
        if (socket.protocol !== SUBPROTOCOL) {
          socket.close(1002, 'SUBPROTOCOL');
          return;
        }
        // A device connection lives for days: let go of the HTTP request and response objects of the
        // upgrade (several KB each). @fastify/websocket's error listener holds them, and the response
        // stays attached to the TCP socket; the connection installs its own error listener.
        const raw = request.raw as UpgradeRequest;
        const response = raw[kResponse];
        delete raw[kResponse];
        socket.removeAllListeners('error');
        if (response?.socket) response.detachSocket(response.socket);
        channel.accept(socket, request.ip);
      },
    });
  },
  { name: 'tendril-device-channel', dependencies: ['tendril-devices'] },
);

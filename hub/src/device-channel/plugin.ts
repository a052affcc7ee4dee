/**
 * The device WebSocket route, /v1/device. @fastify/websocket must be registered first (app.ts does,
 * with perMessageDeflate off and maxPayload = maxFrameBytes).
 */
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import { SUBPROTOCOL } from '@tendril/device-sdk';
import type { DeviceChannel } from './channel.js';

/** True when the Sec-WebSocket-Protocol header offers tendril.v1. */
export function offersSubprotocol(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const values = Array.isArray(header) ? header : [header];
  return values.some((v) => v.split(',').some((p) => p.trim() === SUBPROTOCOL));
}

const kResponse = Symbol('tendril.upgradeResponse');
type UpgradeRequest = { [kResponse]?: ServerResponse };

export const deviceChannelPlugin: FastifyPluginAsync<{ channel: DeviceChannel }> = async (app, { channel }) => {
  app.route({
    method: 'GET',
    url: '/v1/device',
    websocket: true,
    // §1.1.3: refuse at the handshake, before any upgrade, when tendril.v1 is not offered.
    preValidation: async (request, reply) => {
      if (request.ws && !offersSubprotocol(request.headers['sec-websocket-protocol'])) {
        return reply
          .code(400)
          .type('text/plain; charset=utf-8')
          .send(`The device channel requires the WebSocket subprotocol ${SUBPROTOCOL}: send the header "Sec-WebSocket-Protocol: ${SUBPROTOCOL}" (docs/protocol.md §1.1).\n`);
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
};

/** Starts a built hub listening. */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { HubConfig } from './config.js';

export interface Listening {
  /** Base URL, e.g. http://127.0.0.1:8080 (https when TLS is configured). */
  url: string;
  /** The address the hub is bound to, as the OS reports it (0.0.0.0 or :: = every interface). */
  boundAddress: string;
  /** True when other machines can reach the hub (bound to a non-loopback address or to every interface). */
  reachableFromNetwork: boolean;
  /** Device channel URL, e.g. ws://127.0.0.1:8080/v1/device. */
  deviceUrl: string;
  port: number;
}

/** Listens on config.host:config.port (port 0 = any free port) and returns where. */
export async function listenHub(
  app: FastifyInstance,
  config: Pick<HubConfig, 'host' | 'port' | 'tls'>,
): Promise<Listening> {
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const shown = host === '0.0.0.0' || host === '[::]' ? 'localhost' : host;
  const secure = config.tls !== null;
  return {
    url: `${secure ? 'https' : 'http'}://${shown}:${address.port}`,
    boundAddress: address.address,
    reachableFromNetwork: !isLoopback(address.address),
    deviceUrl: `${secure ? 'wss' : 'ws'}://${shown}:${address.port}/v1/device`,
    port: address.port,
  };
}

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string): boolean {
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCA, type TestCA } from '../support/tls.js';
import { once } from '../support/wait-for.js';

function fetchText(url: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, ca === undefined ? {} : { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('makeTestCA', () => {
  let dir: string;
  let ca: TestCA;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tendril-tls-'));
    ca = await makeTestCA(dir);
    server = createServer({ cert: await readFile(ca.certPath), key: await readFile(ca.keyPath) }, (_req, res) =>
      res.end('secure'),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening', { what: 'the https server to listen' });
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('issues a server certificate that clients trusting the CA accept for 127.0.0.1 and localhost', async () => {
    expect(ca.caPem).toContain('-----BEGIN CERTIFICATE-----');
    expect(await readFile(ca.caPath, 'utf8')).toBe(ca.caPem);
    await expect(fetchText(`https://127.0.0.1:${port}/`, ca.caPem)).resolves.toBe('secure');
    await expect(fetchText(`https://localhost:${port}/`, ca.caPem)).resolves.toBe('secure');
  });

  it('is not trusted by clients that do not know the CA', async () => {
    await expect(fetchText(`https://127.0.0.1:${port}/`)).rejects.toThrow(/self-signed|unable to verify|local issuer/i);
  });
});

/** The hub serves https and wss when HUB_TLS_CERT/HUB_TLS_KEY are set (docs/operations.md, TLS). */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config.js';
import { TestDevice } from './device-client.js';
import { provision, startHub, tempDir, type TestHub } from './helpers.js';

/** A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const p = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=Tendril test CA',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(
    p('ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.pem'),
    '-days',
    '1',
    '-extfile',
    p('ext.cnf'),
  );
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

describe('TLS', () => {
  const certDir = tempDir('tendril-tls-');
  let hub: TestHub;
  let ca: Buffer;
  beforeAll(async () => {
    const files = makeCertificates(certDir.path);
    ca = readFileSync(files.ca);
    const { tls } = loadConfig({ HUB_TLS_CERT: files.cert, HUB_TLS_KEY: files.key });
    hub = await startHub({ config: { tls } });
  });
  afterAll(async () => {
    await hub.dispose();
    certDir.remove();
  });

  it('serves the device channel over wss to a client that trusts the CA', async () => {
    expect(hub.listening!.url).toMatch(/^https:\/\//);
    expect(hub.listening!.deviceUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/v1\/device$/);
    const token = await provision(hub.app, 'tls-1');
    const d = await TestDevice.connect(hub.listening!.deviceUrl, { ca });
    await d.hello({ deviceId: 'tls-1', token });
    d.send({ type: 'reading', seq: 1, ts: Date.now(), values: [{ alias: 2, kind: 'int', value: 1 }] });
    expect(await d.ackFor(1)).toBe(1);
    d.close();
    await d.closedWithin();
  });

  it('serves https', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      request(`${hub.listening!.url}/healthz`, { ca }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
  });

  it('is refused by a client that does not trust the CA', async () => {
    const ws = new WebSocket(hub.listening!.deviceUrl, ['tendril.v1']);
    const err = await new Promise<Error & { code?: string }>((resolve, reject) => {
      ws.on('open', () => reject(new Error('an untrusted certificate was accepted')));
      ws.on('error', resolve);
    });
    expect(err.code).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/,
    );
  });
});

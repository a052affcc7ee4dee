/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1/localhost, made with openssl,
 * for tests of the hub's own TLS (wss/https).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireExecutable } from './server-process.js';

const run = promisify(execFile);

export interface TestCA {
  /** PEM of the CA certificate (pass as `ca` to clients so they trust the server). */
  caPem: string;
  /** Server certificate (PEM), SAN IP:127.0.0.1, DNS:localhost, signed by the CA. */
  certPath: string;
  /** Server private key (PEM, unencrypted). */
  keyPath: string;
  /** CA certificate file. */
  caPath: string;
}

/** Writes ca.pem, ca-key.pem, server.pem, server-key.pem into `dir` (which must exist). EC P-256 keys: fast to make. */
export async function makeTestCA(dir: string): Promise<TestCA> {
  const openssl = requireExecutable({ name: 'openssl', aptPackage: 'openssl', envVar: 'OPENSSL_PATH' });
  const p = (name: string): string => join(dir, name);
  const ssl = async (...args: string[]): Promise<void> => {
    try {
      await run(openssl, args, { cwd: dir });
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`);
    }
  };
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  await ssl(
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    p('ca-key.pem'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Tendril Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  await ssl('req', '-new', ...ecKey, '-keyout', p('server-key.pem'), '-out', p('server.csr'), '-subj', '/CN=localhost');
  await writeFile(
    p('server.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  await ssl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('server.ext'),
    '-out',
    p('server.pem'),
  );

  return {
    caPem: await readFile(p('ca.pem'), 'utf8'),
    certPath: p('server.pem'),
    keyPath: p('server-key.pem'),
    caPath: p('ca.pem'),
  };
}

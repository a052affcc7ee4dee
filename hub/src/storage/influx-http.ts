/**
 * The two ways line protocol reaches InfluxDB, behind one interface, plus InfluxQL over /query:
 * - v1 (`INFLUX_URL` + `INFLUX_DB`): POST /write?db=&precision=ns, served natively by 1.x and by the
 *   v1-compatibility API of 2.x and 3.x. Plain node:http with a keep-alive agent.
 * - v2 (`INFLUX_ORG` + `INFLUX_BUCKET` + `INFLUX_TOKEN`): @influxdata/influxdb-client's WriteApi, which posts
 *   to /api/v2/write?org=&bucket=&precision=ns. Its own batching and retries are switched off (one flush per
 *   chunk, no retries): the store does batching, retries and dead-lettering the same way for both paths.
 *   A chunk's lines go to it as one record (joined by \n, as the WriteApi itself joins records).
 * Either way a send resolves with the HTTP outcome (status, body, Retry-After) and throws only when no HTTP
 * answer came (connection refused, reset, timeout).
 */
import http from 'node:http';
import https from 'node:https';
import { gzip as gzipCb } from 'node:zlib';
import { promisify } from 'node:util';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import { parseRetryAfter } from '../core/backoff.js';

const gzip = promisify(gzipCb);

export interface WriteOutcome {
  status: number;
  body: string;
  /** From Retry-After, ms; null when absent. */
  retryAfterMs: number | null;
}

export interface LineSender {
  /** Posts line protocol (lines separated by \n) as one request; `signal` abandons it (v1 only). */
  send(body: Buffer, signal?: AbortSignal): Promise<WriteOutcome>;
  close(): void;
}

/** No HTTP answer at all: the server is unreachable or too slow. */
export class InfluxTransportError extends Error {
  override readonly name: string = 'InfluxTransportError';
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'timeout',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface HttpTarget {
  url: string;
  token?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  timeoutMs: number;
}

function authHeader(target: HttpTarget): string | undefined {
  // §Storage: a token is sent as `Token ...` (InfluxDB 2.x/3.x v1-compat and 1.x with token auth alike).
  if (target.token) return `Token ${target.token}`;
  if (target.username !== undefined) {
    return `Basic ${Buffer.from(`${target.username}:${target.password ?? ''}`).toString('base64')}`;
  }
  return undefined;
}

/** A keep-alive HTTP client for one InfluxDB base URL. */
export class InfluxHttp {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly auth: string | undefined;

  constructor(private readonly target: HttpTarget) {
    this.base = new URL(target.url.endsWith('/') ? target.url : `${target.url}/`);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new Error(`INFLUX_URL must be http:// or https://, got ${target.url}`);
    }
    this.agent =
      this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.auth = authHeader(target);
  }

  get keepAliveAgent(): http.Agent {
    return this.agent;
  }

  request(
    method: 'GET' | 'POST',
    path: string,
    params: Record<string, string>,
    body?: { data: Buffer | string; contentType: string; encoding?: 'gzip' },
    /** A shorter deadline than the configured one (a probe), and a signal that destroys the request with its reason. */
    opts: { timeoutMs?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const headers: http.OutgoingHttpHeaders = {};
    if (this.auth) headers.authorization = this.auth;
    if (body) {
      headers['content-type'] = body.contentType;
      headers['content-length'] = Buffer.byteLength(body.data);
      if (body.encoding) headers['content-encoding'] = body.encoding;
    }
    const requestFn = url.protocol === 'https:' ? https.request : http.request;
    const timeoutMs = opts.timeoutMs ?? this.target.timeoutMs;
    const { signal } = opts;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const req = requestFn(url, { method, headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (err) =>
          reject(
            new InfluxTransportError(
              `InfluxDB ${method} ${url.pathname}: response failed: ${err.message}`,
              'unreachable',
              { cause: err },
            ),
          ),
        );
      });
      req.on('timeout', () => {
        req.destroy(
          new InfluxTransportError(`InfluxDB ${method} ${url.pathname}: no answer within ${timeoutMs} ms`, 'timeout'),
        );
      });
      if (signal) {
        const onAbort = (): void => void req.destroy(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
        req.on('close', () => signal.removeEventListener('abort', onAbort));
      }
      req.on('error', (err) => {
        reject(
          err instanceof InfluxTransportError
            ? err
            : new InfluxTransportError(
                `InfluxDB ${method} ${url.origin}${url.pathname}: ${err.message}`,
                'unreachable',
                { cause: err },
              ),
        );
      });
      req.end(body?.data);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** v1 /write (1.x native; 2.x and 3.x through their v1-compatible endpoint). */
export function createV1Sender(
  httpClient: InfluxHttp,
  opts: { db: string; rp?: string | undefined; gzip: boolean; now: () => number },
): LineSender {
  const params: Record<string, string> = { db: opts.db, precision: 'ns' };
  if (opts.rp) params.rp = opts.rp;
  return {
    async send(lines, signal) {
      const body = opts.gzip
        ? { data: await gzip(lines), contentType: 'text/plain; charset=utf-8', encoding: 'gzip' as const }
        : { data: lines, contentType: 'text/plain; charset=utf-8' };
      const res = await httpClient.request('POST', '/write', params, body, { signal });
      return {
        status: res.status,
        body: res.body,
        retryAfterMs: parseRetryAfter(res.headers['retry-after'], opts.now()),
      };
    },
    close() {
      // The agent belongs to the InfluxHttp client, which the store closes.
    },
  };
}

/**
 * v2 write API through @influxdata/influxdb-client. One WriteApi per chunk with a batch size above the
 * chunk, no flush timer and no retries, so flush() posts exactly this chunk and reports its outcome.
 */
export function createV2Sender(opts: {
  url: string;
  org: string;
  bucket: string;
  token: string;
  timeoutMs: number;
  gzip: boolean;
  agent: http.Agent;
  now: () => number;
}): LineSender {
  const client = new InfluxDB({
    url: opts.url,
    token: opts.token,
    timeout: opts.timeoutMs,
    transportOptions: { agent: opts.agent },
  });
  return {
    async send(body) {
      const api = client.getWriteApi(opts.org, opts.bucket, 'ns', {
        batchSize: 2,
        maxBatchBytes: Number.MAX_SAFE_INTEGER,
        flushInterval: 0,
        maxRetries: 0,
        maxBufferLines: 2,
        // gzipThreshold: bodies above it are gzipped; "never" is a threshold no body reaches.
        gzipThreshold: opts.gzip ? 0 : Number.MAX_SAFE_INTEGER,
        // Hand the failure back instead of letting the library log and retry it.
        writeFailed: (error: Error) => Promise.reject(error),
      });
      try {
        // The chunk's lines as one record: the WriteApi joins records with \n, so the body is the same bytes.
        api.writeRecord(body.toString('utf8'));
        await api.flush();
        return { status: 204, body: '', retryAfterMs: null };
      } catch (err) {
        if (err instanceof HttpError) {
          const retryAfter = err.headers?.['retry-after'];
          return {
            status: err.statusCode,
            body: err.body ?? err.message,
            retryAfterMs: parseRetryAfter(
              typeof retryAfter === 'string' || Array.isArray(retryAfter) ? retryAfter : null,
              opts.now(),
            ),
          };
        }
        const code = (err as NodeJS.ErrnoException).code;
        const kind = code === 'ETIMEDOUT' || (err as Error).name === 'RequestTimedOutError' ? 'timeout' : 'unreachable';
        throw new InfluxTransportError(`InfluxDB /api/v2/write: ${(err as Error).message}`, kind, { cause: err });
      } finally {
        api.dispose();
      }
    },
    close() {
      // The agent is shared with the query client and closed by the store.
    },
  };
}

/**
 * The simulator's side of the hub's HTTP contract: provisioning devices (POST /api/v1/devices, and on 409
 * rotating the token with POST /api/v1/devices/:id/token). node:http(s) rather than fetch, because a
 * private CA (--ca) has to reach the TLS layer.
 */
import http from 'node:http';
import https from 'node:https';
import { commandCatalog } from './command-catalog.js';
import { type DeviceModel, modelByName } from './models/index.js';

export interface HubEndpoints {
  /** http(s)://host:port — base of /api/v1. */
  httpBase: string;
  /** ws(s)://host:port/v1/device */
  deviceUrl: string;
}

/** Accepts http(s)://, ws(s):// or host:port and derives the API base and the device channel URL. */
export function hubEndpoints(hub: string): HubEndpoints {
  const withScheme = /^[a-z]+:\/\//i.test(hub) ? hub : `http://${hub}`;
  const url = new URL(withScheme);
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new Error(`--hub ${hub}: expected an http(s):// or ws(s):// URL of the hub, e.g. http://127.0.0.1:8080`);
  }
  const host = url.host;
  return {
    httpBase: `${secure ? 'https' : 'http'}://${host}`,
    deviceUrl: `${secure ? 'wss' : 'ws'}://${host}/v1/device`,
  };
}

export interface ProvisionRequest {
  id: string;
  name: string;
  model: string;
  labels?: Record<string, string>;
}

export interface ProvisionedDevice {
  id: string;
  name: string;
  model: string;
  token: string;
}

export class HubApiError extends Error {
  override readonly name = 'HubApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface HubApiOptions {
  httpBase: string;
  adminToken: string;
  /** PEM of a CA to trust for https (self-signed hubs). */
  ca?: string | Buffer;
  /** More TLS options for https (e.g. rejectUnauthorized for a same-process loopback demo). */
  tls?: https.AgentOptions;
  /** Requests in flight at once while provisioning a fleet. Default 16. */
  concurrency?: number;
}

export class HubApi {
  private readonly agent: http.Agent;
  private readonly concurrency: number;

  constructor(private readonly options: HubApiOptions) {
    this.concurrency = options.concurrency ?? 16;
    const secure = options.httpBase.startsWith('https:');
    this.agent = secure
      ? new https.Agent({
          keepAlive: true,
          maxSockets: this.concurrency,
          ...options.tls,
          ...(options.ca ? { ca: options.ca } : {}),
        })
      : new http.Agent({ keepAlive: true, maxSockets: this.concurrency });
  }

  /** Creates the device, or when it exists (409) rotates its token; either way returns a working token. */
  async provision(device: ProvisionRequest): Promise<ProvisionedDevice> {
    const created = await this.request('POST', '/api/v1/devices', device);
    if (created.status === 201) {
      const body = created.body as { token?: unknown };
      if (typeof body.token !== 'string')
        throw new HubApiError(201, 'BAD_RESPONSE', `POST /api/v1/devices for ${device.id} returned no token`);
      return { id: device.id, name: device.name, model: device.model, token: body.token };
    }
    if (created.status === 409) {
      const rotated = await this.request('POST', `/api/v1/devices/${encodeURIComponent(device.id)}/token`, {});
      if (rotated.status === 200) {
        const body = rotated.body as { token?: unknown };
        if (typeof body.token === 'string')
          return { id: device.id, name: device.name, model: device.model, token: body.token };
      }
      throw this.failure(`rotating the token of ${device.id}`, rotated);
    }
    throw this.failure(`creating device ${device.id}`, created);
  }

  /** Provisions many devices, `concurrency` at a time, in order of the result. */
  async provisionAll(
    devices: readonly ProvisionRequest[],
    onEach?: (done: number) => void,
  ): Promise<ProvisionedDevice[]> {
    const out: ProvisionedDevice[] = new Array(devices.length);
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < devices.length) {
        const i = next++;
        out[i] = await this.provision(devices[i]!);
        onEach?.(++done);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, devices.length) }, worker));
    // The simulated models' command catalogues: the dashboard builds its command form from them, and the
    // hub checks commands against them.
    const models = [...new Set(devices.map((d) => d.model))].flatMap((name) => {
      const model = modelByName(name);
      return model?.name === name ? [model] : [];
    });
    if (models.length > 0) await this.registerCommands(models);
    return out;
  }

  /**
   * Publishes each model's command catalogue (PUT /api/v1/models/:model/commands). False when the hub has
   * no such route (an older hub: 404 NOT_FOUND); commands then go out unchecked, as before.
   */
  async registerCommands(models: readonly DeviceModel[]): Promise<boolean> {
    for (const model of models) {
      const res = await this.request(
        'PUT',
        `/api/v1/models/${encodeURIComponent(model.name)}/commands`,
        commandCatalog(model),
      );
      if (res.status === 404) return false;
      if (res.status !== 200) throw this.failure(`registering the commands of model ${model.name}`, res);
    }
    return true;
  }

  async getDevice(id: string): Promise<Record<string, unknown>> {
    const res = await this.request('GET', `/api/v1/devices/${encodeURIComponent(id)}`);
    if (res.status !== 200) throw this.failure(`reading device ${id}`, res);
    return res.body as Record<string, unknown>;
  }

  close(): void {
    this.agent.destroy();
  }

  private failure(what: string, res: { status: number; body: unknown }): HubApiError {
    const err = (res.body as { error?: { code?: string; message?: string } } | null)?.error;
    const code = err?.code ?? `HTTP_${res.status}`;
    let hint = '';
    if (res.status === 401) hint = " — pass the hub's admin token with --token or HUB_ADMIN_TOKEN";
    return new HubApiError(
      res.status,
      code,
      `${what} failed: ${res.status} ${code}${err?.message ? `: ${err.message}` : ''}${hint}`,
    );
  }

  /** One JSON request; retries 429/503 a few times, honouring Retry-After. */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.once(method, path, body);
      if ((res.status === 429 || res.status === 503) && attempt < 5) {
        const retryAfter = Number(res.retryAfter);
        const waitMs = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 200 * 2 ** attempt;
        await new Promise((r) => setTimeout(r, Math.min(waitMs, 10_000)));
        continue;
      }
      return res;
    }
  }

  private once(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; retryAfter?: string }> {
    const url = new URL(path, this.options.httpBase);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.options.adminToken}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = null;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              parsed = { error: { code: `HTTP_${res.statusCode}`, message: text.slice(0, 200) } };
            }
            const retryAfter = res.headers['retry-after'];
            resolve({
              status: res.statusCode ?? 0,
              body: parsed,
              ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        reject(
          new HubApiError(
            0,
            error.code ?? 'NETWORK',
            `${method} ${url.href} failed: ${error.message} — is the hub running at ${this.options.httpBase}?`,
          ),
        );
      });
      req.end(payload);
    });
  }
}

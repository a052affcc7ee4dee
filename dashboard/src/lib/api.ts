/**
 * The hub's HTTP API from the browser: same origin, the session cookie (no token in the page), JSON errors
 * `{ error: { code, message } }` turned into ApiError. A 401 tells the session (it ended or expired).
 */
import type { ModelCatalog } from './command-catalog.js';
import type { ConnectionRecord } from './state/device.svelte.js';
import type { Command, Device, HistoryAnswer, User } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Unauthorized = () => void;
let onUnauthorized: Unauthorized = () => {};
/** The session module registers what a 401 means. */
export function setUnauthorizedHandler(fn: Unauthorized): void {
  onUnauthorized = fn;
}

export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers:
        body === undefined
          ? { accept: 'application/json' }
          : { accept: 'application/json', 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(
      0,
      'NETWORK',
      `The hub did not answer (${(err as Error).message}); check that it runs and the network.`,
    );
  }
  const text = await res.text();
  let json: unknown;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401 && !path.endsWith('/session')) onUnauthorized();
    throw new ApiError(
      res.status,
      e?.code ?? `HTTP_${res.status}`,
      e?.message ?? `${method} ${path} failed with ${res.status}`,
    );
  }
  return json as T;
}

const enc = encodeURIComponent;

export const api = {
  login: (username: string, password: string) =>
    request<{ user: User }>('POST', '/api/v1/session', { username, password }),
  logout: () => request<void>('DELETE', '/api/v1/session'),
  me: () => request<{ user: User | null; principal?: { name: string; role: User['role'] } }>('GET', '/api/v1/me'),
  changePassword: (name: string, currentPassword: string, password: string) =>
    request<unknown>('PATCH', `/api/v1/users/${enc(name)}`, { currentPassword, password }),
  devices: () => request<{ devices: Device[] }>('GET', '/api/v1/devices'),
  device: (id: string) => request<Device>('GET', `/api/v1/devices/${enc(id)}`),
  series: (
    id: string,
    metric: string,
    q: { from: number; to: number; stepMs: number; agg: string },
    signal?: AbortSignal,
  ) =>
    request<HistoryAnswer>(
      'GET',
      `/api/v1/devices/${enc(id)}/series/${enc(metric)}?from=${q.from}&to=${q.to}&step=${q.stepMs}&agg=${q.agg}`,
      undefined,
      signal,
    ),
  connections: (id: string, limit: number) =>
    request<{ connections: ConnectionRecord[]; nextBefore: number | null }>(
      'GET',
      `/api/v1/devices/${enc(id)}/connections?limit=${limit}`,
    ),
  /** The model's command catalogue; 404 MODEL_NOT_FOUND when it has none. */
  model: (model: string) => request<ModelCatalog>('GET', `/api/v1/models/${enc(model)}`),
  commands: (id: string, limit = 50) =>
    request<{ commands: Command[]; nextBefore: number | null }>(
      'GET',
      `/api/v1/devices/${enc(id)}/commands?limit=${limit}`,
    ),
  sendCommand: (
    id: string,
    body: { name: string; args?: unknown; idempotencyKey: string; ttlMs?: number; timeoutMs?: number },
  ) => request<Command>('POST', `/api/v1/devices/${enc(id)}/commands`, body),
  cancelCommand: (commandId: number) => request<Command>('POST', `/api/v1/commands/${commandId}/cancel`),
};

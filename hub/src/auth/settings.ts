/** Settings of users, sessions and the audit log from environment variables (docs/operations.md). */

export interface AuthSettings {
  /** HUB_SESSION_IDLE_MINUTES (default 480): a session unused this long ends. */
  sessionIdleMs: number;
  /** HUB_SESSION_ABSOLUTE_HOURS (default 168): a session ends this long after login, used or not. */
  sessionAbsoluteMs: number;
  /** HUB_ALLOWED_ORIGINS: origins besides the hub's own that may send cookie-authenticated requests (CORS). */
  allowedOrigins: string[];
  /** HUB_AUDIT_RETENTION_DAYS (default 365; 0 = keep forever). */
  auditRetentionDays: number;
  /**
   * HUB_SECURE_COOKIES: `true` marks the session cookie Secure with the __Host- prefix even without TLS in the
   * hub (TLS ends at a proxy in front of it); `false` never; unset: when the hub serves TLS itself.
   */
  secureCookies: boolean | null;
}

export const AUTH_DEFAULTS = Object.freeze({
  sessionIdleMinutes: 480,
  sessionAbsoluteHours: 168,
  auditRetentionDays: 365,
});

export class AuthConfigError extends Error {
  override readonly name = 'AuthConfigError';
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new AuthConfigError(`${name}="${env[name]}" must be a whole number in ${min}..${max} (default ${fallback}).`);
  }
  return Number(raw);
}

/** `https://ops.example.com:8443` -> itself; anything that is not a bare http(s) origin throws. */
export function parseOrigin(text: string, what = 'HUB_ALLOWED_ORIGINS'): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AuthConfigError(
      `${what}: "${text}" is not an origin; write scheme://host[:port], e.g. https://ops.example.com.`,
    );
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.pathname !== '/' ||
    url.search ||
    url.hash ||
    url.username
  ) {
    throw new AuthConfigError(
      `${what}: "${text}" is not an origin; write scheme://host[:port] with no path, e.g. https://ops.example.com.`,
    );
  }
  return url.origin;
}

export function loadAuthSettings(env: Env = process.env): AuthSettings {
  const origins = (env.HUB_ALLOWED_ORIGINS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => parseOrigin(s));
  const secure = env.HUB_SECURE_COOKIES?.trim().toLowerCase();
  let secureCookies: boolean | null = null;
  if (secure === 'true' || secure === '1') secureCookies = true;
  else if (secure === 'false' || secure === '0') secureCookies = false;
  else if (secure !== undefined && secure !== '') {
    throw new AuthConfigError(
      `HUB_SECURE_COOKIES="${env.HUB_SECURE_COOKIES}" must be true or false (unset: Secure when the hub serves TLS).`,
    );
  }
  return {
    sessionIdleMs: intVar(env, 'HUB_SESSION_IDLE_MINUTES', AUTH_DEFAULTS.sessionIdleMinutes, 1, 525_600) * 60_000,
    sessionAbsoluteMs:
      intVar(env, 'HUB_SESSION_ABSOLUTE_HOURS', AUTH_DEFAULTS.sessionAbsoluteHours, 1, 8_760) * 3_600_000,
    allowedOrigins: [...new Set(origins)],
    auditRetentionDays: intVar(env, 'HUB_AUDIT_RETENTION_DAYS', AUTH_DEFAULTS.auditRetentionDays, 0, 36_500),
    secureCookies,
  };
}

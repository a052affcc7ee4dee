/**
 * Settings of users, sessions and the audit log from environment variables (docs/operations.md): the auth
 * section of the configuration, read with the hub's one environment reader (core/env.ts). loadConfig reads it
 * at start, so a bad value stops the hub with a message naming the variable (exit 2).
 */
import { ConfigError, EnvReader, type Env } from '../core/env.js';

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

/** A bad auth setting: a ConfigError naming the variable (the name stays for callers that test for it). */
export const AuthConfigError = ConfigError;

/** `https://ops.example.com:8443` -> itself; anything that is not a bare http(s) origin throws. */
export function parseOrigin(text: string, what = 'HUB_ALLOWED_ORIGINS'): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(
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
    throw new ConfigError(
      `${what}: "${text}" is not an origin; write scheme://host[:port] with no path, e.g. https://ops.example.com.`,
    );
  }
  return url.origin;
}

/** The auth section of the configuration. */
export function authSettingsFromEnv(e: EnvReader): AuthSettings {
  const secure = e.bool('HUB_SECURE_COOKIES', null);
  return {
    sessionIdleMs:
      e.int('HUB_SESSION_IDLE_MINUTES', AUTH_DEFAULTS.sessionIdleMinutes, { min: 1, max: 525_600 }) * 60_000,
    sessionAbsoluteMs:
      e.int('HUB_SESSION_ABSOLUTE_HOURS', AUTH_DEFAULTS.sessionAbsoluteHours, { min: 1, max: 8_760 }) * 3_600_000,
    allowedOrigins: [...new Set(e.list('HUB_ALLOWED_ORIGINS').map((o) => parseOrigin(o)))],
    auditRetentionDays: e.int('HUB_AUDIT_RETENTION_DAYS', AUTH_DEFAULTS.auditRetentionDays, { max: 36_500 }),
    secureCookies: secure,
  };
}

export function loadAuthSettings(env: Env = process.env): AuthSettings {
  return authSettingsFromEnv(new EnvReader(env));
}

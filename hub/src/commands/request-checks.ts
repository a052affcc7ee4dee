/**
 * Checks of a command request (docs/commands.md, "Limits"), and what makes a repeated idempotent request differ
 * from the one that created its command.
 */
import { HubHttpError } from '../errors.js';
import { COMMAND_LIMITS } from './model.js';
import type { CommandRecord } from './store.js';

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export function validate(
  name: string,
  argsJson: string | null,
  ttlMs: number,
  timeoutMs: number,
  key: string | undefined,
): void {
  const L = COMMAND_LIMITS;
  if (name.length === 0)
    throw new HubHttpError(
      'INVALID_REQUEST',
      'body/name is empty; give the name of a command the device handles (e.g. "reboot").',
    );
  // JSON can carry a lone UTF-16 surrogate ("\ud800"), which has no UTF-8 form: the COMMAND frame could not be
  // encoded, and the command would stay at the head of its device's line.
  if (/\p{Surrogate}/u.test(name))
    throw new HubHttpError(
      'INVALID_REQUEST',
      'body/name holds a lone UTF-16 surrogate, which is not text; send the name as well-formed Unicode.',
    );
  // §8.1: the name and the args travel in one COMMAND frame with these limits.
  if (utf8Bytes(name) > L.maxNameBytes) {
    throw new HubHttpError(
      'COMMAND_NAME_TOO_LONG',
      `The command name is ${utf8Bytes(name)} bytes of UTF-8; the limit is ${L.maxNameBytes} bytes (protocol §8.1). Use a shorter name.`,
    );
  }
  if (argsJson !== null && utf8Bytes(argsJson) > L.maxArgsBytes) {
    throw new HubHttpError(
      'COMMAND_ARGS_TOO_LARGE',
      `The arguments are ${utf8Bytes(argsJson)} bytes as JSON text; the limit is ${L.maxArgsBytes} bytes (protocol §8.1). Send less, or let the device fetch bulk data itself.`,
    );
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs < L.minTtlMs || ttlMs > L.maxTtlMs) {
    throw new HubHttpError(
      'INVALID_REQUEST',
      `body/ttlMs is ${ttlMs}; expected whole milliseconds from ${L.minTtlMs} to ${L.maxTtlMs} (7 days), default ${L.defaultTtlMs} (1 h).`,
    );
  }
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < L.minTimeoutMs || timeoutMs > L.maxTimeoutMs) {
    throw new HubHttpError(
      'INVALID_REQUEST',
      `body/timeoutMs is ${timeoutMs}; expected whole milliseconds from ${L.minTimeoutMs} to ${L.maxTimeoutMs} (1 h), default ${L.defaultTimeoutMs} (30 s).`,
    );
  }
  if (
    key !== undefined &&
    (key.length === 0 || key.length > L.maxIdempotencyKeyLength || !/^[\x21-\x7e]+$/.test(key))
  ) {
    throw new HubHttpError(
      'INVALID_REQUEST',
      `body/idempotencyKey must be 1 to ${L.maxIdempotencyKeyLength} printable ASCII characters without spaces (e.g. a UUID).`,
    );
  }
}

/** Fields in which a repeated idempotent request differs from the one that created `existing`. */
export function differences(
  existing: CommandRecord,
  name: string,
  argsJson: string | null,
  ttlMs: number,
  timeoutMs: number,
): string[] {
  const out: string[] = [];
  if (existing.name !== name) out.push('name');
  if (canonicalJson(existing.argsJson) !== canonicalJson(argsJson)) out.push('args');
  if (existing.expiresAt - existing.createdAt !== ttlMs) out.push('ttlMs');
  if (existing.timeoutMs !== timeoutMs) out.push('timeoutMs');
  return out;
}

/** JSON text with object keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same arguments. */
function canonicalJson(json: string | null): string | null {
  if (json === null) return null;
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(JSON.parse(json)));
}

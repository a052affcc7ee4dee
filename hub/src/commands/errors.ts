/**
 * HTTP error codes of the command API, beside the hub's own registry (hub/src/errors.ts), which the
 * command routes also use (INVALID_REQUEST, UNAUTHORIZED, DEVICE_NOT_FOUND, ...). The body has the hub's
 * shape, `{ "error": { "code", "message" } }`. hub/test/commands-api.test.ts fails when a code here has
 * no row in docs/commands.md.
 */
import { httpErrorInfo, type HttpErrorCode, type HttpErrorInfo } from '../errors.js';

function def<const C extends string>(code: C, status: number, meaning: string) {
  return { code, status, meaning } as const;
}

export const COMMAND_HTTP_ERRORS = [
  def('COMMAND_NAME_TOO_LONG', 400, 'The command name is longer than 64 bytes of UTF-8 (the COMMAND frame limit).'),
  def('COMMAND_ARGS_TOO_LARGE', 400, 'The arguments are longer than 4096 bytes as JSON text (the COMMAND frame limit).'),
  def('COMMAND_NOT_FOUND', 404, 'No command has this id.'),
  def('IDEMPOTENCY_CONFLICT', 409, 'The idempotency key was used for this device within 24 h by a request that differs from this one.'),
  def('COMMAND_QUEUE_FULL', 429, 'The device already has 1000 unfinished commands; wait for some to finish or expire.'),
] as const satisfies readonly HttpErrorInfo[];

export type CommandHttpErrorCode = (typeof COMMAND_HTTP_ERRORS)[number]['code'];

const statusOf = new Map<string, number>(COMMAND_HTTP_ERRORS.map((e) => [e.code, e.status]));

/**
 * Thrown by the command queue for a request it refuses (a code of its own, or one of the hub's:
 * INVALID_REQUEST, DEVICE_NOT_FOUND); the command routes turn it into the error body.
 */
export class CommandRequestError extends Error {
  override readonly name = 'CommandRequestError';
  readonly statusCode: number;
  constructor(
    readonly code: CommandHttpErrorCode | HttpErrorCode,
    message: string,
  ) {
    super(message);
    this.statusCode = statusOf.get(code) ?? httpErrorInfo(code)!.status;
  }
}

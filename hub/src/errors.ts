/**
 * Error codes of the hub's HTTP API (docs/api.md). Every error response is
 * `{ "error": { "code": "STRING_CODE", "message": "..." } }` with the status listed here.
 * hub/test/errors-registry.test.ts fails when a code here is missing from docs/api.md.
 * Device-channel (wire) codes live in the protocol registry of @tendril/device-sdk.
 */

export interface HttpErrorInfo {
  code: string;
  status: number;
  meaning: string;
}

function def<const C extends string>(code: C, status: number, meaning: string) {
  return { code, status, meaning } as const;
}

export const HTTP_ERRORS = [
  def('INVALID_REQUEST', 400, 'The body, parameters or query do not match the route schema; the message names the field.'),
  def('UNAUTHORIZED', 401, 'No bearer token, or a token the hub does not accept.'),
  def('NOT_FOUND', 404, 'No route matches the method and path.'),
  def('DEVICE_NOT_FOUND', 404, 'No device has this id.'),
  def('DEVICE_EXISTS', 409, 'A device with this id is already registered.'),
  def('PAYLOAD_TOO_LARGE', 413, 'The request body is larger than the body limit.'),
  def('UNSUPPORTED_MEDIA_TYPE', 415, 'The body is not application/json.'),
  def('INTERNAL_ERROR', 500, 'The hub failed unexpectedly; the log has the details.'),
  def('NOT_READY', 503, 'The hub cannot serve now (store unreachable, writer saturated, or shutting down).'),
] as const satisfies readonly HttpErrorInfo[];

export type HttpErrorCode = (typeof HTTP_ERRORS)[number]['code'];

const byCode = new Map<string, HttpErrorInfo>(HTTP_ERRORS.map((e) => [e.code, e]));

export function httpErrorInfo(code: string): HttpErrorInfo | undefined {
  return byCode.get(code);
}

/** An error an HTTP handler throws on purpose; the error handler turns it into the JSON error body. */
export class HubHttpError extends Error {
  override readonly name = 'HubHttpError';
  readonly statusCode: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
    this.statusCode = byCode.get(code)!.status;
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: HttpErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

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
  def(
    'SUBPROTOCOL_REQUIRED',
    400,
    'A WebSocket upgrade did not offer the subprotocol of its channel (tendril.v1 on /v1/device, tendril.live.v1 on /v1/live).',
  ),
  def(
    'INVALID_REQUEST',
    400,
    'The body, parameters or query do not match the route schema; the message names the field.',
  ),
  def('UNAUTHORIZED', 401, 'No credentials (session cookie or bearer token), or credentials the hub does not accept.'),
  def(
    'SESSION_EXPIRED',
    401,
    'The session cookie belongs to a session that timed out (idle or absolute) or was revoked; log in again.',
  ),
  def(
    'INVALID_CREDENTIALS',
    401,
    'Login refused: unknown user, wrong password or disabled account (the hub does not say which).',
  ),
  def('FORBIDDEN', 403, 'The caller is authenticated but its role is below the role the route needs.'),
  def(
    'ORIGIN_NOT_ALLOWED',
    403,
    "A state-changing request authenticated by cookie came from an origin that is not the hub's own nor in HUB_ALLOWED_ORIGINS.",
  ),
  def('PASSWORD_CHANGE_REQUIRED', 403, 'The user must change their password before doing anything else.'),
  def('ROLE_NOT_ALLOWED', 403, "The request asks for a role above the caller's own (token role ceiling)."),
  def('CURRENT_PASSWORD_WRONG', 403, 'A password change gave a wrong currentPassword.'),
  def('WEAK_PASSWORD', 400, 'The new password is shorter than 12 characters or is a common password.'),
  def('USER_NOT_FOUND', 404, 'No user has this name.'),
  def('SESSION_NOT_FOUND', 404, 'No session of the caller (or, for an admin, of anyone) has this id.'),
  def('TOKEN_NOT_FOUND', 404, 'No API token of the caller (or, for an admin, of anyone) has this id.'),
  def('USER_EXISTS', 409, 'A user with this name already exists.'),
  def('LAST_ADMIN', 409, 'The change would leave the hub without an enabled admin user.'),
  def(
    'TOO_MANY_ATTEMPTS',
    429,
    'Too many failed logins or bearer tokens for this user or client address; retry after Retry-After seconds.',
  ),
  def('NOT_FOUND', 404, 'No route matches the method and path.'),
  def('DEVICE_NOT_FOUND', 404, 'No device has this id.'),
  def('DEVICE_EXISTS', 409, 'A device with this id is already registered.'),
  // Commands (docs/commands.md).
  def('COMMAND_NAME_TOO_LONG', 400, 'The command name is longer than 64 bytes of UTF-8 (the COMMAND frame limit).'),
  def(
    'COMMAND_ARGS_TOO_LARGE',
    400,
    'The arguments are longer than 4096 bytes as JSON text (the COMMAND frame limit).',
  ),
  def('COMMAND_NOT_FOUND', 404, 'No command has this id.'),
  def(
    'IDEMPOTENCY_CONFLICT',
    409,
    'The idempotency key was used for this device within 24 h by a request that differs from this one.',
  ),
  def(
    'COMMAND_UNKNOWN',
    400,
    "The device's model has a command catalogue that does not list this command (and does not allow unlisted ones).",
  ),
  def('COMMAND_ARGS_INVALID', 400, "The arguments do not fit the command's entry in the model's command catalogue."),
  def('MODEL_NOT_FOUND', 404, 'No command catalogue is set for this device model.'),
  def('COMMAND_NOT_CANCELLABLE', 409, 'Only a queued command (not yet sent to the device) can be cancelled.'),
  def('COMMAND_QUEUE_FULL', 429, 'The device already has 1000 unfinished commands; wait for some to finish or expire.'),
  def('SUBSCRIPTION_NOT_FOUND', 404, 'Live channel: no active subscription of this connection has this id.'),
  def('SUBSCRIPTION_EXISTS', 409, 'Live channel: a subscription of this connection already has this id.'),
  def('TOO_MANY_SUBSCRIPTIONS', 400, 'Live channel: the connection already has as many subscriptions as allowed.'),
  def('TOO_MANY_DEVICES', 400, 'Live channel: a subscription would name more devices than allowed.'),
  def('RATE_LIMITED', 429, 'Too many requests from this client; retry after the time the message gives.'),
  def(
    'CONTROL_QUEUE_FULL',
    429,
    'Live channel close reason: answers to the client piled up unread past the control queue cap.',
  ),
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

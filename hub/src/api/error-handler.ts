/** Turns every error thrown by a route into the hub's JSON error body (docs/api.md). */
import type { FastifyError, FastifyInstance } from 'fastify';
import { errorBody, HubHttpError } from '../errors.js';

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** "body/labels/room must be string" or `body has an unknown field "colour"`. */
export function describeValidation(context: string, issues: readonly ValidationIssue[]): string {
  const first = issues[0];
  if (!first) return `${context} is not valid`;
  const where = `${context}${first.instancePath}`;
  if (first.keyword === 'additionalProperties') {
    return `${where} has an unknown field "${String(first.params.additionalProperty)}"; remove it (see docs/api.md for the accepted fields).`;
  }
  if (first.keyword === 'pattern' && first.instancePath.endsWith('/id')) {
    return `${where} must be 1-64 characters of A-Z a-z 0-9 . _ : - and not dots only ("." and ".." cannot be addressed in a URL path).`;
  }
  if (first.keyword === 'required') {
    return `${where} is missing the required field "${String(first.params.missingProperty)}".`;
  }
  return `${where} ${first.message ?? 'is not valid'}.`;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    if (err instanceof HubHttpError) return reply.code(err.statusCode).send(errorBody(err.code, err.message));
    if (err.validation) {
      const context = err.validationContext ?? 'request';
      return reply
        .code(400)
        .send(errorBody('INVALID_REQUEST', describeValidation(context, err.validation as ValidationIssue[])));
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply
          .code(413)
          .send(
            errorBody(
              'PAYLOAD_TOO_LARGE',
              `The request body exceeds the limit of ${request.routeOptions.bodyLimit ?? 'the hub'} bytes.`,
            ),
          );
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply
          .code(415)
          .send(errorBody('UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with `Content-Type: application/json`.'));
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(400).send(errorBody('INVALID_REQUEST', `The request is not valid: ${err.message}`));
    }
    request.log.error({ err }, 'request failed');
    return reply
      .code(500)
      .send(errorBody('INTERNAL_ERROR', 'The hub failed while handling this request; the hub log has the details.'));
  });
}

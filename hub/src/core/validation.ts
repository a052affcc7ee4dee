/**
 * Schema validation of HTTP requests. Bodies are validated strictly: `{"id": 123}` is refused where a string
 * is documented, never coerced to "123" (docs/api.md). Query strings and path parameters arrive as text and
 * are coerced to the schema's types, as fastify does by default.
 */
import { Ajv, type Options } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

const common: Options = {
  useDefaults: true,
  // Unknown fields are an error the client should hear about, not something to drop silently.
  removeAdditional: false,
  // allErrors lets a crafted body make validation do far more work: the first error is enough.
  allErrors: false,
  addUsedSchema: false,
  strict: false,
};

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = new Ajv({ ...common, coerceTypes: false });
  const coercing = new Ajv({ ...common, coerceTypes: 'array' });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}

/** Every HTTP error code of the hub is documented in docs/api.md with its status. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HTTP_ERRORS, HubHttpError } from '../src/errors.js';

const apiDoc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');

describe('HTTP error registry', () => {
  it.each(HTTP_ERRORS.map((e) => [e.code, e] as const))(
    '%s is documented in docs/api.md with its status',
    (code, info) => {
      const row = apiDoc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      expect(row, `docs/api.md has no table row for ${code}`).toBeDefined();
      expect(row!.split('|')[2]!.trim()).toBe(String(info.status));
    },
  );

  it('has unique codes, each with a one-line meaning', () => {
    const codes = HTTP_ERRORS.map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const e of HTTP_ERRORS) expect(e.meaning).toMatch(/^\S.*\.$/);
  });

  it('gives a thrown HubHttpError the status of its code', () => {
    expect(new HubHttpError('DEVICE_NOT_FOUND', 'x').statusCode).toBe(404);
  });
});

/**
 * The error-code registry (device-sdk/src/codec/errors.ts), the meanings kept beside it
 * (error-meanings.ts) and their documentation (docs/protocol.md §10, §11) must agree: a code that is not
 * documented, or documented differently, fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  codeOfWire,
  errorInfo,
  FrameError,
  PROTOCOL_ERROR_MEANINGS,
  PROTOCOL_ERRORS,
  wireCodeOf,
} from '@tendril/device-sdk/codec';

const protocolDoc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

/** The lines of one top-level section ("## §11 ..."), up to the next one. */
function section(number: number): string[] {
  const lines = protocolDoc.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`## §${number} `));
  expect(start, `docs/protocol.md has a section "## §${number} "`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start, end < 0 ? undefined : end);
}

/** Table rows of a section as arrays of trimmed cells, header and separator rows left out. */
function tableRows(lines: string[]): string[][] {
  return lines
    .filter((l) => l.startsWith('|') && !/^\|[-| ]+\|$/.test(l))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    )
    .slice(1);
}

interface DocumentedCode {
  wire: number;
  close: number | null;
  meaning: string;
}

const documented = new Map<string, DocumentedCode>();
for (const [code, wire, close, meaning] of tableRows(section(11))) {
  const name = /^`([A-Z0-9_]+)`$/.exec(code ?? '')?.[1];
  if (!name) continue;
  documented.set(name, { wire: Number(wire), close: close === '—' ? null : Number(close), meaning: meaning ?? '' });
}

describe('§11 registry table in docs/protocol.md', () => {
  test('the table parses and is not empty', () => {
    expect(documented.size).toBeGreaterThan(20);
  });

  test.each(PROTOCOL_ERRORS.map((e) => [e.code, e] as const))(
    '%s is documented with the same wire code, close code and meaning',
    (code, e) => {
      const row = documented.get(code);
      expect(row, `docs/protocol.md §11 has no row for ${code}`).toBeDefined();
      expect(row!.wire, `wire code of ${code}`).toBe(e.wire);
      expect(row!.close, `close code of ${code}`).toBe(e.close);
      expect(PROTOCOL_ERROR_MEANINGS[code].length, `meaning of ${code} in error-meanings.ts`).toBeGreaterThan(10);
      expect(row!.meaning, `meaning of ${code}`).toBe(PROTOCOL_ERROR_MEANINGS[code]);
    },
  );

  test('error-meanings.ts explains exactly the registry codes', () => {
    expect(Object.keys(PROTOCOL_ERROR_MEANINGS).sort()).toEqual(PROTOCOL_ERRORS.map((e) => e.code).sort());
  });

  test('the table documents no code that the registry lacks', () => {
    const registered = new Set<string>(PROTOCOL_ERRORS.map((e) => e.code));
    expect([...documented.keys()].filter((c) => !registered.has(c))).toEqual([]);
  });
});

describe('§10 close-code table agrees with the registry', () => {
  const rows = tableRows(section(10));

  test('every string code named in the "used for" column closes with that row\'s code', () => {
    let named = 0;
    for (const [close, , usedFor] of rows) {
      const closeCode = Number(close);
      for (const m of (usedFor ?? '').matchAll(/`([A-Z0-9_]+)`/g)) {
        const info = errorInfo(m[1]!);
        expect(info, `§10 names ${m[1]}, which the registry lacks`).toBeDefined();
        if (m[1] === 'HEARTBEAT_LOST') {
          expect(info!.close, 'HEARTBEAT_LOST sends no close frame').toBeNull();
        } else {
          expect(info!.close, `close code of ${m[1]}`).toBe(closeCode);
        }
        named++;
      }
    }
    expect(named).toBeGreaterThan(8);
  });

  test('every code that closes the connection is named in the row of its close code', () => {
    for (const e of PROTOCOL_ERRORS) {
      if (e.close === null) continue;
      const row = rows.find((r) => Number(r[0]) === e.close);
      expect(row, `§10 has a row for close code ${e.close}`).toBeDefined();
      expect(row![2], `§10 row ${e.close} names ${e.code}`).toContain(`\`${e.code}\``);
    }
  });
});

describe('registry invariants', () => {
  test('string codes and wire codes are unique', () => {
    const codes = PROTOCOL_ERRORS.map((e) => e.code);
    const wires = PROTOCOL_ERRORS.map((e) => e.wire);
    expect(new Set(codes).size).toBe(codes.length);
    expect(new Set(wires).size).toBe(wires.length);
  });

  test('codes are SCREAMING_SNAKE_CASE, fit a close reason (123 bytes) and never look like UNKNOWN_<n>', () => {
    for (const e of PROTOCOL_ERRORS) {
      expect(e.code).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(e.code).not.toMatch(/^UNKNOWN_\d+$/);
      expect(Buffer.byteLength(e.code)).toBeLessThanOrEqual(123);
      expect(Number.isInteger(e.wire) && e.wire >= 1).toBe(true);
    }
  });

  test('close codes are the RFC 6455 codes §10 lists', () => {
    for (const e of PROTOCOL_ERRORS) expect([null, 1001, 1002, 1003, 1008, 1009, 1011, 1013]).toContain(e.close);
  });

  test('wire codes map to string codes and back; unknown wire codes become UNKNOWN_<n>', () => {
    for (const e of PROTOCOL_ERRORS) {
      expect(codeOfWire(e.wire)).toBe(e.code);
      expect(wireCodeOf(e.code)).toBe(e.wire);
    }
    expect(codeOfWire(99)).toBe('UNKNOWN_99');
    expect(wireCodeOf('UNKNOWN_99')).toBe(99);
    expect(() => wireCodeOf('NOT_A_CODE')).toThrow(RangeError);
  });

  test('§9.1: only FRAME_TRUNCATED is the incomplete kind', () => {
    for (const e of PROTOCOL_ERRORS) {
      expect(new FrameError(e.code, 'x').incomplete, e.code).toBe(e.code === 'FRAME_TRUNCATED');
    }
  });
});

import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY, paramsToQuery, queryToParams, selectRows, type RowLike } from '../src/lib/fleet-view.js';

const row = (id: string, patch: Partial<RowLike> = {}): RowLike => ({
  id,
  name: id,
  model: 'env-sensor',
  labels: {},
  presence: { state: 'online', reason: null, since: 0 },
  transport: 'ws',
  rejected: 0,
  dropped: 0,
  ...patch,
});

describe('selectRows', () => {
  const rows = [
    row('b-2', { name: 'Boiler 2', labels: { room: 'cellar' }, rejected: 5 }),
    row('a-1', {
      name: 'Attic sensor',
      model: 'power-meter',
      presence: { state: 'offline', reason: 'CLOSED', since: 50 },
    }),
    row('c-3', {
      name: 'Cellar door',
      labels: { room: 'cellar', floor: '-1' },
      presence: { state: 'never', reason: null, since: 0 },
    }),
  ];

  it('searches id, name, model and labels with every word', () => {
    expect(selectRows(rows, { ...DEFAULT_QUERY, text: 'cellar' }).map((r) => r.id)).toEqual(['b-2', 'c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, text: 'cellar door' }).map((r) => r.id)).toEqual(['c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, text: 'POWER' }).map((r) => r.id)).toEqual(['a-1']);
  });

  it('filters by presence, model and label (key or key=value)', () => {
    expect(selectRows(rows, { ...DEFAULT_QUERY, presence: 'offline' }).map((r) => r.id)).toEqual(['a-1']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, model: 'env-sensor' }).map((r) => r.id)).toEqual(['b-2', 'c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, label: 'floor' }).map((r) => r.id)).toEqual(['c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, label: 'room=cellar' }).map((r) => r.id)).toEqual(['b-2', 'c-3']);
  });

  it('sorts by id, name, presence (offline first), counters, and reversed', () => {
    expect(selectRows(rows, DEFAULT_QUERY).map((r) => r.id)).toEqual(['a-1', 'b-2', 'c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, sort: 'name' }).map((r) => r.id)).toEqual(['a-1', 'b-2', 'c-3']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, sort: 'presence' }).map((r) => r.id)).toEqual(['a-1', 'c-3', 'b-2']);
    expect(selectRows(rows, { ...DEFAULT_QUERY, sort: 'rejected' })[0]!.id).toBe('b-2');
    expect(selectRows(rows, { ...DEFAULT_QUERY, descending: true }).map((r) => r.id)).toEqual(['c-3', 'b-2', 'a-1']);
  });

  it('round-trips the query through URL parameters, refusing unknown values', () => {
    const q = {
      text: 'cellar',
      presence: 'offline' as const,
      model: 'env-sensor',
      label: 'room=lab',
      sort: 'dropped' as const,
      descending: true,
    };
    expect(paramsToQuery(queryToParams(q))).toEqual(q);
    expect(queryToParams(DEFAULT_QUERY).toString()).toBe('');
    expect(paramsToQuery(new URLSearchParams('presence=bogus&sort=evil'))).toEqual(DEFAULT_QUERY);
  });
});

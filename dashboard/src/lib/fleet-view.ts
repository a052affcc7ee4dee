/** Search, filters and sort of the fleet list: pure functions over rows (unit-tested in plain TS). */
import type { LatestValue, MetricDeclaration, Presence } from './types.js';

export interface RowLike {
  readonly id: string;
  readonly name: string;
  readonly model: string;
  readonly labels: Record<string, string>;
  readonly presence: Presence;
  readonly transport: string | null;
  readonly rejected: number;
  readonly dropped: number;
  readonly metrics?: MetricDeclaration[];
  readonly latest?: Record<string, LatestValue>;
}

export type PresenceFilter = 'all' | 'online' | 'offline' | 'never';
export type SortKey = 'id' | 'name' | 'model' | 'presence' | 'since' | 'rejected' | 'dropped';

export interface FleetQuery {
  text: string;
  presence: PresenceFilter;
  model: string;
  /** "key" or "key=value"; empty for any. */
  label: string;
  sort: SortKey;
  descending: boolean;
}

export const DEFAULT_QUERY: FleetQuery = {
  text: '',
  presence: 'all',
  model: '',
  label: '',
  sort: 'id',
  descending: false,
};

const PRESENCE_ORDER: Record<string, number> = { offline: 0, never: 1, online: 2 };

function matchesText(row: RowLike, words: string[]): boolean {
  if (words.length === 0) return true;
  let hay = `${row.id} ${row.name} ${row.model} ${row.transport ?? ''}`;
  for (const k in row.labels) hay += ` ${k}=${row.labels[k]}`;
  hay = hay.toLowerCase();
  return words.every((w) => hay.includes(w));
}

function matchesLabel(row: RowLike, label: string): boolean {
  if (!label) return true;
  const eq = label.indexOf('=');
  if (eq < 0) return Object.hasOwn(row.labels, label);
  return row.labels[label.slice(0, eq)] === label.slice(eq + 1);
}

function compare(a: RowLike, b: RowLike, key: SortKey): number {
  switch (key) {
    case 'id':
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    case 'name':
      return a.name.localeCompare(b.name, undefined, { numeric: true }) || compare(a, b, 'id');
    case 'model':
      return a.model.localeCompare(b.model) || compare(a, b, 'id');
    case 'presence':
      return (
        (PRESENCE_ORDER[a.presence.state] ?? 3) - (PRESENCE_ORDER[b.presence.state] ?? 3) || compare(a, b, 'since')
      );
    case 'since':
      return (b.presence.since ?? 0) - (a.presence.since ?? 0) || compare(a, b, 'id');
    case 'rejected':
      return b.rejected - a.rejected || compare(a, b, 'id');
    case 'dropped':
      return b.dropped - a.dropped || compare(a, b, 'id');
  }
}

/** The rows to show, in order. */
export function selectRows<T extends RowLike>(rows: readonly T[], q: FleetQuery): T[] {
  const words = q.text.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const out: T[] = [];
  for (const row of rows) {
    if (q.presence !== 'all' && row.presence.state !== q.presence) continue;
    if (q.model && row.model !== q.model) continue;
    if (!matchesLabel(row, q.label)) continue;
    if (!matchesText(row, words)) continue;
    out.push(row);
  }
  out.sort((a, b) => compare(a, b, q.sort));
  if (q.descending) out.reverse();
  return out;
}

/** Every model and every label (key=value) of the fleet, sorted, for the filter menus. */
export function facets(rows: readonly RowLike[]): { models: string[]; labels: string[] } {
  const models = new Set<string>();
  // Values per key: no `key=value` string is built per row (10 000 rows share a handful of labels).
  const byKey = new Map<string, Set<string>>();
  for (const r of rows) {
    if (r.model) models.add(r.model);
    for (const k in r.labels) {
      let values = byKey.get(k);
      if (!values) byKey.set(k, (values = new Set()));
      values.add(r.labels[k]!);
    }
  }
  const labels: string[] = [];
  for (const [k, values] of byKey) for (const v of values) labels.push(`${k}=${v}`);
  return { models: [...models].sort(), labels: labels.sort() };
}

/** The query as URL parameters (deep links keep the filters), defaults left out. */
export function queryToParams(q: FleetQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.text) p.set('q', q.text);
  if (q.presence !== 'all') p.set('presence', q.presence);
  if (q.model) p.set('model', q.model);
  if (q.label) p.set('label', q.label);
  if (q.sort !== 'id') p.set('sort', q.sort);
  if (q.descending) p.set('desc', '1');
  return p;
}

const SORTS: readonly SortKey[] = ['id', 'name', 'model', 'presence', 'since', 'rejected', 'dropped'];
const PRESENCES: readonly PresenceFilter[] = ['all', 'online', 'offline', 'never'];

export function paramsToQuery(p: URLSearchParams): FleetQuery {
  const sort = p.get('sort') as SortKey | null;
  const presence = p.get('presence') as PresenceFilter | null;
  return {
    text: p.get('q') ?? '',
    presence: presence && PRESENCES.includes(presence) ? presence : 'all',
    model: p.get('model') ?? '',
    label: p.get('label') ?? '',
    sort: sort && SORTS.includes(sort) ? sort : 'id',
    descending: p.get('desc') === '1',
  };
}

/** What the InfluxDB store reads in InfluxDB's refusals, and the kinds of write error it counts. */
import type { InfluxWriteErrorKind } from './influx-errors.js';
import type { InfluxFieldType } from './influx-schema.js';

export const WRITE_ERROR_KINDS: readonly InfluxWriteErrorKind[] = [
  'unreachable',
  'timeout',
  'throttled',
  'server',
  'auth',
  'not_found',
  'rejected',
  'type_conflict',
];

/** A field type conflict: the field, the type sent, the type InfluxDB holds. */
export const CONFLICT_PATTERN =
  /input field "([^"]*)" on measurement "[^"]*" is type (\w+), already exists as type (\w+)/;
/** Points InfluxDB dropped (outside the retention policy). */
export const DROPPED_PATTERN = /dropped=(\d+)/;

export function isFieldType(s: string | undefined): s is InfluxFieldType {
  return s === 'float' || s === 'integer' || s === 'boolean' || s === 'string';
}

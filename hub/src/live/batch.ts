/**
 * Events of one subscription that are ready in the same outbox flush go out as one `events` message
 * (docs/live.md §3.6): a browser then receives a few messages per frame instead of one per event. Each event's
 * element (`{"offset":N,"event":BODY}`) is encoded to UTF-8 once for every client that sends it with the same
 * offset; a client's message is those bytes copied behind a short header, made once for every client whose batch
 * holds the same elements under the same subscription id.
 */
import type { LiveEvent } from './stream-log.js';

/** A subscription's events waiting for the end of the current turn of the event loop. */
export interface ReadyBatch {
  /** Each event's element, UTF-8. */
  items: Buffer[];
  /** The message's size in bytes as it stands (header, elements, commas, tail). */
  bytes: number;
}

const TAIL = Buffer.from(']}');
const COMMA = 0x2c;

/** The element of one event for a batch: `{"offset":N,"event":BODY}`, shared by every client (§3.6.2). */
export function batchItem(ev: LiveEvent | null, offset: number, body: string): Buffer {
  if (ev === null || body !== ev.body) return Buffer.from(`{"offset":${offset},"event":${body}}`);
  const cached = ev.item;
  if (cached !== undefined && cached.offset === offset) return cached.data;
  const data = Buffer.from(`{"offset":${offset},"event":${body}}`);
  ev.item = { offset, data };
  return data;
}

function batchHead(id: number): string {
  return `{"type":"events","id":${id},"events":[`;
}

/** An empty batch of the subscription: its size is the message's header and tail. */
export function emptyBatch(id: number): ReadyBatch {
  // The header is ASCII: its length in bytes is its length in characters.
  return { items: [], bytes: HEAD_BYTES + String(id).length + TAIL.length };
}

/** `{"type":"events","id":,"events":[` without the id's digits. */
const HEAD_BYTES = batchHead(0).length - 1;

/** The message's size once `item` is added. */
export function bytesWith(batch: ReadyBatch, item: Buffer): number {
  return batch.bytes + item.length + (batch.items.length > 0 ? 1 : 0);
}

export function addItem(batch: ReadyBatch, item: Buffer): void {
  batch.bytes = bytesWith(batch, item);
  batch.items.push(item);
}

/**
 * The message for a batch: one event alone is the ordinary `event` message (§3.5), the same bytes with
 * `"type":"event","id":I,` in front; two or more are an `events` message (§3.6).
 */
export function batchMessage(id: number, batch: ReadyBatch): Buffer {
  const { items } = batch;
  // Clients with the same subscription id and the same elements (the same events at the same offsets) get the
  // same bytes: the message is made once for all of them (the elements are shared, so comparing them is cheap).
  if (last !== null && last.id === id && sameItems(last.items, items)) return last.data;
  const data = makeMessage(id, batch);
  last = { id, items, data };
  return data;
}

/** The last message made, with what it was made of. */
let last: { id: number; items: readonly Buffer[]; data: Buffer } | null = null;

function sameItems(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function makeMessage(id: number, batch: ReadyBatch): Buffer {
  const { items } = batch;
  if (items.length === 1) {
    // {"offset":N,"event":BODY} -> {"type":"event","id":I,"offset":N,"event":BODY}
    const head = Buffer.from(`{"type":"event","id":${id},`);
    const item = items[0]!;
    const out = Buffer.allocUnsafe(head.length + item.length - 1);
    head.copy(out, 0);
    item.copy(out, head.length, 1);
    return out;
  }
  const out = Buffer.allocUnsafe(batch.bytes);
  let at = out.write(batchHead(id), 0);
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out[at++] = COMMA;
    at += items[i]!.copy(out, at);
  }
  TAIL.copy(out, at);
  return out;
}

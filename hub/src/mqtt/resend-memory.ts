/**
 * Seqs the bridge gave to messages it numbers itself (docs/mqtt.md §6), kept until each message's PUBACK is
 * written: the broker resends an unacknowledged message after a cut with the same packet id and DUP set, and
 * the resend gets the same seqs, so the ingest session finds them durable instead of storing them twice.
 * Bounded; a hub crash forgets it (at-least-once across a crash).
 */
import type { InboundMessage } from './broker-link.js';

/** Remembered messages at most (the oldest go first). */
const MAX_REMEMBERED = 65_536;

interface Remembered {
  topic: string;
  payload: Buffer;
  seqs: readonly number[];
}

export class ResendMemory {
  private readonly byPacketId = new Map<number, Remembered>();

  /** The seqs `m` got the first time, if it is the broker resending it (same id, topic and bytes). */
  seqsOf(m: InboundMessage, n: number): readonly number[] | null {
    if (m.qos !== 1 || !m.dup) return null;
    const r = this.byPacketId.get(m.messageId);
    if (r === undefined || r.topic !== m.topic || !r.payload.equals(m.payload) || r.seqs.length !== n) return null;
    return r.seqs;
  }

  /** Remembers `m`'s seqs; returns the message's complete(), which forgets them once the PUBACK is written. */
  remember(m: InboundMessage, seqs: readonly number[]): () => void {
    const entry: Remembered = { topic: m.topic, payload: m.payload, seqs };
    this.byPacketId.delete(m.messageId);
    this.byPacketId.set(m.messageId, entry);
    if (this.byPacketId.size > MAX_REMEMBERED) this.byPacketId.delete(this.byPacketId.keys().next().value!);
    return () =>
      m.complete(() => {
        if (this.byPacketId.get(m.messageId) === entry) this.byPacketId.delete(m.messageId);
      });
  }
}

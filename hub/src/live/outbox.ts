/**
 * One client's outbox (docs/live.md §7): answers and control events in a bounded lossless queue, data
 * coalesced per subscription, snapshots part by part, all written only while the socket's buffered amount is
 * under the high-water mark; past a cap a subscription resyncs instead of growing (§7.4.2). Events of a
 * subscription that are ready in the same turn of the event loop go out together as one `events` message
 * (§3.6); anything else written to the socket sends them first, so the order of the stream is kept exactly.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
import { addItem, batchItem, batchMessage, bytesWith, emptyBatch, type ReadyBatch } from './batch.js';
import { eventMessage, type LiveLimits } from './protocol.js';
import type { LiveEvent } from './stream-log.js';
import type { Subscription } from './subscription.js';

/** What the outbox needs from the live hub. */
export interface OutboxHost {
  readonly limits: LiveLimits;
  readonly clock: Clock;
  readonly timers: Timers;
  /** The next part of the subscription's snapshot as its event body; advances the cursor (§5.4.2). */
  renderSnapshotPart(sub: Subscription): string;
  /** Takes a fresh snapshot cursor for a subscription marked for resync (§7.4.2); returns its offset. */
  restartSnapshot(sub: Subscription): number;
}

interface ControlItem {
  text: string;
  bytes: number;
  /** null: an answer to a request. */
  sub: Subscription | null;
}

/** ws sends a Buffer as a binary message unless told otherwise; every message here is text (§1.2.1). */
const TEXT = { binary: false } as const;
/** When no 'drain' comes (the socket's own buffer is empty but bufferedAmount is not), look again after this. */
const DRAIN_POLL_MS = 50;

export class Outbox {
  private control: Array<ControlItem | undefined> = [];
  private controlHead = 0;
  /** Bytes of queued control items and of control events held behind snapshots. */
  controlBytes = 0;
  /** Bytes of queued answers (a part of controlBytes): alone past the cap, they close the connection (§7.4.3). */
  private answerBytes = 0;
  private drainTimer: TimerHandle | null = null;
  private waitingDrain = false;
  private flushing = false;
  private closed = false;
  /** §3.6: per subscription, events ready to go out as one message at the end of this turn. */
  private readonly ready = new Map<Subscription, ReadyBatch>();
  /** Bytes of those messages in all (each at most limits.batchBytes, all of them too). */
  private readyBytes = 0;
  private readyTimer: NodeJS.Immediate | null = null;
  /** Counters for tests and metrics: messages written, of them `events` messages, and the events they held. */
  readonly stats = { messagesSent: 0, batches: 0, batchedEvents: 0, coalesced: 0, resyncs: 0, maxAccountedBytes: 0 };

  constructor(
    private readonly socket: WebSocket,
    private readonly host: OutboxHost,
    private readonly subs: Map<number, Subscription>,
    /** §7.4.3: answers alone passed the cap. */
    private readonly onControlQueueFull: () => void,
  ) {}

  /** What the hub holds for this client now (§7.3): queues, outbox, batches and the socket's buffered bytes. */
  accountedBytes(): number {
    let data = 0;
    for (const sub of this.subs.values()) data += sub.pendingBytes;
    return this.controlBytes + data + this.readyBytes + this.socket.bufferedAmount;
  }

  dataBytes(): number {
    let data = 0;
    for (const sub of this.subs.values()) data += sub.pendingBytes;
    return data;
  }

  /** An answer (§3.2, §3.3); lossless, in order, ahead of data. */
  answer(text: string): void {
    if (this.closed) return;
    const bytes = text.length;
    const cap = this.host.limits.controlQueueBytes;
    if (this.answerBytes + bytes > cap) {
      // §7.4.3: the client sends requests and does not read the answers.
      this.onControlQueueFull();
      return;
    }
    // Room for answers first: subscription events queued beside them are dropped for a resync (§7.4.2).
    if (this.controlBytes + bytes > cap) for (const sub of this.subs.values()) this.resync(sub);
    this.control.push({ text, bytes, sub: null });
    this.controlBytes += bytes;
    this.answerBytes += bytes;
    this.flush();
  }

  /** Hands an event of the subscription's stream to this client (the fan-out calls this for each match). */
  deliver(sub: Subscription, ev: LiveEvent): void {
    if (sub.closed || sub.resync || this.closed) return;
    if (ev.control) {
      this.controlEvent(sub, ev);
      return;
    }
    const body = sub.bodyFor(ev);
    if (body === null) return;
    // The clock is read only for a subscription with a maximum rate (§6.3): most have none.
    const now = sub.minIntervalMs === null ? 0 : this.host.clock.now();
    if (
      sub.snapshot === null &&
      !sub.hasPending &&
      this.controlHead === this.control.length &&
      this.writable() &&
      (sub.minIntervalMs === null || now >= sub.nextDataAt)
    ) {
      // The fast path: the body serialised once for every client, its batch element encoded once for every
      // client with the same offset; it goes out with the subscription's other events of this turn (§3.6).
      this.queueReady(sub, sub.offsetFor(ev.offset), body, ev);
      if (sub.minIntervalMs !== null) sub.nextDataAt = now + sub.minIntervalMs;
      return;
    }
    sub.addPending(ev);
    this.stats.coalesced++;
    if (this.dataBytes() > this.host.limits.dataOutboxBytes) {
      // §7.4.2: never disconnected for data; the subscription starts over from a snapshot.
      this.resync(sub);
    }
    this.noteAccounted();
    this.flush();
  }

  /** A control event of a subscription (presence, registry change): lossless unless the cap forces a resync. */
  private controlEvent(sub: Subscription, ev: LiveEvent): void {
    const offset = sub.offsetFor(ev.offset);
    if (sub.snapshot === null && this.controlHead === this.control.length && this.writable()) {
      // Nothing waits ahead of it: it joins this turn's batch, in the order it happened (§3.6.3).
      this.queueReady(sub, offset, ev.body, ev);
      return;
    }
    const text = eventMessage(sub.id, offset, ev.body);
    const bytes = text.length;
    if (this.controlBytes + bytes > this.host.limits.controlQueueBytes) {
      this.resync(sub);
      return;
    }
    this.controlBytes += bytes;
    // §5.4: events after the snapshot's offset wait until its last part is out.
    if (sub.snapshot) {
      sub.held.push({ text, bytes });
      sub.heldBytes += bytes;
    } else {
      this.control.push({ text, bytes, sub });
    }
    this.noteAccounted();
    this.flush();
  }

  /** Queues the subscription's snapshot (the cursor is set by the hub) and starts sending it. */
  startSnapshot(): void {
    this.flush();
  }

  /** §7.4.2: drops what is queued for the subscription; a resync event and a snapshot follow once it drains. */
  resync(sub: Subscription): void {
    if (sub.resync) return;
    this.stats.resyncs++;
    this.controlBytes -= sub.heldBytes;
    sub.dropQueued();
    sub.snapshot = null;
    let kept = 0;
    const next: ControlItem[] = [];
    for (let i = this.controlHead; i < this.control.length; i++) {
      const item = this.control[i]!;
      if (item.sub === sub) this.controlBytes -= item.bytes;
      else next[kept++] = item;
    }
    this.control = next;
    this.controlHead = 0;
    sub.resync = true;
    if (sub.timer) {
      this.host.timers.clearTimeout(sub.timer);
      sub.timer = null;
    }
  }

  /** Removes a subscription: nothing of it is sent after this (§4.4). */
  dropSubscription(sub: Subscription): void {
    const batch = this.ready.get(sub);
    if (batch) {
      this.ready.delete(sub);
      this.readyBytes -= batch.bytes;
    }
    this.controlBytes -= sub.heldBytes;
    sub.dropQueued();
    sub.closed = true;
    sub.snapshot = null;
    if (sub.timer) this.host.timers.clearTimeout(sub.timer);
    sub.timer = null;
    const next: ControlItem[] = [];
    for (let i = this.controlHead; i < this.control.length; i++) {
      const item = this.control[i]!;
      if (item.sub === sub) this.controlBytes -= item.bytes;
      else next.push(item);
    }
    this.control = next;
    this.controlHead = 0;
    this.subs.delete(sub.id);
  }

  /** Writes while the socket takes it: answers and control first, then snapshots, resyncs and data (§7). */
  flush(): void {
    if (this.flushing || this.closed) return;
    this.flushing = true;
    try {
      let progressed = true;
      while (progressed && this.writable()) {
        progressed = false;
        if (this.controlHead < this.control.length) {
          this.sendControl();
          progressed = true;
          continue;
        }
        const now = this.host.clock.now();
        for (const sub of this.subs.values()) {
          if (!this.writable()) break;
          if (this.controlHead < this.control.length) break;
          if (sub.snapshot) {
            this.sendSnapshotPart(sub);
            progressed = true;
          } else if (sub.resync) {
            sub.resync = false;
            this.host.restartSnapshot(sub);
            // The offset the client really has: what was dropped never reached it; the snapshot's parts carry theirs.
            this.sendNow(eventMessage(sub.id, sub.watermark, '{"kind":"resync"}'));
            progressed = true;
          } else if (sub.hasPending) {
            if (sub.minIntervalMs !== null && now < sub.nextDataAt) {
              this.armThrottle(sub, now);
              continue;
            }
            this.sendPending(sub, now);
            progressed = true;
          }
        }
      }
      if (!this.writable() && this.hasQueued()) this.waitDrain();
    } finally {
      this.flushing = false;
    }
  }

  private hasQueued(): boolean {
    if (this.controlHead < this.control.length) return true;
    for (const sub of this.subs.values()) if (sub.snapshot || sub.resync || sub.hasPending) return true;
    return false;
  }

  private sendControl(): void {
    const item = this.control[this.controlHead]!;
    this.control[this.controlHead++] = undefined;
    if (this.controlHead === this.control.length) {
      this.control = [];
      this.controlHead = 0;
    } else if (this.controlHead > 1024 && this.controlHead * 2 > this.control.length) {
      this.control = this.control.slice(this.controlHead);
      this.controlHead = 0;
    }
    this.controlBytes -= item.bytes;
    if (item.sub === null) this.answerBytes -= item.bytes;
    this.sendNow(item.text);
  }

  private sendSnapshotPart(sub: Subscription): void {
    const cursor = sub.snapshot!;
    const body = this.host.renderSnapshotPart(sub);
    this.sendNow(eventMessage(sub.id, cursor.offset, body));
    if (sub.snapshot === null) {
      // The last part is out: the control events held behind it go next, in order.
      for (const h of sub.held) this.control.push({ text: h.text, bytes: h.bytes, sub });
      sub.held = [];
      sub.heldBytes = 0;
    }
  }

  private sendPending(sub: Subscription, now: number): void {
    if (sub.minIntervalMs === null) {
      const m = sub.takeOldest()!;
      this.queueReady(sub, m.offset, m.body, null);
      return;
    }
    // §6.3: one tick sends the latest value of every series that changed.
    while (sub.hasPending && this.writable()) {
      const m = sub.takeOldest()!;
      this.queueReady(sub, m.offset, m.body, null);
    }
    sub.nextDataAt = now + sub.minIntervalMs;
  }

  private armThrottle(sub: Subscription, now: number): void {
    if (sub.timer) return;
    sub.timer = this.host.timers.setTimeout(
      () => {
        sub.timer = null;
        this.flush();
      },
      Math.max(0, sub.nextDataAt - now),
    );
  }

  private writable(): boolean {
    return (
      !this.closed &&
      this.socket.readyState === this.socket.OPEN &&
      this.socket.bufferedAmount < this.host.limits.highWaterBytes
    );
  }

  private waitDrain(): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    const raw = (this.socket as unknown as { _socket?: Socket })._socket;
    const onDrain = (): void => {
      if (!this.waitingDrain) return;
      this.waitingDrain = false;
      raw?.off('drain', onDrain);
      if (this.drainTimer) this.host.timers.clearTimeout(this.drainTimer);
      this.drainTimer = null;
      this.flush();
    };
    raw?.once('drain', onDrain);
    // ws may hold bytes of its own beyond the TCP socket's buffer: look again now and then.
    this.drainTimer = this.host.timers.setTimeout(onDrain, DRAIN_POLL_MS);
  }

  /** Writes a message that is not part of a batch; this turn's batches go first, so the order is kept. */
  sendNow(text: string | Buffer): void {
    if (this.readyBytes > 0) this.sendReady();
    this.write(text);
  }

  private write(data: string | Buffer): void {
    this.stats.messagesSent++;
    this.socket.send(data, TEXT);
    // With nothing queued, what this client holds is the socket's buffer: under high water plus this message.
    if (this.controlBytes > 0 || this.waitingDrain) this.noteAccounted();
  }

  /**
   * §3.6: an event of the subscription, with the offset it carries, joins the subscription's batch of this
   * turn. When the batches would pass `batchBytes` in all, they are written first; an event bigger than that
   * alone goes out as its own `event` message.
   */
  private queueReady(sub: Subscription, offset: number, body: string, ev: LiveEvent | null): void {
    const item = batchItem(ev, offset, body);
    let batch = this.ready.get(sub);
    let fresh = batch === undefined;
    batch ??= emptyBatch(sub.id);
    const before = fresh ? 0 : batch.bytes;
    if (this.readyBytes - before + bytesWith(batch, item) > this.host.limits.batchBytes && this.readyBytes > 0) {
      this.sendReady();
      if (!fresh) batch = emptyBatch(sub.id);
      fresh = true;
    }
    if (fresh) {
      this.ready.set(sub, batch);
      this.readyBytes += batch.bytes;
    }
    this.readyBytes -= batch.bytes;
    addItem(batch, item);
    this.readyBytes += batch.bytes;
    this.readyTimer ??= setImmediate(this.endOfTurn);
  }

  /** The end of the turn in which events became ready: they go out, then whatever the outbox holds. */
  private readonly endOfTurn = (): void => {
    this.readyTimer = null;
    this.sendReady();
    this.flush();
  };

  /** Writes every batch, oldest subscription batch first. */
  private sendReady(): void {
    if (this.ready.size === 0) return;
    const batches = [...this.ready];
    this.ready.clear();
    this.readyBytes = 0;
    for (const [sub, batch] of batches) {
      if (batch.items.length > 1) {
        this.stats.batches++;
        this.stats.batchedEvents += batch.items.length;
      }
      this.write(batchMessage(sub.id, batch));
    }
  }

  private noteAccounted(): void {
    const b = this.accountedBytes();
    if (b > this.stats.maxAccountedBytes) this.stats.maxAccountedBytes = b;
  }

  /** The connection ended: timers stop, subscriptions and queues are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.drainTimer) this.host.timers.clearTimeout(this.drainTimer);
    if (this.readyTimer) clearImmediate(this.readyTimer);
    this.readyTimer = null;
    for (const sub of [...this.subs.values()]) this.dropSubscription(sub);
    this.ready.clear();
    this.readyBytes = 0;
    this.control = [];
    this.controlHead = 0;
    this.controlBytes = 0;
  }
}

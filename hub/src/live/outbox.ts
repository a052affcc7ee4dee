/**
 * One client's outbox (docs/live.md §7): answers and control events in a bounded lossless queue, data
 * coalesced per subscription, snapshots part by part, all written only while the socket's buffered amount is
 * under the high-water mark; past a cap a subscription resyncs instead of growing (§7.4.2).
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle, Timers } from '../core/clock.js';
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
  /** Counters for tests and metrics. */
  readonly stats = { messagesSent: 0, coalesced: 0, resyncs: 0, maxAccountedBytes: 0 };

  constructor(
    private readonly socket: WebSocket,
    private readonly host: OutboxHost,
    private readonly subs: Map<number, Subscription>,
    /** §7.4.3: answers alone passed the cap. */
    private readonly onControlQueueFull: () => void,
  ) {}

  /** What the hub holds for this client now (§7.3): queues, outbox, and the socket's buffered bytes. */
  accountedBytes(): number {
    let data = 0;
    for (const sub of this.subs.values()) data += sub.pendingBytes;
    return this.controlBytes + data + this.socket.bufferedAmount;
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
      this.controlEvent(sub, eventMessage(sub.id, sub.offsetFor(ev.offset), ev.body));
      return;
    }
    const body = sub.bodyFor(ev);
    if (body === null) return;
    const now = this.host.clock.now();
    if (
      sub.snapshot === null &&
      !sub.hasPending &&
      this.controlHead === this.control.length &&
      this.writable() &&
      (sub.minIntervalMs === null || now >= sub.nextDataAt)
    ) {
      // The fast path: the body serialised once for every client; the whole message encoded once for every
      // client with the same subscription id and offset.
      const offset = sub.offsetFor(ev.offset);
      if (body === ev.body) {
        let frame = ev.frame;
        if (frame === undefined || frame.id !== sub.id || frame.offset !== offset) {
          frame = { id: sub.id, offset, data: Buffer.from(eventMessage(sub.id, offset, body)) };
          ev.frame = frame;
        }
        this.sendNow(frame.data);
      } else {
        this.sendNow(eventMessage(sub.id, offset, body));
      }
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
  private controlEvent(sub: Subscription, text: string): void {
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
      this.sendNow(eventMessage(sub.id, m.offset, m.body));
      return;
    }
    // §6.3: one tick sends the latest value of every series that changed.
    while (sub.hasPending && this.writable()) {
      const m = sub.takeOldest()!;
      this.sendNow(eventMessage(sub.id, m.offset, m.body));
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

  sendNow(text: string | Buffer): void {
    this.stats.messagesSent++;
    this.socket.send(text, TEXT);
    // With nothing queued, what this client holds is the socket's buffer: under high water plus this message.
    if (this.controlBytes > 0 || this.waitingDrain) this.noteAccounted();
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
    for (const sub of [...this.subs.values()]) this.dropSubscription(sub);
    this.control = [];
    this.controlHead = 0;
    this.controlBytes = 0;
  }
}

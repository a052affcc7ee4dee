/**
 * State the spool's parts share (docs/storage.md, "Spool"): where the segments are, what is committed and what
 * is drained, the durable seqs, and the store's and the disk's health. One object, owned by the facade
 * (spool.ts); each part (commit.ts, tail.ts, reader.ts, drainer.ts, checkpoint.ts) reads and moves the numbers
 * its concern owns, and tells the facade through `events` what the outside must hear of.
 */
import { resolve } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { DurableSeqs } from './durable-seqs.js';
import type { SpoolState, StoreState } from './options.js';
import type { RecordBatch, SegmentFormat } from './record.js';
import type { AcceptCallback, StoredReading } from '../storage/types.js';

/** A place in the spool: segment number and byte offset in it. */
export interface Position {
  seg: number;
  off: number;
}

export interface Segment {
  n: number;
  path: string;
  /** Bytes known durable (header + whole committed records). */
  end: number;
  /** Body format of its records (from the header): 2 for segments this hub writes, 1 left by an earlier hub. */
  format: SegmentFormat;
}

/** An accept() waiting for its group commit. */
export interface Pending {
  /** About what the readings take in the group's record (measureReadings): for the group's size bounds. */
  bytes: number;
  readings: readonly StoredReading[];
  acceptedAt: number;
  done: AcceptCallback;
}

/** Records read for one store write, and where they lie. */
export interface Batch {
  readings: RecordBatch;
  start: Position;
  end: Position;
  bytes: number;
  firstAcceptedAt: number | null;
}

/** What the parts tell the facade, which turns it into events and state. */
export interface SpoolEvents {
  /** `accepting` may have changed. */
  noteAccepting(): void;
  storeState(state: StoreState): void;
  drained(readings: number): void;
}

/** True if position `a` comes before `b` in the spool. */
export function before(a: Position, b: Position): boolean {
  return a.seg < b.seg || (a.seg === b.seg && a.off < b.off);
}

export class SpoolShared {
  readonly dir: string;
  /** Segment files in order; the last one is written to. */
  segments: Segment[] = [];
  readonly seqs = new DurableSeqs();
  /** The first record not yet in the store (the checkpoint follows it). */
  drainPos: Position = { seg: 0, off: 0 };
  /** Accept time of the oldest undrained reading, if known. */
  headAcceptedAt: number | null = null;

  committedBytes = 0;
  committedReadings = 0;
  drainedBytes = 0;
  drainedReadings = 0;
  acceptedReadings = 0;
  commits = 0;
  /** Of `commits`, those made on the event loop's thread (GroupCommitSettings.inlineMaxMs). */
  inlineCommits = 0;
  recoveredTornBytes = 0;
  replayedReadings = 0;
  drainedFromDisk = 0;
  storeState: StoreState = 'unknown';
  writeErrors: Record<string, number> = {};
  lastWriteError: SpoolState['lastWriteError'] = null;
  failure: SpoolState['failure'] = null;
  closing = false;
  /**
   * committedReadings as a Spool.whenStored() call found it: until that many readings are in the store (or in
   * a store write), the drainer starts batches without lingering for fuller ones.
   */
  storeBarrier = 0;
  /** Ends the drainer's current wait (set while it waits; every wait checks its condition again). */
  wake: (() => void) | null = null;

  constructor(
    dir: string,
    readonly clock: { now(): number },
    readonly logger: FastifyBaseLogger | undefined,
    readonly events: SpoolEvents,
  ) {
    this.dir = resolve(dir);
  }

  get depthBytes(): number {
    return this.committedBytes - this.drainedBytes;
  }

  get depthReadings(): number {
    return this.committedReadings - this.drainedReadings;
  }

  countError(kind: string): void {
    this.writeErrors[kind] = (this.writeErrors[kind] ?? 0) + 1;
  }

  setStoreState(s: StoreState): void {
    if (s === this.storeState) return;
    this.storeState = s;
    this.events.storeState(s);
  }

  /** Damage found while draining, skipped: counted as spool_damage and logged. */
  noteDamage(details: object, message: string): void {
    this.countError('spool_damage');
    this.logger?.error(details, message);
  }

  /** Waits until woken (see `wake`). */
  waitForWake(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }
}

/** Bytes read from a segment file at once (start-up scan, drainer). */
export const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Start-up recovery (docs/storage.md, "Recovery after a crash"), synchronous: nothing is served before it
 * finishes. Every segment is checked record by record (length + CRC-32); a torn tail (the process was killed
 * mid-append; such a record was never acknowledged) is cut off; the durable seqs are rebuilt; segments wholly
 * before the checkpoint are deleted; the drain resumes at the checkpoint.
 */
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  DIR_MODE,
  fsyncDirSync,
  readCheckpoint,
  readSeqs,
  restrictDirectory,
  takeLock,
  writeSeqsSync,
} from './directory.js';
import { SpoolFormatError } from './errors.js';
import {
  parseSegmentFileName,
  scanRecord,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  segmentFileName,
  segmentFormat,
  visitRecords,
} from './record.js';
import type { ReadingVisitor } from '../storage/types.js';
import { READ_CHUNK_BYTES, type Segment, type SpoolShared } from './shared.js';

/** Restricts the directory to the hub's user, takes its lock and rebuilds `s` (segments, counters, seqs, drain position) from the files. */
export function recover(s: SpoolShared): void {
  mkdirSync(s.dir, { recursive: true, mode: DIR_MODE });
  restrictDirectory(s.dir, s.logger);
  takeLock(s.dir);
  const checkpoint = readCheckpoint(s.dir, s.logger);
  for (const [deviceId, epoch, seq] of readSeqs(s.dir, s.logger)) s.seqs.note(deviceId, epoch, seq);
  const numbers = readdirSync(s.dir)
    .map(parseSegmentFileName)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
  for (const n of numbers) s.segments.push({ n, path: join(s.dir, segmentFileName(n)), end: 0, format: 2 });
  for (const seg of s.segments) {
    const undrainedFrom =
      checkpoint && seg.n === checkpoint.seg
        ? checkpoint.off
        : checkpoint && seg.n < checkpoint.seg
          ? Infinity
          : SEGMENT_HEADER_BYTES;
    scanSegment(s, seg, undrainedFrom);
  }
  // Segments wholly before the checkpoint were drained; their seqs are now in memory, so persist and drop them.
  const drained = checkpoint ? s.segments.filter((seg) => seg.n < checkpoint.seg) : [];
  if (drained.length > 0) {
    writeSeqsSync(s.dir, s.seqs.toJson());
    for (const seg of drained) unlinkSync(seg.path);
    s.segments = s.segments.filter((seg) => !drained.includes(seg));
    fsyncDirSync(s.dir);
  }
  const first = s.segments[0];
  if (checkpoint && first && first.n === checkpoint.seg) {
    s.drainPos = { seg: checkpoint.seg, off: Math.min(checkpoint.off, first.end) };
  } else if (first) {
    s.drainPos = { seg: first.n, off: SEGMENT_HEADER_BYTES };
  } else {
    s.drainPos = { seg: (checkpoint?.seg ?? 0) + 1, off: SEGMENT_HEADER_BYTES };
  }
  s.replayedReadings = s.depthReadings;
  if (s.replayedReadings > 0 || s.recoveredTornBytes > 0) {
    s.logger?.warn(
      { undrainedReadings: s.replayedReadings, undrainedBytes: s.depthBytes, tornBytesCut: s.recoveredTornBytes },
      'spool recovered: undrained readings are replayed to the store',
    );
  }
}

/** Validates a segment, cuts a torn or damaged tail, counts what lies at/after `undrainedFrom`. */
function scanSegment(s: SpoolShared, seg: Segment, undrainedFrom: number): void {
  const fd = openSync(seg.path, 'r+');
  try {
    const size = fstatSync(fd).size;
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = size >= SEGMENT_HEADER_BYTES ? readSync(fd, header, 0, SEGMENT_HEADER_BYTES, 0) : 0;
    const format = got < SEGMENT_HEADER_BYTES ? null : segmentFormat(header);
    if (format === 'unknown') {
      // Written by a newer hub: its records may be acknowledged readings not yet in the store.
      throw new SpoolFormatError(
        `${seg.path} is in spool format ${header.toString('latin1')}, which this hub cannot read; run the newer hub until /readyz shows the spool drained (depth 0), or keep the spool directory, before starting this version`,
      );
    }
    if (format === null) {
      // A segment created but killed before its header was durable holds no acknowledged record.
      s.logger?.warn({ segment: seg.path, size }, 'spool segment without a valid header: rewritten empty');
      ftruncateSync(fd, 0);
      writeSync(fd, SEGMENT_MAGIC, 0, SEGMENT_HEADER_BYTES, 0);
      fsyncSync(fd);
      s.recoveredTornBytes += size;
      seg.end = SEGMENT_HEADER_BYTES;
      return;
    }
    seg.format = format;
    scanRecords(s, fd, seg, size, undrainedFrom);
  } finally {
    closeSync(fd);
  }
}

/** The records of a segment whose header is valid, up to the first torn or damaged one (cut there). */
function scanRecords(s: SpoolShared, fd: number, seg: Segment, size: number, undrainedFrom: number): void {
  let off = SEGMENT_HEADER_BYTES;
  let buf = Buffer.alloc(0);
  let bufStart = off;
  while (off < size) {
    let result = scanRecord(buf, off - bufStart);
    if (result.kind === 'incomplete') {
      const want = Math.max(READ_CHUNK_BYTES, result.needBytes);
      const len = Math.min(want, size - off);
      buf = Buffer.allocUnsafe(len);
      const n = readSync(fd, buf, 0, len, off);
      buf = buf.subarray(0, n);
      bufStart = off;
      result = scanRecord(buf, 0);
      if (result.kind === 'incomplete') {
        cut(s, fd, seg, off, size, 'record runs past the end of the file (torn write)');
        return;
      }
    }
    if (result.kind === 'invalid') {
      cut(s, fd, seg, off, size, result.reason);
      return;
    }
    const rec = result.record;
    if (rec.summary) s.seqs.note(rec.summary.deviceId, rec.summary.epoch, rec.summary.maxSeq);
    // A record of several devices (a group commit's, or an older hub's record of a mixed accept): visit it.
    else visitRecords([rec], seg.format, seqNoter(s));
    if (off >= undrainedFrom) {
      s.headAcceptedAt ??= rec.acceptedAt;
      s.committedBytes += rec.totalBytes;
      s.committedReadings += rec.count;
    }
    off += rec.totalBytes;
  }
  seg.end = off;
}

/** A visitor that notes each reading's seq as durable (the records of several devices carry no summary). */
function seqNoter(s: SpoolShared): ReadingVisitor {
  return {
    begin: (deviceId, epoch, seq) => s.seqs.note(deviceId, epoch, seq),
    value: () => {},
    end: () => {},
  };
}

function cut(s: SpoolShared, fd: number, seg: Segment, at: number, size: number, reason: string): void {
  s.logger?.warn({ segment: seg.path, at, cutBytes: size - at, reason }, 'spool: cutting a torn or damaged tail');
  ftruncateSync(fd, at);
  fsyncSync(fd);
  s.recoveredTornBytes += size - at;
  seg.end = at;
}

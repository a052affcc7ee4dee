import { describe, expect, it } from 'vitest';
import { FleetCounters, ReadingLedger } from '../src/accounting.js';
import { LatencyHistogram } from '../src/latency.js';

describe('ReadingLedger', () => {
  it('a cumulative ACK settles every reading up to its seq and records send->ack latency', () => {
    const c = new FleetCounters();
    const ledger = new ReadingLedger(c);
    for (let seq = 1; seq <= 5; seq++) ledger.sent(seq, 1000 + seq);
    ledger.ack(3, 1100);
    expect({ sent: c.sent, acked: c.acked, buffered: c.buffered }).toEqual({ sent: 5, acked: 3, buffered: 2 });
    expect(c.latency.count).toBe(3);
    expect(c.latency.max).toBe(99);
    ledger.ack(2, 1200); // an older ACK changes nothing
    expect(c.acked).toBe(3);
    expect(c.reconciled).toBe(true);
  });

  it('counts a reading with ERRORs as rejected once, however many of its values were refused', () => {
    const c = new FleetCounters();
    const ledger = new ReadingLedger(c);
    for (let seq = 1; seq <= 3; seq++) ledger.sent(seq, 0);
    ledger.reject(2, 'OUT_OF_RANGE');
    ledger.reject(2, 'UNKNOWN_ALIAS');
    ledger.ack(3, 10);
    expect({ acked: c.acked, rejected: c.rejected }).toEqual({ acked: 2, rejected: 1 });
    expect(c.rejectedByCode).toEqual({ OUT_OF_RANGE: 1, UNKNOWN_ALIAS: 1 });
    expect(c.reconciled).toBe(true);
  });

  it('drops the oldest on overflow and abandons the rest at a reboot, and still reconciles', () => {
    const c = new FleetCounters();
    const ledger = new ReadingLedger(c);
    for (let seq = 1; seq <= 10; seq++) ledger.sent(seq, 0);
    ledger.drop(3);
    ledger.ack(5, 1);
    expect({ acked: c.acked, dropped: c.dropped }).toEqual({ acked: 2, dropped: 3 });
    ledger.abandonAll();
    expect({ buffered: c.buffered, dropped: c.dropped, abandoned: c.abandonedAtReboot }).toEqual({
      buffered: 0,
      dropped: 8,
      abandoned: 5,
    });
    expect(c.reconciled).toBe(true);
  });

  it('reconciliation fails when a reading goes missing', () => {
    const c = new FleetCounters();
    new ReadingLedger(c).sent(1, 0);
    c.buffered--; // a bug that loses track of a reading
    expect(c.reconciled).toBe(false);
  });

  it('stays correct over many cycles (queue compaction)', () => {
    const c = new FleetCounters();
    const ledger = new ReadingLedger(c);
    let seq = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) ledger.sent(++seq, 0);
      ledger.ack(seq - 40, 1);
    }
    expect(ledger.buffered).toBe(40);
    expect(ledger.newestSeq).toBe(seq);
    ledger.ack(seq, 2);
    expect(c.acked).toBe(5000);
    expect(c.reconciled).toBe(true);
  });
});

describe('LatencyHistogram', () => {
  it('reports percentiles within 5 % and the exact maximum', () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    const s = h.summary();
    expect(s.count).toBe(1000);
    expect(s.p50!).toBeGreaterThanOrEqual(500);
    expect(s.p50!).toBeLessThanOrEqual(525);
    expect(s.p99!).toBeGreaterThanOrEqual(990);
    expect(s.p99!).toBeLessThanOrEqual(1000);
    expect(s.max).toBe(1000);
  });

  it('is empty-safe', () => {
    expect(new LatencyHistogram().summary()).toEqual({ count: 0, p50: null, p90: null, p99: null, max: null });
  });
});

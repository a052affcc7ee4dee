/** The live progress line and the end-of-run summary (text and JSON; docs/simulator.md has the schema). */
import type { Fleet, FleetSnapshot } from './fleet.js';
import type { LatencySummary } from './latency.js';
import type { MalformedCounters } from './malformed.js';
import type { FaultOptions } from './options.js';

export interface SimulatorSummary {
  hub: string;
  devices: number;
  /** Devices per model. */
  models: Record<string, number>;
  ratePerSecond: number;
  durationMs: number;
  /** Readings handed to the SDK. */
  sent: number;
  /** Covered by an ACK, no ERROR about them. */
  acked: number;
  /** Covered by an ACK, with an ERROR about at least one value (or the timestamp). */
  rejected: number;
  /** Dropped by a full SDK buffer (oldest first). */
  dropped: number;
  /** Still waiting for an ACK when the run ended. */
  buffered: number;
  /** sent === acked + rejected + dropped + buffered */
  reconciled: boolean;
  /** ERROR frames about readings, by code (one reading may draw several). */
  rejectedByCode: Record<string, number>;
  /** ERROR frames about connections and client-side errors, by code. */
  errorsByCode: Record<string, number>;
  backoffsByCode: Record<string, number>;
  commands: { handled: number; rejected: number; byName: Record<string, number> };
  connections: { connectedAtEnd: number; connects: number; disconnects: number; closeCodes: Record<string, number> };
  latencyMs: LatencySummary;
  faults: FaultOptions & { dropsInjected: number; storms: number; bursts: number; burstReadings: number };
  malformed: MalformedCounters | null;
  cpu: { userMs: number; systemMs: number; wallMs: number; percentOfOneCore: number };
  memory: { rssBytes: number };
}

export function buildSummary(
  fleet: Fleet,
  run: { hub: string; ratePerSecond: number; durationMs: number; cpu: SimulatorSummary['cpu'] },
): SimulatorSummary {
  const c = fleet.counters;
  const models: Record<string, number> = {};
  for (const d of fleet.devices) models[d.spec.model.name] = (models[d.spec.model.name] ?? 0) + 1;
  return {
    hub: run.hub,
    devices: fleet.devices.length,
    models,
    ratePerSecond: run.ratePerSecond,
    durationMs: run.durationMs,
    sent: c.sent,
    acked: c.acked,
    rejected: c.rejected,
    dropped: c.dropped,
    buffered: c.buffered,
    reconciled: c.reconciled,
    rejectedByCode: { ...c.rejectedByCode },
    errorsByCode: { ...c.errorsByCode },
    backoffsByCode: { ...c.backoffsByCode },
    commands: { handled: c.commandsHandled, rejected: c.commandsRejected, byName: { ...c.commandsByName } },
    connections: {
      connectedAtEnd: c.connected,
      connects: c.connects,
      disconnects: c.disconnects,
      closeCodes: { ...c.closeCodes },
    },
    latencyMs: c.latency.summary(),
    faults: { ...fleet.faults, ...fleet.faultCounters },
    malformed: fleet.malformedCounters ? { ...fleet.malformedCounters } : null,
    cpu: run.cpu,
    memory: { rssBytes: process.memoryUsage.rss() },
  };
}

function codes(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k}:${v}`).join(' ') : 'none';
}

function rate(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

/** One progress line from two snapshots `dtMs` apart. */
export function formatProgress(
  prev: FleetSnapshot,
  now: FleetSnapshot,
  dtMs: number,
  cpuPercent: number,
  elapsedMs: number,
): string {
  const perSecond = (a: number, b: number) => (dtMs > 0 ? ((b - a) * 1000) / dtMs : 0);
  const errors = { ...now.errorsByCode, ...now.rejectedByCode };
  for (const [code, n] of Object.entries(now.backoffsByCode)) errors[`BACKOFF:${code}`] = n;
  return [
    `[${formatDuration(elapsedMs)}]`,
    `connected ${now.connected}/${now.devices}`,
    `sent ${rate(perSecond(prev.sent, now.sent))}/s`,
    `acked ${rate(perSecond(prev.acked + prev.rejected, now.acked + now.rejected))}/s`,
    `backlog ${now.buffered}`,
    `commands ${now.commandsHandled}`,
    `errors ${codes(errors)}`,
    `cpu ${cpuPercent.toFixed(0)}%`,
  ].join(' | ');
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export function formatSummary(s: SimulatorSummary): string {
  const lat = s.latencyMs;
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
  const lines = [
    `Simulated ${s.devices} devices (${Object.entries(s.models)
      .map(([m, n]) => `${n} ${m}`)
      .join(', ')}) against ${s.hub} for ${formatDuration(s.durationMs)}`,
    `  readings   sent ${s.sent} = acked ${s.acked} + rejected ${s.rejected} + dropped ${s.dropped} + still buffered ${s.buffered}  ${s.reconciled ? '(reconciled)' : '(DOES NOT RECONCILE)'}`,
    `  latency    send->ack p50 ${ms(lat.p50)}, p90 ${ms(lat.p90)}, p99 ${ms(lat.p99)}, max ${ms(lat.max)} (${lat.count} readings)`,
    `  rejected   ${codes(s.rejectedByCode)}`,
    `  errors     ${codes(s.errorsByCode)}`,
    `  backoffs   ${codes(s.backoffsByCode)}`,
    `  commands   ${s.commands.handled} handled (${s.commands.rejected} rejected): ${codes(s.commands.byName)}`,
    `  connection ${s.connections.connectedAtEnd} connected at the end, ${s.connections.connects} connects, ${s.connections.disconnects} disconnects (close codes ${codes(s.connections.closeCodes)})`,
  ];
  const f = s.faults;
  const faults: string[] = [];
  if (f.dropRatePerHour > 0) faults.push(`drops ${f.dropsInjected} injected (${f.dropRatePerHour}/device-hour)`);
  if (f.latencyMs > 0) faults.push(`latency +${f.latencyMs} ms each way`);
  if (f.clockSkewMs !== 0) faults.push(`clock skew ${f.clockSkewMs} ms`);
  if (f.burst) faults.push(`${f.bursts} bursts, ${f.burstReadings} readings`);
  if (f.reconnectStormSeconds > 0) faults.push(`${f.storms} reconnect storms`);
  if (s.malformed) {
    const m = s.malformed;
    faults.push(
      `malformed: ${m.framesSent} frames from ${m.devices} devices, ${m.closed1002} closed 1002, other closes ${codes(m.closedOther)}, error codes ${codes(m.errorCodes)}`,
    );
  }
  if (faults.length) lines.push(`  faults     ${faults.join('; ')}`);
  lines.push(
    `  simulator  cpu ${s.cpu.percentOfOneCore}% of one core (user ${s.cpu.userMs} ms, system ${s.cpu.systemMs} ms), rss ${(s.memory.rssBytes / 1048576).toFixed(0)} MB`,
  );
  return lines.join('\n');
}

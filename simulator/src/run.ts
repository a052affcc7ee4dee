/**
 * One simulator run, as the CLI performs it: provision (or reuse) the devices, run the fleet with live
 * progress, stop, drain what is buffered, print the summary. Streams and the stop signal are passed in, so
 * tests run it in-process against a real hub.
 */
import { readFileSync } from 'node:fs';
import { CpuMeter } from './accounting.js';
import { Fleet, type FleetDeviceSpec } from './fleet.js';
import { HubApi, hubEndpoints, type ProvisionedDevice, type ProvisionRequest } from './hub-api.js';
import type { MalformedDeviceSpec } from './malformed.js';
import { UsageError, type SimulatorOptions } from './options.js';
import {
  planFleet,
  planMalformed,
  provisionRequest,
  readDevicesFile,
  writeDevicesFile,
  type DevicesFile,
} from './plan.js';
import { buildSummary, formatProgress, formatSummary, type SimulatorSummary } from './report.js';

export interface RunIO {
  stdout: NodeJS.WritableStream;
  /** Progress goes here; a TTY gets one live line rewritten in place. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Resolves when the user asks to stop (Ctrl-C); the run then drains and prints its summary. */
  interrupted?: Promise<void>;
}

/** How long the end of a run waits for buffered readings to be acked. */
const DRAIN_MS = 10_000;
const TTY_PROGRESS_MS = 1000;

export async function runSimulation(options: SimulatorOptions, io: RunIO): Promise<SimulatorSummary> {
  const endpoints = hubEndpoints(options.hub);
  const ca = options.caFile ? readFileSync(options.caFile) : undefined;
  const log = (line: string) => io.stderr.write(`${line}\n`);

  const planned = planFleet(options.devices, options.models, options.seed);
  const malformedPlanned = planMalformed(options.faults.malformedDevices);
  const known = new Map<string, ProvisionedDevice>();
  const file = options.devicesFile ? readDevicesFile(options.devicesFile) : null;
  for (const entry of file?.devices ?? []) known.set(entry.id, entry);

  const wanted: ProvisionRequest[] = [...planned.map(provisionRequest), ...malformedPlanned];
  const missing = wanted.filter((d) => !known.has(d.id));
  if (missing.length > 0) {
    if (!options.token) {
      throw new UsageError(
        `${missing.length} device(s) need provisioning (first: ${missing[0]!.id}) and no admin token was given: pass --token or set HUB_ADMIN_TOKEN` +
          (options.devicesFile ? `, or list them in ${options.devicesFile}` : ''),
      );
    }
    const api = new HubApi({ httpBase: endpoints.httpBase, adminToken: options.token, ...(ca ? { ca } : {}) });
    try {
      log(`provisioning ${missing.length} device(s) at ${endpoints.httpBase}`);
      // Progress only for fleets big enough to take a while.
      const step = missing.length >= 500 ? Math.floor(missing.length / 10) : Infinity;
      const provisioned = await api.provisionAll(missing, (done) => {
        if (done % step === 0 && done < missing.length) log(`  provisioned ${done}/${missing.length}`);
      });
      for (const p of provisioned) known.set(p.id, p);
    } finally {
      api.close();
    }
    if (options.devicesFile) {
      const merged: DevicesFile = {
        version: 1,
        hub: endpoints.httpBase,
        devices: [...known.values()].map(({ id, name, model, token }) => ({ id, name, model, token })),
      };
      writeDevicesFile(options.devicesFile, merged);
      log(`devices and tokens written to ${options.devicesFile}`);
    }
  } else if (file) {
    log(`reusing ${wanted.length} device(s) from ${options.devicesFile}`);
  }

  // --transport mix: every second device over MQTT.
  const overMqtt = (i: number): boolean => options.transport === 'mqtt' || (options.transport === 'mix' && i % 2 === 1);
  const devices: FleetDeviceSpec[] = planned.map((p, i) => ({
    ...p,
    token: known.get(p.id)!.token,
    transport: overMqtt(i) ? 'mqtt' : 'ws',
  }));
  const malformedDevices: MalformedDeviceSpec[] = malformedPlanned.map((p) => ({
    id: p.id,
    token: known.get(p.id)!.token,
  }));
  const fleet = new Fleet({
    deviceUrl: endpoints.deviceUrl,
    devices,
    malformedDevices,
    ratePerSecond: options.ratePerSecond,
    faults: options.faults,
    seed: options.seed,
    connectsPerSecond: options.connectsPerSecond,
    ...(options.bufferSize ? { bufferSize: options.bufferSize } : {}),
    ...(ca ? { wsOptions: { ca } } : {}),
    ...(options.mqttUrl ? { mqtt: { url: options.mqttUrl, password: options.mqttPassword ?? undefined, ca } } : {}),
  });

  const cpu = new CpuMeter();
  const startedAt = Date.now();
  const tty = io.stderr.isTTY === true;
  let prev = fleet.snapshot();
  let prevAt = startedAt;
  const progress = (): void => {
    const now = Date.now();
    const snap = fleet.snapshot();
    const line = formatProgress(prev, snap, now - prevAt, cpu.sinceLast(), now - startedAt);
    io.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    prev = snap;
    prevAt = now;
  };
  const mqttCount = devices.filter((d) => d.transport === 'mqtt').length;
  if (mqttCount > 0) log(`${mqttCount} device(s) over MQTT through ${options.mqttUrl}`);
  log(
    `running ${devices.length} device(s)${malformedDevices.length ? ` + ${malformedDevices.length} malformed` : ''} at ${options.ratePerSecond}/s each against ${endpoints.deviceUrl}${options.durationSeconds ? ` for ${options.durationSeconds} s` : ' (Ctrl-C to stop)'}`,
  );
  fleet.start();
  const progressTimer = setInterval(progress, tty ? TTY_PROGRESS_MS : options.progressSeconds * 1000);

  await new Promise<void>((resolve) => {
    const timer = options.durationSeconds ? setTimeout(resolve, options.durationSeconds * 1000) : null;
    void io.interrupted?.then(() => {
      if (timer) clearTimeout(timer);
      resolve();
    });
  });
  const durationMs = Date.now() - startedAt;
  clearInterval(progressTimer);
  if (tty) io.stderr.write('\n');

  fleet.stopSending();
  if (fleet.counters.buffered > 0) {
    log(`stopping: waiting up to ${DRAIN_MS / 1000} s for ${fleet.counters.buffered} buffered reading(s) to be acked`);
    await fleet.drain(DRAIN_MS);
  }
  const summary = buildSummary(fleet, {
    hub: endpoints.httpBase,
    ratePerSecond: options.ratePerSecond,
    durationMs,
    cpu: cpu.total(),
  });
  await fleet.close();
  io.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary;
}

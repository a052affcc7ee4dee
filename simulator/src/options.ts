/**
 * Command-line options of `npm run simulate` (docs/simulator.md lists every flag). Parsing is pure: argv and
 * env in, a typed options object or a UsageError out, so it is tested without spawning a process.
 */
import { parseArgs } from 'node:util';
import { MODELS, parseModelList, type DeviceModel } from './models/index.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface BurstOptions {
  /** Extra readings each device sends back to back in one burst. */
  readings: number;
  /** Seconds between one device's bursts. */
  everySeconds: number;
}

export interface FaultOptions {
  /** Connection drops per device-hour (Poisson); 0 = none. */
  dropRatePerHour: number;
  /** Added one-way delay in each direction, ms. */
  latencyMs: number;
  /** Offset of every device clock from real time, ms (negative = behind). */
  clockSkewMs: number;
  burst: BurstOptions | null;
  /** Extra devices that send malformed frames over a raw WebSocket. */
  malformedDevices: number;
  /** Seconds between reconnect storms (every device's connection cut at once); 0 = none. */
  reconnectStormSeconds: number;
}

export interface SimulatorOptions {
  hub: string;
  token: string | null;
  devices: number;
  ratePerSecond: number;
  durationSeconds: number | null;
  json: boolean;
  devicesFile: string | null;
  models: DeviceModel[];
  seed: number;
  caFile: string | null;
  connectsPerSecond: number;
  bufferSize: number | null;
  /** Seconds between progress lines when stderr is not a TTY. */
  progressSeconds: number;
  faults: FaultOptions;
  load: boolean;
  /** How devices reach the hub: WebSocket, MQTT through a broker and the hub's bridge, or half each. */
  transport: 'ws' | 'mqtt' | 'mix';
  /** The broker for MQTT devices (required with --transport mqtt or mix). */
  mqttUrl: string | null;
  /** Broker password of every MQTT device (its user name is its id); null = no login. */
  mqttPassword: string | null;
}

export const NO_FAULTS: FaultOptions = Object.freeze({
  dropRatePerHour: 0,
  latencyMs: 0,
  clockSkewMs: 0,
  burst: null,
  malformedDevices: 0,
  reconnectStormSeconds: 0,
});

/** --load: 10,000 devices from one process, gently (see docs/simulator.md "Load mode"). */
export const LOAD_PRESET = { devices: 10_000, ratePerSecond: 0.2, connectsPerSecond: 500, progressSeconds: 5 } as const;

export const HELP = `Usage: npm run simulate -- --hub URL --devices N --rate R [--duration S] [--json] [options]

Runs a fleet of simulated devices against a Tendril hub, each over its own connection, through the
device SDK. Provisions the devices with the hub's admin token (or reuses --devices-file).

  --hub URL              hub address: http(s)://host:port or ws(s)://host:port (required)
  --devices N            number of devices (default 10)
  --rate R               readings per second per device, fractions allowed (default 1)
  --duration S           stop after S seconds (default: run until Ctrl-C)
  --json                 print the final summary as JSON on stdout
  --token TOKEN          admin API token (default: $HUB_ADMIN_TOKEN)
  --devices-file PATH    reuse devices and tokens from PATH; written after provisioning
  --models LIST          comma-separated models to mix: ${MODELS.map((m) => m.name).join(', ')} (default all)
  --seed N               seed for values and faults (default 1)
  --ca PATH              PEM CA certificate to trust for https/wss
  --connect-rate N       new connections per second while the fleet comes up (default 200)
  --buffer-size N        SDK reading buffer per device
  --progress S           seconds between progress lines when stderr is not a terminal (default 10)
  --transport T          ws (default), mqtt (every device through an MQTT broker and the hub's bridge), or mix
                         (every second device over MQTT)
  --mqtt URL             the broker for MQTT devices, mqtt(s)://host:port (the hub must bridge it: MQTT_URL)
  --mqtt-password P      broker password of every MQTT device, whose user name is its id (default:
                         $MQTT_DEVICE_PASSWORD; none = no login)
  --load                 load preset: ${LOAD_PRESET.devices} devices at ${LOAD_PRESET.ratePerSecond}/s, ${LOAD_PRESET.connectsPerSecond} connects/s (flags given override it)

Faults:
  --drop-rate X          cut each device's connection X times per hour on average (Poisson)
  --latency MS           add MS ms of delay to every frame in each direction
  --clock-skew MS        run every device clock MS ms ahead of real time (negative: behind)
  --burst N[/S]          every S seconds (default 30) each device sends N extra readings at once
  --malformed N          N extra devices send malformed frames over a raw socket (hub closes them with 1002)
  --reconnect-storm S    every S seconds cut every device's connection at the same moment

  -h, --help             show this help
`;

function num(
  name: string,
  raw: string | undefined,
  { min, integer = false }: { min: number; integer?: boolean },
): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min) {
    throw new UsageError(`--${name} ${raw}: expected ${integer ? 'an integer' : 'a number'} >= ${min}`);
  }
  return value;
}

function parseBurst(raw: string | undefined): BurstOptions | null {
  if (raw === undefined) return null;
  const m = /^(\d+)(?:\/(\d+(?:\.\d+)?))?$/.exec(raw.trim());
  if (!m || Number(m[1]) < 1 || (m[2] !== undefined && Number(m[2]) <= 0)) {
    throw new UsageError(
      `--burst ${raw}: expected N or N/S (N readings per burst >= 1, every S seconds > 0), e.g. --burst 50/10`,
    );
  }
  return { readings: Number(m[1]), everySeconds: m[2] === undefined ? 30 : Number(m[2]) };
}

/** parseArgs reads "--clock-skew -5000" as two options; hand it "--clock-skew=-5000". */
function joinNegativeNumbers(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** node:util parseArgs over the simulator's options (throws on an unknown or malformed one). */
function parseArgv(argv: readonly string[]) {
  return parseArgs({
    args: joinNegativeNumbers(argv),
    strict: true,
    allowPositionals: false,
    options: {
      hub: { type: 'string' },
      devices: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      json: { type: 'boolean' },
      token: { type: 'string' },
      'devices-file': { type: 'string' },
      models: { type: 'string' },
      seed: { type: 'string' },
      ca: { type: 'string' },
      'connect-rate': { type: 'string' },
      'buffer-size': { type: 'string' },
      progress: { type: 'string' },
      load: { type: 'boolean' },
      transport: { type: 'string' },
      mqtt: { type: 'string' },
      'mqtt-password': { type: 'string' },
      'drop-rate': { type: 'string' },
      latency: { type: 'string' },
      'clock-skew': { type: 'string' },
      burst: { type: 'string' },
      malformed: { type: 'string' },
      'reconnect-storm': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Returns null when --help was asked for. */
export function parseOptions(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): SimulatorOptions | null {
  let parsed: ReturnType<typeof parseArgv>;
  try {
    parsed = parseArgv(argv);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}. See --help.`);
  }
  const v = parsed.values;
  if (v.help) return null;
  if (!v.hub) throw new UsageError('--hub URL is required, e.g. --hub http://127.0.0.1:8080. See --help.');
  const load = v.load === true;
  const models = (() => {
    try {
      return parseModelList(v.models ?? 'all');
    } catch (error) {
      throw new UsageError(`--models: ${(error as Error).message}`);
    }
  })();
  const transport = v.transport ?? 'ws';
  if (transport !== 'ws' && transport !== 'mqtt' && transport !== 'mix')
    throw new UsageError(`--transport ${transport}: expected ws, mqtt or mix`);
  if (transport !== 'ws' && !v.mqtt)
    throw new UsageError(
      `--transport ${transport} needs --mqtt URL, the broker the hub bridges (e.g. mqtt://127.0.0.1:1883)`,
    );
  if (v.mqtt !== undefined && !/^(mqtts?|tcp|ssl|tls):\/\//.test(v.mqtt))
    throw new UsageError(`--mqtt ${v.mqtt}: expected mqtt://host:port or mqtts://host:port`);
  const clockSkew = v['clock-skew'];
  if (clockSkew !== undefined && !/^-?\d+$/.test(clockSkew.trim()))
    throw new UsageError(`--clock-skew ${clockSkew}: expected an integer number of ms, e.g. 5000 or -5000`);
  return {
    hub: v.hub,
    token: v.token ?? env.HUB_ADMIN_TOKEN ?? null,
    devices: num('devices', v.devices, { min: 1, integer: true }) ?? (load ? LOAD_PRESET.devices : 10),
    ratePerSecond: num('rate', v.rate, { min: 0.001 }) ?? (load ? LOAD_PRESET.ratePerSecond : 1),
    durationSeconds: num('duration', v.duration, { min: 0.1 }) ?? null,
    json: v.json === true,
    devicesFile: v['devices-file'] ?? null,
    models,
    seed: num('seed', v.seed, { min: 0, integer: true }) ?? 1,
    caFile: v.ca ?? null,
    connectsPerSecond:
      num('connect-rate', v['connect-rate'], { min: 1 }) ?? (load ? LOAD_PRESET.connectsPerSecond : 200),
    bufferSize: num('buffer-size', v['buffer-size'], { min: 1, integer: true }) ?? null,
    progressSeconds: num('progress', v.progress, { min: 0.1 }) ?? (load ? LOAD_PRESET.progressSeconds : 10),
    load,
    transport,
    mqttUrl: v.mqtt ?? null,
    mqttPassword: v['mqtt-password'] ?? env.MQTT_DEVICE_PASSWORD ?? null,
    faults: {
      dropRatePerHour: num('drop-rate', v['drop-rate'], { min: 0 }) ?? 0,
      latencyMs: num('latency', v.latency, { min: 0, integer: true }) ?? 0,
      clockSkewMs: clockSkew === undefined ? 0 : Number(clockSkew),
      burst: parseBurst(v.burst),
      malformedDevices: num('malformed', v.malformed, { min: 0, integer: true }) ?? 0,
      reconnectStormSeconds: num('reconnect-storm', v['reconnect-storm'], { min: 0.1 }) ?? 0,
    },
  };
}

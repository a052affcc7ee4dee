#!/usr/bin/env node
/**
 * `npm start`: the hub with its configured storage (embedded SQLite unless INFLUX_* is set, createHub) and, unless HUB_DEMO_DEVICES=0, a demo fleet of simulated
 * devices (default 25) in the same process, so a new user sees live data at once. Run after `npm run build`
 * (the root "start" script builds first). Everything else about the hub is configured as for hub/dist/main.js
 * (docs/operations.md); the demo fleet reads:
 *   HUB_DEMO_DEVICES  number of devices (default 25; 0 turns the fleet off)
 *   HUB_DEMO_RATE     readings per second per device (default 0.5)
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, createHub, listenHub, loadConfig } from '../hub/dist/index.js';
import { Fleet, HubApi, MODELS, planFleet, provisionRequest } from '../simulator/dist/index.js';

const DEFAULT_DEMO_DEVICES = 25;
const DEFAULT_DEMO_RATE = 0.5;

function fail(message) {
  process.stderr.write(`tendril: ${message}\n`);
  process.exit(2);
}

function demoSettings(env) {
  const rawCount = env.HUB_DEMO_DEVICES?.trim() || String(DEFAULT_DEMO_DEVICES);
  if (!/^\d+$/.test(rawCount) || Number(rawCount) > 100_000)
    fail(`HUB_DEMO_DEVICES="${env.HUB_DEMO_DEVICES}" must be a whole number 0..100000 (0 turns the demo fleet off).`);
  const rawRate = env.HUB_DEMO_RATE?.trim() || String(DEFAULT_DEMO_RATE);
  const rate = Number(rawRate);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 100)
    fail(`HUB_DEMO_RATE="${env.HUB_DEMO_RATE}" must be readings per second per device, > 0 and <= 100.`);
  return { devices: Number(rawCount), rate };
}

/** Same convention as hub/dist/main.js: without HUB_ADMIN_TOKEN, one is generated once into HUB_DATA_DIR/admin-token (0600). */
function ensureAdminToken(config) {
  if (config.adminToken !== null) return { token: config.adminToken, file: null };
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const file = join(config.dataDir, 'admin-token');
  try {
    const existing = readFileSync(file, 'utf8').trim();
    if (existing.length >= 16) return { token: existing, file };
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file };
}

async function startDemoFleet(config, where, adminToken, demo, log) {
  // The fleet reaches the hub over loopback, exactly like an outside fleet would.
  const secure = config.tls !== null;
  const httpBase = `${secure ? 'https' : 'http'}://127.0.0.1:${where.port}`;
  const deviceUrl = `${secure ? 'wss' : 'ws'}://127.0.0.1:${where.port}/v1/device`;
  // With TLS the certificate is for outside clients: its names and its CA need not be anything this process
  // can verify. The demo fleet talks to the hub in its own process over 127.0.0.1, so it skips verification.
  const tls = secure ? { rejectUnauthorized: false } : undefined;
  const planned = planFleet(demo.devices, MODELS, 1);
  const api = new HubApi({ httpBase, adminToken, ...(tls ? { tls } : {}) });
  let provisioned;
  try {
    provisioned = await api.provisionAll(planned.map(provisionRequest));
  } finally {
    api.close();
  }
  const fleet = new Fleet({
    deviceUrl,
    devices: planned.map((p, i) => ({ ...p, token: provisioned[i].token })),
    ratePerSecond: demo.rate,
    ...(tls ? { wsOptions: tls } : {}),
  });
  fleet.start();
  log(
    `demo fleet: ${demo.devices} simulated devices (${MODELS.map((m) => m.name).join(', ')}) at ${demo.rate} readings/s each; HUB_DEMO_DEVICES=0 turns it off`,
  );
  return fleet;
}

async function main() {
  let config;
  try {
    // The demo listens on loopback only unless HOST asks for more: a first run is not exposed to the network.
    config = loadConfig({ HOST: '127.0.0.1', ...process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    throw err;
  }
  const demo = demoSettings(process.env);
  const admin = ensureAdminToken(config);
  config = { ...config, adminToken: admin.token };
  const app = await createHub(config);
  const where = await listenHub(app, config);
  const log = (line) => process.stdout.write(`${line}\n`);
  log(`Tendril hub is running: ${where.url}  (devices connect to ${where.deviceUrl}; bound to ${where.boundAddress})`);
  if (where.reachableFromNetwork && config.tls === null) {
    log(
      `warning: HOST=${config.host} makes the hub reachable from other machines without TLS; set HUB_TLS_CERT/HUB_TLS_KEY (docs/security.md)`,
    );
  }
  if (admin.file) log(`admin API token (HUB_ADMIN_TOKEN unset): ${admin.file}`);
  // The first start creates user "admin" with a generated password (docs/security.md); the file goes once it is changed.
  const firstPassword = join(config.dataDir, 'initial-admin-password');
  if (existsSync(firstPassword))
    log(
      `log in at ${where.url} as "admin" with the password in ${firstPassword} (you choose a new one at the first login)`,
    );
  else
    log(`log in at ${where.url} (manage users with: npm run hub -- user list | add NAME --role viewer|operator|admin)`);

  let fleet = null;
  if (demo.devices === 0) log('demo fleet off (HUB_DEMO_DEVICES=0)');
  else {
    try {
      fleet = await startDemoFleet(config, where, admin.token, demo, log);
    } catch (err) {
      // The hub is useful without its demo: say why the fleet did not start and keep serving.
      process.stderr.write(`tendril: the demo fleet could not start: ${err.message}\n`);
    }
  }

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) process.exit(1);
    stopping = true;
    log(`${signal}: stopping${fleet ? ' the demo fleet and' : ''} the hub`);
    try {
      if (fleet) {
        fleet.stopSending();
        await fleet.drain(3000);
        await fleet.close();
      }
      await app.close();
      process.exit(0);
    } catch (err) {
      process.stderr.write(`tendril: shutdown failed: ${err.stack ?? err}\n`);
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`tendril: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

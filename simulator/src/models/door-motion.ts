/** Door/motion sensor: boolean events (a door that opens and closes, motion that comes in bursts). */
import { between, exponential, seededRandom } from '../random.js';
import { HOUR_MS, type DeviceModel, type ModelInstance, type Sample } from './model.js';
import { Battery, BATTERY_METRICS, Signal } from './power-source.js';

export const doorMotion: DeviceModel = {
  name: 'door-motion',
  idPrefix: 'door',
  label: 'Door sensor',
  switchName: 'led',
  batteryPowered: true,
  firmware: 'door-fw 1.2.7',
  metrics: [
    { name: 'door_open', kind: 'bool' },
    { name: 'motion', kind: 'bool' },
    { name: 'openings', kind: 'int', unit: 'count', min: 0 },
    ...BATTERY_METRICS,
    { name: 'led', kind: 'bool' },
  ],
  create(seed: number, startMs: number): ModelInstance {
    const random = seededRandom(seed);
    const opensPerHour = between(random, 6, 30);
    const battery = new Battery(random);
    const signal = new Signal(random);
    let doorOpen = false;
    let openings = 0;
    // Times of the next state changes (Poisson arrivals; an open door closes after 5-60 s).
    let nextDoorChange = startMs + exponential(random, HOUR_MS / opensPerHour);
    let motionUntil = 0;
    let last = startMs;

    const instance: ModelInstance = {
      switchOn: false,
      sample(nowMs: number): Sample {
        const dt = Math.max(0, nowMs - last);
        last = nowMs;
        while (nextDoorChange <= nowMs) {
          doorOpen = !doorOpen;
          if (doorOpen) {
            openings++;
            // Someone walks through: motion for a while around the opening.
            motionUntil = Math.max(motionUntil, nextDoorChange + between(random, 10_000, 60_000));
            nextDoorChange += between(random, 5_000, 60_000);
          } else {
            nextDoorChange += exponential(random, HOUR_MS / opensPerHour);
          }
        }
        // Motion without a door event now and then (someone inside the room).
        if (random() < 0.02) motionUntil = nowMs + between(random, 5_000, 30_000);
        return {
          door_open: doorOpen,
          motion: nowMs < motionUntil,
          openings,
          battery: Math.round(battery.advance(dt) * 100) / 100,
          rssi: signal.advance(),
          led: instance.switchOn,
        };
      },
    };
    return instance;
  },
};

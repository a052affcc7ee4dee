/** GPS tracker: a vehicle driving a closed route around a city, with speed, heading, battery and signal. */
import { between, clamp, gaussian, seededRandom } from '../random.js';
import { round } from './env-sensor.js';
import type { DeviceModel, ModelInstance, Sample } from './model.js';
import { Battery, BATTERY_METRICS, Signal } from './power-source.js';

const CITIES: ReadonlyArray<readonly [number, number]> = [
  [52.52, 13.405], // Berlin
  [48.8566, 2.3522], // Paris
  [51.5072, -0.1276], // London
  [40.4168, -3.7038], // Madrid
  [45.4642, 9.19], // Milan
  [59.3293, 18.0686], // Stockholm
  [50.0755, 14.4378], // Prague
  [41.3874, 2.1686], // Barcelona
];
const METRES_PER_DEGREE = 111_320;

export const gpsTracker: DeviceModel = {
  name: 'gps-tracker',
  idPrefix: 'gps',
  label: 'GPS tracker',
  switchName: 'led',
  batteryPowered: true,
  firmware: 'trk-fw 3.1.2',
  metrics: [
    { name: 'lat', kind: 'f64', unit: '°', min: -90, max: 90 },
    { name: 'lon', kind: 'f64', unit: '°', min: -180, max: 180 },
    { name: 'speed', kind: 'f32', unit: 'km/h', min: 0, max: 250 },
    { name: 'heading', kind: 'f32', unit: '°', min: 0, max: 360 },
    ...BATTERY_METRICS,
    { name: 'led', kind: 'bool' },
  ],
  create(seed: number, startMs: number): ModelInstance {
    const random = seededRandom(seed);
    const [cityLat, cityLon] = CITIES[Math.floor(random() * CITIES.length)]!;
    const metresPerDegreeLon = METRES_PER_DEGREE * Math.cos((cityLat * Math.PI) / 180);
    // The route: 5-9 waypoints on a rough ring 1-6 km from the centre, driven in a loop.
    const count = 5 + Math.floor(random() * 5);
    const route: Array<{ x: number; y: number }> = []; // metres east/north of the centre
    for (let i = 0; i < count; i++) {
      const angle = (2 * Math.PI * (i + between(random, -0.3, 0.3))) / count;
      const radius = between(random, 1000, 6000);
      route.push({ x: radius * Math.cos(angle), y: radius * Math.sin(angle) });
    }
    const cruise = between(random, 30, 60); // km/h
    const battery = new Battery(random);
    const signal = new Signal(random);
    let leg = 0; // travelling from route[leg] to route[leg + 1]
    let along = 0; // metres along the current leg
    let speed = cruise;
    let stopLeftMs = 0; // parked at a waypoint (delivery, traffic light)
    let last = startMs;

    const instance: ModelInstance = {
      switchOn: false,
      sample(nowMs: number): Sample {
        const elapsed = Math.max(0, nowMs - last);
        last = nowMs;
        let dt = elapsed; // driving time within the gap
        const from = route[leg]!;
        let to = route[(leg + 1) % count]!;
        if (stopLeftMs > 0) {
          stopLeftMs -= dt;
          speed = 0;
          dt = 0;
        } else {
          speed = clamp(speed + 0.2 * (cruise - speed) + 3 * gaussian(random), 5, 90);
        }
        along += (speed / 3.6) * (dt / 1000);
        let legLength = Math.hypot(to.x - from.x, to.y - from.y);
        let start = from;
        while (along >= legLength) {
          along -= legLength;
          leg = (leg + 1) % count;
          start = route[leg]!;
          to = route[(leg + 1) % count]!;
          legLength = Math.hypot(to.x - start.x, to.y - start.y);
          if (random() < 0.3) {
            stopLeftMs = between(random, 10_000, 120_000);
            along = 0;
            break;
          }
        }
        const f = legLength > 0 ? along / legLength : 0;
        const x = start.x + (to.x - start.x) * f;
        const y = start.y + (to.y - start.y) * f;
        let heading = (Math.atan2(to.x - start.x, to.y - start.y) * 180) / Math.PI; // 0 = north, clockwise
        if (heading < 0) heading += 360;
        return {
          lat: round(cityLat + y / METRES_PER_DEGREE, 6),
          lon: round(cityLon + x / metresPerDegreeLon, 6),
          speed: round(speed, 1),
          heading: round(heading, 1) % 360,
          battery: round(battery.advance(elapsed), 2),
          rssi: signal.advance(),
          led: instance.switchOn,
        };
      },
    };
    return instance;
  },
};

/**
 * What the bridge tells a device on tendril/v1/<id>/error (docs/mqtt.md §5), within a budget per device
 * (ERROR_BURST at once, ERROR_RATE per second): a device that sends nothing but bad values does not make the
 * hub publish without bound; what is over budget is only counted. Template fleets have no error topic of
 * ours: their refusals go to the debug log.
 */
import type { Clock } from '../core/clock.js';
import type { BridgeCounts, BridgeLog } from './bridge-types.js';
import { encodeError } from './payload.js';
import { errorTopic } from './topics.js';

export interface ErrorExtra {
  seq?: number;
  metric?: string;
  topic?: string;
}

const ERROR_BURST = 100;
const ERROR_RATE = 10;
/** Devices whose budget is remembered; past that the budgets start afresh. */
const MAX_BUDGETS = 100_000;

export class DeviceErrors {
  private readonly budgets = new Map<string, { tokens: number; at: number }>();

  constructor(
    /** Publishes at QoS 0; false when the broker is not reachable. */
    private readonly publish: (topic: string, payload: Buffer) => boolean,
    private readonly clock: Clock,
    private readonly log: BridgeLog,
    private readonly counts: BridgeCounts,
  ) {}

  report(id: string, source: string, code: string, message: string, extra: ErrorExtra): void {
    if (source !== 'tendril') {
      this.log.debug({ deviceId: id, code, ...extra }, message);
      return;
    }
    const now = this.clock.now();
    let budget = this.budgets.get(id);
    if (budget === undefined) {
      if (this.budgets.size >= MAX_BUDGETS) this.budgets.clear();
      budget = { tokens: ERROR_BURST, at: now };
      this.budgets.set(id, budget);
    }
    budget.tokens = Math.min(ERROR_BURST, budget.tokens + ((now - budget.at) * ERROR_RATE) / 1000);
    budget.at = now;
    if (budget.tokens < 1) {
      this.counts.errorsSuppressed++;
      return;
    }
    budget.tokens--;
    if (this.publish(errorTopic(id), encodeError(code, message, extra))) this.counts.errorsPublished++;
  }
}

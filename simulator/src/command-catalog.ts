/**
 * The command catalogue of each simulated model, as the hub's PUT /api/v1/models/:model/commands takes it
 * (docs/commands.md, "Command catalogue"): what SimulatedDevice handles (fleet.ts wireCommands), with the
 * same ranges, so the dashboard's form offers exactly these and the hub refuses bad arguments before they
 * travel. allowUnlisted: free JSON still reaches the devices (they reject what they do not handle).
 */
import { MAX_INTERVAL_MS, MAX_REBOOT_DELAY_MS, MIN_INTERVAL_MS } from './fleet.js';
import type { DeviceModel } from './models/index.js';

export interface CatalogArg {
  name: string;
  type: 'boolean' | 'integer' | 'number' | 'string';
  label?: string;
  description?: string;
  required?: boolean;
  min?: number;
  max?: number;
  default?: boolean | number | string;
}

export interface CatalogCommand {
  name: string;
  label?: string;
  description?: string;
  args?: CatalogArg[];
}

export interface ModelCatalog {
  allowUnlisted: boolean;
  commands: CatalogCommand[];
}

export function commandCatalog(model: DeviceModel): ModelCatalog {
  const what = model.switchName === 'relay' ? 'relay' : 'LED';
  return {
    allowUnlisted: true,
    commands: [
      {
        name: model.switchName,
        label: `Switch ${what}`,
        description: `Turn the ${what} on or off.`,
        args: [{ name: 'on', type: 'boolean', label: 'On', required: true, default: true }],
      },
      {
        name: 'set-interval',
        label: 'Set reporting interval',
        description: 'How often the device sends a reading.',
        args: [
          {
            name: 'ms',
            type: 'integer',
            label: 'Interval (ms)',
            required: true,
            min: MIN_INTERVAL_MS,
            max: MAX_INTERVAL_MS,
            default: 5000,
          },
        ],
      },
      {
        name: 'reboot',
        label: 'Reboot',
        description: 'Restart the device after a delay (a new epoch; unacked readings are lost).',
        args: [
          { name: 'delayMs', type: 'integer', label: 'Delay (ms)', min: 0, max: MAX_REBOOT_DELAY_MS, default: 5000 },
        ],
      },
      { name: 'firmware-info', label: 'Firmware info', description: 'Report model, firmware and uptime.', args: [] },
    ],
  };
}

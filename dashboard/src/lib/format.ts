/** Formatting of durations, times and values for people. */
import type { MetricDeclaration, Scalar } from './types.js';

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function formatTime(ts: number): string {
  const d = new Date(ts);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatValue(value: Scalar | null | undefined, decl?: Pick<MetricDeclaration, 'kind' | 'unit'>): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'string') return value;
  let text: string;
  if (decl?.kind === 'int' || Number.isInteger(value)) text = String(value);
  else {
    const abs = Math.abs(value);
    text =
      abs >= 1000
        ? value.toFixed(0)
        : abs >= 100
          ? value.toFixed(1)
          : abs >= 1
            ? value.toFixed(2)
            : value.toPrecision(3);
  }
  return decl?.unit ? `${text} ${decl.unit}` : text;
}

/** Presence reason codes in words (docs/api.md, "Presence reasons"). */
const REASONS: Record<string, string> = {
  CLOSED: 'closed by the device',
  CONNECTION_LOST: 'connection lost',
  HEARTBEAT_LOST: 'heartbeat lost',
  AUTH_FAILED: 'credential refused',
  DEVICE_DISABLED: 'disabled',
  SHUTTING_DOWN: 'hub shut down',
  DELETED: 'deleted',
  PROTOCOL_ERROR: 'protocol error',
  REPLACED: 'replaced by a newer connection',
  MQTT_WILL: 'vanished (its MQTT last will)',
  BRIDGE_DISCONNECTED: 'unknown: the hub lost its MQTT broker',
};

export function reasonText(reason: string | null | undefined): string {
  if (!reason) return '';
  return REASONS[reason] ?? reason.toLowerCase().replace(/_/g, ' ');
}

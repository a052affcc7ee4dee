/**
 * Snapshots (docs/live.md §5.4): what a subscription's snapshot or `added` event lists is fixed when it is taken
 * (device ids, command ids); each part is rendered from the current state when the socket can take it, so no
 * snapshot is held whole per client.
 */
import type { Command } from '../commands/model.js';
import type { FleetState } from './fleet-state.js';
import type { StreamName } from './protocol.js';
import type { LiveCommandSource } from './sources.js';
import type { StreamLog } from './stream-log.js';
import type { SnapshotCursor, Subscription } from './subscription.js';

export interface SnapshotContext {
  fleet: FleetState;
  logs: Record<StreamName, StreamLog>;
  commands: LiveCommandSource | undefined;
  healthJson(): string;
}

const FINISHED: readonly Command['state'][] = ['succeeded', 'failed', 'rejected', 'expired'];
const UNFINISHED: readonly Command['state'][] = ['queued', 'sent', 'delivered'];
/** Finished commands per device in a commands snapshot (§5.4.4). */
const FINISHED_PER_DEVICE = 20;

export function snapshotCursor(
  ctx: SnapshotContext,
  sub: Subscription,
  kind: SnapshotCursor['kind'],
  gap: boolean,
  devices: readonly string[] | null,
): SnapshotCursor {
  const field = sub.stream === 'commands' ? 'commands' : sub.stream === 'health' ? 'health' : 'devices';
  const ids = snapshotIds(
    ctx,
    sub,
    devices ?? (sub.stream === 'fleet' ? ctx.fleet.ids() : sub.devices ? [...sub.devices] : null),
  );
  return { kind, offset: ctx.logs[sub.stream].head, gap, field, ids, next: 0, part: 0 };
}

export function snapshotIds(
  ctx: SnapshotContext,
  sub: Subscription,
  devices: readonly string[] | null,
): ReadonlyArray<string | number> {
  switch (sub.stream) {
    case 'fleet':
    case 'device':
      return devices ?? [];
    case 'health':
      return ['health'];
    case 'commands': {
      const source = ctx.commands;
      if (!source) return [];
      if (devices === null) return source.unfinishedIds();
      const ids: number[] = [];
      for (const d of devices) {
        for (const c of source.list({ deviceId: d, states: UNFINISHED, limit: 1000 })) ids.push(c.id);
        for (const c of source.list({ deviceId: d, states: FINISHED, limit: FINISHED_PER_DEVICE })) ids.push(c.id);
      }
      return ids.sort((a, b) => a - b);
    }
  }
}

export function renderSnapshotPart(ctx: SnapshotContext, sub: Subscription, maxBytes: number): string {
  const c = sub.snapshot!;
  const items: string[] = [];
  let size = 0;
  while (c.next < c.ids.length && (items.length === 0 || size < maxBytes)) {
    const json = renderItem(ctx, sub, c.ids[c.next++]!);
    if (json === null) continue;
    items.push(json);
    size += json.length + 1;
  }
  const last = c.next >= c.ids.length;
  const head = `{"kind":"${c.kind}","part":${c.part++},"last":${last},"gap":${c.gap},"${c.field}":`;
  const body = c.field === 'health' ? `${head}${items[0] ?? ctx.healthJson()}}` : `${head}[${items.join(',')}]}`;
  if (last) sub.snapshot = null;
  return body;
}

function renderItem(ctx: SnapshotContext, sub: Subscription, id: string | number): string | null {
  switch (sub.stream) {
    case 'fleet':
      return ctx.fleet.json(id as string);
    case 'device':
      return ctx.fleet.jsonWithMetrics(id as string, sub.metrics);
    case 'health':
      return ctx.healthJson();
    case 'commands': {
      const cmd = ctx.commands?.get(id as number);
      return cmd ? JSON.stringify(cmd) : null;
    }
  }
}

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

const FINISHED: readonly Command['state'][] = ['succeeded', 'failed', 'rejected', 'expired', 'cancelled'];
const UNFINISHED: readonly Command['state'][] = ['queued', 'sent', 'delivered'];
/** Finished commands per device in a commands snapshot (§5.4.4). */
const FINISHED_PER_DEVICE = 20;

export function snapshotCursor(
  ctx: SnapshotContext,
  sub: Subscription,
  kind: SnapshotCursor['kind'],
  gap: boolean,
  devices: readonly string[] | null,
  maxBytes: number,
): SnapshotCursor {
  const field = sub.stream === 'commands' ? 'commands' : sub.stream === 'health' ? 'health' : 'devices';
  const ids = snapshotIds(
    ctx,
    sub,
    devices ?? (sub.stream === 'fleet' ? ctx.fleet.ids() : sub.devices ? [...sub.devices] : null),
  );
  const ends = partEnds(ctx, sub, ids, maxBytes);
  return { kind, offset: ctx.logs[sub.stream].head, gap, field, ids, ends, next: 0, part: 0 };
}

/** Commands per snapshot part (a command is at most some 10 KB: name, arguments, result, history). */
const COMMANDS_PER_PART = 25;

/**
 * §5.4.2: where each part ends, fixed when the snapshot is taken so that every part can say how many there are.
 * Device rows are measured by their JSON now (cached per row, and made for the part anyway); a row that grows
 * before its part is sent makes that part a little larger than `maxBytes`.
 */
function partEnds(
  ctx: SnapshotContext,
  sub: Subscription,
  ids: ReadonlyArray<string | number>,
  maxBytes: number,
): number[] {
  const ends: number[] = [];
  if (sub.stream === 'commands') {
    for (let i = COMMANDS_PER_PART; i < ids.length; i += COMMANDS_PER_PART) ends.push(i);
  } else if (sub.stream === 'fleet' || sub.stream === 'device') {
    let size = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      const n = (sub.stream === 'fleet' ? ctx.fleet.json(id) : ctx.fleet.jsonWithMetrics(id, sub.metrics))?.length ?? 0;
      if (size > 0 && size + n > maxBytes) {
        ends.push(i);
        size = 0;
      }
      size += n + 1;
    }
  }
  ends.push(ids.length);
  return ends;
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

export function renderSnapshotPart(ctx: SnapshotContext, sub: Subscription): string {
  const c = sub.snapshot!;
  const items: string[] = [];
  const end = c.ends[c.part] ?? c.ids.length;
  while (c.next < end) {
    const json = renderItem(ctx, sub, c.ids[c.next++]!);
    if (json !== null) items.push(json);
  }
  const parts = c.ends.length;
  const last = c.part + 1 >= parts;
  const head = `{"kind":"${c.kind}","part":${c.part++},"parts":${parts},"last":${last},"gap":${c.gap},"${c.field}":`;
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

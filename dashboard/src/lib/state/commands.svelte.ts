/**
 * One device's commands: the live `commands` stream (docs/live.md §5.3) for the lifecycle as it happens,
 * the HTTP list for the history with who sent each (docs/commands.md), sending with an idempotency key and
 * cancelling a queued one. Updates are buffered and applied once per frame.
 */
import type { LiveEvent, SubscribeSpec } from '../live/protocol.js';
import type { ModelCatalog } from '../command-catalog.js';
import { FINAL_STATES, type Command } from '../types.js';

export interface CommandsDeps {
  live: { subscribe(spec: SubscribeSpec, handler: { onEvent(e: LiveEvent, offset: number): void }): { close(): void } };
  api: {
    commands(id: string, limit?: number): Promise<{ commands: Command[] }>;
    sendCommand(id: string, body: { name: string; args?: unknown; idempotencyKey: string }): Promise<Command>;
    cancelCommand(commandId: number): Promise<Command>;
    /** The model's command catalogue (rejects with status 404 when it has none). */
    model?(model: string): Promise<ModelCatalog>;
  };
  frames: { schedule(fn: () => void): void };
  newKey?: () => string;
}

function newKey(): string {
  return typeof crypto !== 'undefined' && 'randomUUID' in crypto
    ? crypto.randomUUID()
    : `k-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

/** Which of two versions of a command is newer: more history, or a final state over an unfinished one. */
function newer(a: Command, b: Command): Command {
  const ha = a.history?.length ?? 0;
  const hb = b.history?.length ?? 0;
  if (ha !== hb) return ha > hb ? a : b;
  if (FINAL_STATES.has(a.state) !== FINAL_STATES.has(b.state)) return FINAL_STATES.has(a.state) ? a : b;
  return b;
}

export class CommandsState {
  list: Command[] = $state.raw([]);
  loaded = $state(false);
  error: string | null = $state(null);
  sending = $state(false);
  /** The device model's command catalogue; null when it has none (or it is not loaded yet). */
  catalog: ModelCatalog | null = $state.raw(null);
  catalogLoaded = $state(false);
  #catalogFor: string | null = null;
  /** The key of the next send; kept after a failed send, so a retry cannot run the command twice. */
  idempotencyKey = $state('');

  #byId = new Map<number, Command>();
  #incoming: Command[] = [];

  constructor(
    readonly deviceId: string,
    private readonly deps: CommandsDeps,
  ) {
    this.idempotencyKey = (deps.newKey ?? newKey)();
  }

  /** Loads the command catalogue of `model` (again only when the model changed). */
  loadCatalog(model: string): void {
    const api = this.deps.api;
    if (!api.model || this.#catalogFor === model) return;
    this.#catalogFor = model;
    if (model === '') {
      this.catalog = null;
      this.catalogLoaded = true;
      return;
    }
    api.model(model).then(
      (c) => {
        if (this.#catalogFor !== model) return;
        this.catalog = c;
        this.catalogLoaded = true;
      },
      (err: { status?: number; message: string }) => {
        if (this.#catalogFor !== model) return;
        this.catalog = null;
        this.catalogLoaded = true;
        // 404: the model publishes no catalogue; the form offers free JSON. Anything else is worth saying.
        if (err.status !== 404) this.error = `Could not load the commands of model ${model}: ${err.message}`;
      },
    );
  }

  start(): () => void {
    const sub = this.deps.live.subscribe(
      { stream: 'commands', devices: [this.deviceId] },
      { onEvent: (e) => this.receive(e) },
    );
    void this.refresh();
    return () => sub.close();
  }

  async refresh(): Promise<void> {
    try {
      const { commands } = await this.deps.api.commands(this.deviceId, 50);
      this.#incoming.push(...commands);
      this.deps.frames.schedule(this.flush);
      this.loaded = true;
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  receive(e: LiveEvent): void {
    if (e.kind === 'command') this.#incoming.push(e.command);
    else if (e.kind === 'snapshot') {
      this.#incoming.push(...(e.commands ?? []));
      // The snapshot holds unfinished and recent commands only: the list's older ones come from HTTP.
      if (e.gap) void this.refresh();
    } else return;
    this.deps.frames.schedule(this.flush);
  }

  flush = (): void => {
    if (this.#incoming.length === 0) return;
    for (const c of this.#incoming) {
      if (c.deviceId !== this.deviceId) continue;
      const cur = this.#byId.get(c.id);
      this.#byId.set(c.id, cur ? newer(cur, c) : c);
    }
    this.#incoming = [];
    this.list = [...this.#byId.values()].sort((a, b) => b.id - a.id);
  };

  async send(name: string, args: unknown): Promise<Command | undefined> {
    this.sending = true;
    this.error = null;
    try {
      const body: { name: string; args?: unknown; idempotencyKey: string } = {
        name,
        idempotencyKey: this.idempotencyKey,
      };
      if (args !== undefined) body.args = args;
      const cmd = await this.deps.api.sendCommand(this.deviceId, body);
      this.#incoming.push(cmd);
      this.flush();
      // Sent: the next command is a new one.
      this.idempotencyKey = (this.deps.newKey ?? newKey)();
      return cmd;
    } catch (err) {
      this.error = (err as Error).message;
      return undefined;
    } finally {
      this.sending = false;
    }
  }

  async cancel(commandId: number): Promise<void> {
    this.error = null;
    try {
      const cmd = await this.deps.api.cancelCommand(commandId);
      this.#incoming.push(cmd);
      this.flush();
    } catch (err) {
      const e = err as { status?: number; code?: string; message: string };
      // A hub without the cancel route answers 404 NOT_FOUND (not COMMAND_NOT_FOUND): say what it means.
      this.error =
        e.status === 404 && e.code === 'NOT_FOUND'
          ? 'This hub cannot cancel commands (no cancel route); the command stays queued until it is sent or expires.'
          : e.message;
    }
  }
}

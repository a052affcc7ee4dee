/**
 * Disk errors cannot be produced on demand here, so tests inject them into real files by wrapping methods
 * of node's FileHandle: a fake of the kernel's failure, named as such; the files and everything else are real.
 */
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inlineDisk } from '../src/spool/writer.js';

type FileHandleMethod = 'writev' | 'datasync' | 'truncate' | 'write';
type Method = (...args: unknown[]) => Promise<unknown>;
type InlineMethod = keyof typeof inlineDisk;
type SyncMethod = (...args: unknown[]) => unknown;

export function eio(what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EIO: i/o error, ${what} (injected)`), { code: 'EIO', errno: -5 });
}

/** Fault injection on node's FileHandle methods (every file of the process). Call restore() after each test. */
export class FileFaults {
  private readonly proto: Record<FileHandleMethod, Method>;
  private readonly originals = new Map<FileHandleMethod, Method>();
  private readonly inlineOriginals = new Map<InlineMethod, SyncMethod>();

  private constructor(proto: Record<FileHandleMethod, Method>) {
    this.proto = proto;
  }

  static async create(dir: string): Promise<FileFaults> {
    const probe = await openFile(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as Record<FileHandleMethod, Method>;
    await probe.close();
    return new FileFaults(proto);
  }

  /** Replaces `method`; `wrapper` gets the real one (bound to the handle) and the call's arguments. */
  wrap(method: FileHandleMethod, wrapper: (real: Method, args: unknown[]) => Promise<unknown>): void {
    const real = this.originals.get(method) ?? this.proto[method];
    this.originals.set(method, real);
    this.proto[method] = function (this: unknown, ...args: unknown[]) {
      return wrapper(real.bind(this) as Method, args);
    };
  }

  /**
   * Replaces one of the spool's synchronous calls of an inline commit (writer.ts, inlineDisk); `wrapper` gets
   * the real one and the call's arguments.
   */
  wrapInline(method: InlineMethod, wrapper: (real: SyncMethod, args: unknown[]) => unknown): void {
    const disk = inlineDisk as unknown as Record<InlineMethod, SyncMethod>;
    const real = this.inlineOriginals.get(method) ?? disk[method];
    this.inlineOriginals.set(method, real);
    disk[method] = (...args: unknown[]) => wrapper(real, args);
  }

  restore(): void {
    for (const [method, real] of this.originals) this.proto[method] = real;
    this.originals.clear();
    const disk = inlineDisk as unknown as Record<InlineMethod, SyncMethod>;
    for (const [method, real] of this.inlineOriginals) disk[method] = real;
    this.inlineOriginals.clear();
  }
}

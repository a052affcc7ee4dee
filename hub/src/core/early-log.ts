/**
 * A logger for what runs before fastify (and its logger) exists: the stores and the spool are opened first and
 * may log (an InfluxDB that does not answer, a spool recovered after a crash). It is a FastifyBaseLogger, the
 * one logger type of the hub, so they take fastify's logger and this one alike. Lines are kept until attach()
 * hands them to the real logger (which then gets every later line too), or written to stderr by toStderr()
 * when the hub fails to start.
 */
import type { FastifyBaseLogger } from 'fastify';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface EarlyLogger {
  logger: FastifyBaseLogger;
  /** Replays the kept lines into `log` and forwards every later one to it. */
  attach(log: FastifyBaseLogger): void;
  /** Writes the kept lines to stderr (the hub did not start). */
  toStderr(): void;
}

export function earlyLogger(): EarlyLogger {
  const kept: Array<{ level: Level; args: unknown[] }> = [];
  let target: FastifyBaseLogger | null = null;
  const at =
    (level: Level) =>
    (...args: unknown[]): void => {
      if (target) (target[level] as (...a: unknown[]) => void)(...args);
      else kept.push({ level, args });
    };
  const logger: FastifyBaseLogger = {
    level: 'info',
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: () => undefined,
    child: () => logger,
  };
  return {
    logger,
    attach(log) {
      target = log;
      for (const { level, args } of kept.splice(0)) (log[level] as (...a: unknown[]) => void)(...args);
    },
    toStderr() {
      for (const { level, args } of kept) {
        const msg = args.find((a) => typeof a === 'string') ?? '';
        process.stderr.write(`${level}: ${msg}\n`);
      }
    },
  };
}

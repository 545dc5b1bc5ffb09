import type { LoggerService } from '@nestjs/common';
import type { Level, Logger } from 'pino';

/** A stack trace as Nest's exception handlers pass it: `error(message, stack)`. */
const STACK = /\n\s*at /;

/**
 * Nest's Logger written through the application's pino logger: `new Logger('Auth').warn(...)`
 * becomes one JSON line with `context: "Auth"`. The context is the last optional parameter
 * (Nest appends it); an object or Error first becomes the line's fields (`err` for an Error),
 * and `error(message, stack)` from Nest's own handlers becomes an `err` with that stack. This
 * is what nestjs-pino's Logger did, which the gateway used for nothing else; each application
 * writes to its own logger (nestjs-pino kept one per process, the first created).
 */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  verbose(message: unknown, ...optional: unknown[]): void {
    this.write('trace', message, optional);
  }

  debug(message: unknown, ...optional: unknown[]): void {
    this.write('debug', message, optional);
  }

  log(message: unknown, ...optional: unknown[]): void {
    this.write('info', message, optional);
  }

  warn(message: unknown, ...optional: unknown[]): void {
    this.write('warn', message, optional);
  }

  error(message: unknown, ...optional: unknown[]): void {
    this.write('error', message, optional);
  }

  fatal(message: unknown, ...optional: unknown[]): void {
    this.write('fatal', message, optional);
  }

  private write(level: Level, message: unknown, optional: unknown[]): void {
    const fields: Record<string, unknown> = {};
    let params = optional;
    if (optional.length > 0) {
      fields.context = optional[optional.length - 1];
      params = optional.slice(0, -1);
    }
    const method: (...args: unknown[]) => void = this.logger[level];
    const log = (...args: unknown[]): void => method.apply(this.logger, args);
    if (typeof message === 'object' && message !== null) {
      if (message instanceof Error) {
        fields.err = message;
      } else {
        Object.assign(fields, message);
      }
      log(fields, ...params);
    } else if (
      level === 'error' &&
      typeof message === 'string' &&
      params.length === 1 &&
      typeof params[0] === 'string' &&
      STACK.test(params[0])
    ) {
      const err = new Error(message);
      err.stack = params[0];
      log({ ...fields, err });
    } else {
      log(fields, message, ...params);
    }
  }
}

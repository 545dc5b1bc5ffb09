import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import pino, { type DestinationStream, type Logger } from 'pino';
import { AppConfig } from '../config/app-config';

export const ROOT_LOGGER = Symbol('ROOT_LOGGER');
/**
 * The logger of the one line per request. Its fields are fixed and hold no secret (reqId is
 * sanitised, route is the template, sub is not secret), so it skips the redaction pass that
 * every other line gets: that pass was a twentieth of a request's CPU.
 */
export const REQUEST_LOGGER = Symbol('REQUEST_LOGGER');
/** Where log lines go: standard output unless the application is given another stream. */
export const LOG_DESTINATION = Symbol('LOG_DESTINATION');

// Whatever reaches a log record, these never do: tokens, passwords, lock tokens, values.
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["lock-token"]',
  'headers.authorization',
  'headers["lock-token"]',
  '*.password',
  '*.token',
  '*.value',
  '*.ticket',
];

/** Errors are logged by type, message, code and stack; never with the command's arguments. */
function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) {
    return { message: String(error) };
  }
  const { name, message, stack } = error;
  const code = (error as NodeJS.ErrnoException).code;
  return { type: name, message, ...(code ? { code } : {}), stack };
}

function loggerOptions(config: AppConfig): pino.LoggerOptions {
  return {
    level: config.log.level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeError },
  };
}

export function createRootLogger(config: AppConfig, destination?: DestinationStream): Logger {
  return pino(
    { ...loggerOptions(config), redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    destination ?? pino.destination(1),
  );
}

/** Writes where the root logger writes, without redaction (see REQUEST_LOGGER). */
function createRequestLogger(config: AppConfig, destination: DestinationStream): Logger {
  return pino(loggerOptions(config), destination);
}

/** The one stream both loggers write to. */
const LOG_STREAM = Symbol('LOG_STREAM');

/** A request id the gateway takes from a caller (and so every id it answers with). */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `X-Request-Id` when it is a sane token, else a fresh UUID. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

@Module({
  providers: [
    {
      provide: LOG_STREAM,
      inject: [{ token: LOG_DESTINATION, optional: true }],
      useFactory: (destination?: DestinationStream) => destination ?? pino.destination(1),
    },
    { provide: ROOT_LOGGER, inject: [AppConfig, LOG_STREAM], useFactory: createRootLogger },
    { provide: REQUEST_LOGGER, inject: [AppConfig, LOG_STREAM], useFactory: createRequestLogger },
  ],
  exports: [ROOT_LOGGER, REQUEST_LOGGER],
})
class RootLoggerModule {}

/**
 * The loggers of the application: the root logger, which Nest's Logger writes through
 * (NestPinoLogger, installed by app.factory.ts), and the logger of the one line per request,
 * written by the HTTP observability hook with its reqId. There is no per-request middleware: a
 * child logger per request and, through AsyncLocalStorage, a promise hook on every promise of
 * it (Node 20) cost about a sixth of a request's CPU (bench/RESULTS.md). A line logged while
 * handling a request is written by the root logger, without reqId.
 */
@Module({
  imports: [RootLoggerModule],
  exports: [RootLoggerModule],
})
export class LoggingModule {}

import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import pino, { type DestinationStream, type Logger } from 'pino';
import { AppConfig } from '../config/app-config';

export const ROOT_LOGGER = Symbol('ROOT_LOGGER');
/** Where log lines go: standard output unless the application is given another stream. */
export const LOG_DESTINATION = Symbol('LOG_DESTINATION');

// Whatever reaches a log record, these never do (API.md, Logs).
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

export function createRootLogger(config: AppConfig, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.log.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
    },
    destination ?? pino.destination(1),
  );
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `X-Request-Id` when it is a sane token, else a fresh UUID. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

@Module({
  providers: [
    {
      provide: ROOT_LOGGER,
      inject: [AppConfig, { token: LOG_DESTINATION, optional: true }],
      useFactory: createRootLogger,
    },
  ],
  exports: [ROOT_LOGGER],
})
class RootLoggerModule {}

/**
 * nestjs-pino as the one logger, bound to the request id so every line logged while handling a
 * request carries `reqId`. The one line per request is written by the HTTP observability hook.
 */
@Module({
  imports: [
    RootLoggerModule,
    LoggerModule.forRootAsync({
      imports: [RootLoggerModule],
      inject: [ROOT_LOGGER],
      useFactory: (logger: Logger) => ({
        pinoHttp: {
          logger,
          autoLogging: false,
          quietReqLogger: true,
          customAttributeKeys: { reqId: 'reqId' },
          genReqId: (request: IncomingMessage) =>
            (request as { id?: string }).id ?? requestIdFor(request),
        },
        // nestjs-pino logs nothing on platform-fastify 12 with its default route.
        forRoutes: [{ path: '*', method: RequestMethod.ALL }],
      }),
    }),
  ],
  exports: [RootLoggerModule],
})
export class LoggingModule {}

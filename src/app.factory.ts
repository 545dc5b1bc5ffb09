import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Logger } from 'nestjs-pino';
import type { Logger as PinoLogger } from 'pino';
import { AppModule, type AppOptions } from './app.module';
import type { AppConfig } from './config/app-config';
import { installBodyParsers } from './common/body-parsers';
import { AppValidationPipe } from './common/validation';
import { AppError } from './errors/app-error';
import { ProblemFilter } from './errors/problem.filter';
import { GatewayMetrics } from './observability/gateway-metrics';
import { installHttpObservability } from './observability/http-observability';
import { REQUEST_LOGGER, requestIdFor } from './observability/logging.module';
import { serveOpenApi } from './openapi/openapi';

/** Percent-encoding can triple a name's bytes; the router must accept the longest valid one. */
function maxParamLength(config: AppConfig): number {
  return config.limits.maxKeyBytes * 3 + 16;
}

/**
 * Builds the initialised application exactly as production runs it (main.ts, the dev launcher
 * and the tests all come through here), without listening.
 */
export async function createApp(
  config: AppConfig,
  options: AppOptions = {},
): Promise<NestFastifyApplication> {
  const { server } = config;
  const problems = new ProblemFilter(config);
  const adapter = new FastifyAdapter({
    // Errors Fastify answers before routing (a URL that is not valid percent-encoded UTF-8).
    frameworkErrors: (_error: Error, request: FastifyRequest, reply: FastifyReply) =>
      problems.send(
        new AppError('BAD_REQUEST', 'The URL is malformed (invalid percent-encoding or UTF-8).'),
        request,
        reply,
      ),
    bodyLimit: server.bodyLimitBytes,
    genReqId: requestIdFor,
    requestIdHeader: false,
    return503OnClosing: true,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { maxParamLength: maxParamLength(config) },
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, options),
    adapter,
    {
      bufferLogs: true,
      abortOnError: false,
      // Bodies are JSON or, where a route says so, raw octets (installBodyParsers).
      bodyParser: false,
    },
  );
  app.useLogger(app.get(Logger));
  const fastify = app.getHttpAdapter().getInstance();
  installHttpObservability(fastify, app.get<PinoLogger>(REQUEST_LOGGER), app.get(GatewayMetrics));
  installBodyParsers(fastify, config);
  app.getHttpServer().headersTimeout = server.headersTimeoutMs;
  app.useGlobalPipes(new AppValidationPipe());
  serveOpenApi(app);
  await app.init();
  return app;
}

import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import type { Logger as PinoLogger } from 'pino';
import { AppModule, type AppOptions } from './app.module';
import type { AppConfig } from './config/app-config';
import { createValidationPipe } from './common/validation';
import { GatewayMetrics } from './observability/gateway-metrics';
import { installHttpObservability } from './observability/http-observability';
import { ROOT_LOGGER, requestIdFor } from './observability/logging.module';
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
  const adapter = new FastifyAdapter({
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
    },
  );
  app.useLogger(app.get(Logger));
  const fastify = app.getHttpAdapter().getInstance();
  installHttpObservability(fastify, app.get<PinoLogger>(ROOT_LOGGER), app.get(GatewayMetrics));
  fastify.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: server.bodyLimitBytes },
    (_request, body, done) => done(null, body),
  );
  app.getHttpServer().headersTimeout = server.headersTimeoutMs;
  app.useGlobalPipes(createValidationPipe());
  serveOpenApi(app);
  await app.init();
  return app;
}

import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { AppModule, type AppOptions } from './app.module';
import { RequestGuard } from './auth/request-guard';
import type { AppConfig } from './config/app-config';
import { installBodyParsers } from './common/body-parsers';
import { installCors } from './common/cors';
import { AppValidationPipe } from './common/validation';
import { AppError } from './errors/app-error';
import { ProblemFilter } from './errors/problem.filter';
import { GatewayMetrics } from './observability/gateway-metrics';
import { installHttpObservability } from './observability/http-observability';
import { REQUEST_LOGGER, ROOT_LOGGER, requestIdFor } from './observability/logging.module';
import { NestPinoLogger } from './observability/nest-logger';
import { serveOpenApi } from './openapi/openapi';

/** How often Node looks for sockets past headersTimeoutMs or requestTimeoutMs. */
const CONNECTIONS_CHECK_MS = 500;

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
  const { trustedProxies } = config.rateLimits;
  const adapter = new FastifyAdapter({
    // Errors Fastify answers before routing (a URL that is not valid percent-encoded UTF-8).
    // No onRequest hook runs for them, so the request id is echoed here.
    frameworkErrors: (_error: Error, request: FastifyRequest, reply: FastifyReply) =>
      problems.send(
        new AppError('BAD_REQUEST', 'The URL is malformed (invalid percent-encoding or UTF-8).'),
        request,
        reply.header('x-request-id', request.id),
      ),
    bodyLimit: server.bodyLimitBytes,
    genReqId: requestIdFor,
    requestIdHeader: false,
    return503OnClosing: true,
    // request.ip is the client behind a trusted proxy (X-Forwarded-For), else the peer.
    trustProxy: trustedProxies.length > 0 ? trustedProxies : false,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    requestTimeout: server.requestTimeoutMs,
    http: {
      headersTimeout: server.headersTimeoutMs,
      requestTimeout: server.requestTimeoutMs,
      // Node enforces both timeouts only when it checks its connections, every 30 s by
      // default: a socket that sends a header line every few seconds stayed open 24 s past a
      // 10 s headersTimeout. Checking twice a second closes it within the timeout + 1 s.
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
    },
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
  app.useLogger(new NestPinoLogger(app.get<PinoLogger>(ROOT_LOGGER)));
  const fastify = app.getHttpAdapter().getInstance();
  installHttpObservability(fastify, app.get<PinoLogger>(REQUEST_LOGGER), app.get(GatewayMetrics));
  // Before the request guard: preflights are answered here, refusals keep the CORS headers.
  installCors(fastify, server.cors);
  // Data answers are never to be sniffed as another type nor kept by a cache on the way
  // (refusals included: this runs before the request guard).
  fastify.addHook('onRequest', (request, reply, done) => {
    if (request.url.startsWith('/redis')) {
      void reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-store');
    }
    done();
  });
  app.get(RequestGuard).install(fastify, app);
  installBodyParsers(fastify, config);
  app.useGlobalPipes(new AppValidationPipe());
  serveOpenApi(app);
  await app.init();
  return app;
}

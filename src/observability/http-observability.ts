import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal';
import type { GatewayMetrics } from './gateway-metrics';

/**
 * Fastify hooks that see every response, including the ones guards, the router and the body
 * parser answer before any Nest interceptor runs: the `X-Request-Id` echo, the HTTP metrics by
 * route template, and the one JSON log line per request.
 */
export function installHttpObservability(
  fastify: FastifyInstance,
  logger: Logger,
  metrics: GatewayMetrics,
): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    // pino-http reads the id from the raw request, so that it matches this one.
    (request.raw as { id?: string }).id = String(request.id);
    void reply.header('x-request-id', request.id);
    done();
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const durationMs = Math.round(reply.elapsedTime * 1000) / 1000;
    metrics.recordHttp(request.method, route, status, durationMs / 1000);
    const sub = (request as FastifyRequest & { user?: Principal }).user?.sub;
    const level = status >= 500 ? 'error' : 'info';
    logger[level](
      { reqId: String(request.id), method: request.method, route, status, durationMs, sub },
      'request completed',
    );
    done();
  });
}

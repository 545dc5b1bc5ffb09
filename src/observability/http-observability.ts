import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayMetrics } from './gateway-metrics';

/** Fields a route adds to its request's log line: names the gateway knows, never caller data. */
export type LogFields = Record<string, string | number | string[]>;

declare module 'fastify' {
  interface FastifyRequest {
    logFields?: LogFields;
  }
}

/** The HTTP metrics by route template and the one JSON log line of a finished request. */
export function recordRequest(
  logger: Logger,
  metrics: GatewayMetrics,
  request: FastifyRequest,
  reply: FastifyReply,
  status = reply.statusCode,
): void {
  const route = request.routeOptions.url ?? 'unmatched';
  const durationMs = Math.round(reply.elapsedTime * 1000) / 1000;
  metrics.recordHttp(request.method, route, status, durationMs / 1000);
  const sub = request.user?.sub;
  // A 503 or 504 is an operating condition (Redis down, slow, not ready yet), told once per
  // request at warn; any other 5xx is the gateway's own fault.
  const level = status === 503 || status === 504 ? 'warn' : status >= 500 ? 'error' : 'info';
  logger[level](
    {
      reqId: String(request.id),
      method: request.method,
      route,
      status,
      durationMs,
      sub,
      ...request.logFields,
    },
    'request completed',
  );
}

/**
 * Fastify hooks that see every response, including the ones guards, the router and the body
 * parser answer before any Nest interceptor runs: the `X-Request-Id` echo, the HTTP metrics by
 * route template, and the one JSON log line per request. A response the handler takes over
 * (an SSE stream) skips onResponse: its owner calls `recordRequest` when it ends.
 */
export function installHttpObservability(
  fastify: FastifyInstance,
  logger: Logger,
  metrics: GatewayMetrics,
): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    recordRequest(logger, metrics, request, reply);
    done();
  });
}

import fastifyCors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import type { CorsConfig } from '../config/app-config';

/** Request headers a page may send: the bearer token, JSON or octets, and the API's own. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Idempotency-Key',
  'Last-Event-ID',
  'Lock-Token',
  'X-Request-Id',
];

/** Response headers a page may read besides the safelisted ones. */
export const CORS_EXPOSED_HEADERS = [
  'Retry-After',
  'WWW-Authenticate',
  'X-Cache',
  'X-Request-Id',
  'X-TTL',
];

export const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];

/** How long a browser may reuse a preflight answer (Chromium caps it at 2 h). */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * Lets pages on the configured origins call the gateway (README.md, "Browsers"). It must
 * be installed before any other onRequest hook: it answers preflights itself (a preflight
 * carries no token, and must never reach the request guard), and it sets the headers before the
 * guard can refuse, so that a 401, 403 or 429 stays readable by the page. SSE responses keep
 * them too: the stream is written with the reply's headers (src/sse/sse-registry.ts).
 * Credentials mode is off: tokens and tickets travel in `Authorization` and `?ticket=`, never
 * in cookies. An origin not on the list gets no CORS header at all, and its preflight a 404.
 */
export function installCors(fastify: FastifyInstance, config: CorsConfig): void {
  if (config.origins.length === 0) {
    return;
  }
  const allowed = new Set(config.origins);
  void fastify.register(fastifyCors, {
    // A function (not the list itself): with a list, the plugin still sends the exposed and
    // preflight headers to an origin it refuses.
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: CORS_METHODS,
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    credentials: false,
    maxAge: PREFLIGHT_MAX_AGE_S,
    // An OPTIONS from an allowed origin without Access-Control-Request-Method is answered like
    // a preflight rather than with the plugin's text/plain 400 (every refusal is problem+json).
    strictPreflight: false,
    hook: 'onRequest',
  });
}

import { TestApp, withApp, type Response } from '../support/app';
import { expectProblem } from '../support/problems';
import { SseClient, channelEvents } from '../support/sse';

/**
 * CORS (server.cors.origins): pages on an allowed origin get their preflights answered before
 * any authentication, can read every answer (refusals included: a page that cannot read a 401
 * cannot tell an expired token from a network failure) and can open SSE streams with a ticket;
 * any other origin, and every origin when the list is empty (the default), gets no CORS header.
 */
const PAGE = 'http://127.0.0.1:8095';
const OTHER_PAGE = 'https://app.example.com';
const STRANGER = 'http://127.0.0.1:8096';

/** Every CORS response header an answer carries (Vary aside). */
const corsHeaders = (response: Pick<Response, 'headers'>) =>
  Object.keys(response.headers).filter((name) => name.startsWith('access-control-'));

const preflight = (t: TestApp, url: string, origin: string, method = 'PUT', headers = '') =>
  t.app.inject({
    method: 'OPTIONS',
    url,
    headers: {
      origin,
      'access-control-request-method': method,
      ...(headers ? { 'access-control-request-headers': headers } : {}),
    },
  });

const listOf = (value: unknown) =>
  String(value)
    .split(',')
    .map((item) => item.trim().toLowerCase());

/** A readable answer for the page: its origin allowed, the API's headers exposed, no cookies. */
function expectReadableBy(response: Response, origin: string): void {
  expect(response.headers['access-control-allow-origin']).toBe(origin);
  expect(listOf(response.headers['access-control-expose-headers'])).toEqual(
    expect.arrayContaining(['x-request-id', 'retry-after', 'x-ttl', 'x-cache', 'www-authenticate']),
  );
  expect(response.headers['access-control-allow-credentials']).toBeUndefined();
  expect(listOf(response.headers.vary)).toContain('origin');
}

describe('CORS with server.cors.origins set', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { server: { cors: { origins: [PAGE, OTHER_PAGE] } } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers a preflight from an allowed origin with 204, before and without authentication', async () => {
    for (const origin of [PAGE, OTHER_PAGE]) {
      const response = await preflight(
        t,
        '/redis/kv/some%20key',
        origin,
        'PUT',
        'authorization,content-type',
      );
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe('');
      expect(response.headers['access-control-allow-origin']).toBe(origin);
      expect(listOf(response.headers['access-control-allow-methods'])).toEqual(
        expect.arrayContaining(['get', 'head', 'post', 'put', 'delete']),
      );
      expect(listOf(response.headers['access-control-allow-headers'])).toEqual(
        expect.arrayContaining([
          'authorization',
          'content-type',
          'last-event-id',
          'lock-token',
          'idempotency-key',
          'x-request-id',
        ]),
      );
      expect(response.headers['access-control-max-age']).toBe('600');
      expect(response.headers['access-control-allow-credentials']).toBeUndefined();
      expect(response.headers['www-authenticate']).toBeUndefined();
    }
    // Every route the API has, the SSE ones and the tickets included.
    for (const url of ['/redis/tickets', channelEvents('news'), '/redis/locks/l', '/readyz']) {
      const response = await preflight(t, url, PAGE, 'POST', 'authorization');
      expect({ url, status: response.statusCode }).toEqual({ url, status: 204 });
      expect(response.headers['access-control-allow-origin']).toBe(PAGE);
    }
  });

  it('an OPTIONS from an allowed origin that is not a preflight is answered alike, not with text/plain', async () => {
    const response = await t.app.inject({
      method: 'OPTIONS',
      url: '/redis/kv/a',
      headers: { origin: PAGE },
    });
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe(PAGE);
  });

  it('a preflight from an origin not on the list gets a 404 problem and no CORS header', async () => {
    for (const origin of [STRANGER, 'http://127.0.0.1:8095.evil.example', 'null', `${PAGE}/`]) {
      const response = await preflight(t, '/redis/kv/a', origin, 'PUT', 'authorization');
      expectProblem(response, 404, 'NOT_FOUND');
      expect({ origin, cors: corsHeaders(response) }).toEqual({ origin, cors: [] });
    }
    const noOrigin = await t.app.inject({ method: 'OPTIONS', url: '/redis/kv/a' });
    expectProblem(noOrigin, 404, 'NOT_FOUND');
    expect(corsHeaders(noOrigin)).toEqual([]);
  });

  it('a request from an allowed origin is answered with its origin and the exposed headers', async () => {
    const put = await t.call('PUT', '/redis/kv/c1', {
      token: t.tokens.write,
      body: { value: 'v', ttl: 60 },
      headers: { origin: PAGE },
    });
    expect(put.statusCode).toBe(200);
    expectReadableBy(put, PAGE);
    const get = await t.call('GET', '/redis/kv/c1', {
      token: t.tokens.read,
      headers: { origin: OTHER_PAGE, accept: 'application/octet-stream' },
    });
    expect(get.statusCode).toBe(200);
    expect(get.body).toBe('v');
    expect(Number(get.headers['x-ttl'])).toBeGreaterThan(0);
    expectReadableBy(get, OTHER_PAGE);
    const health = await t.call('GET', '/healthz', { headers: { origin: PAGE } });
    expect(health.statusCode).toBe(200);
    expectReadableBy(health, PAGE);
  });

  it('a request from another origin, or without Origin, is served without any CORS header', async () => {
    for (const headers of [{ origin: STRANGER }, {}]) {
      const response = await t.call('GET', '/redis/kv/c1', { token: t.tokens.read, headers });
      expect(response.statusCode).toBe(200);
      expect(corsHeaders(response)).toEqual([]);
    }
  });

  it('refusals to an allowed origin stay readable: 401, 403, 400, 404, 415', async () => {
    const headers = { origin: PAGE };
    const noToken = await t.call('GET', '/redis/kv/c1', { headers });
    expectProblem(noToken, 401, 'INVALID_TOKEN');
    expectReadableBy(noToken, PAGE);
    const badToken = await t.call('GET', '/redis/kv/c1', { token: 'not.a.jwt', headers });
    expectProblem(badToken, 401, 'INVALID_TOKEN');
    expectReadableBy(badToken, PAGE);
    const scope = await t.call('PUT', '/redis/kv/c1', {
      token: t.tokens.read,
      body: { value: 'w' },
      headers,
    });
    expectProblem(scope, 403, 'INSUFFICIENT_SCOPE');
    expectReadableBy(scope, PAGE);
    const invalid = await t.call('PUT', '/redis/kv/c1', {
      token: t.tokens.write,
      body: { value: 'w', ttl: -1 },
      headers,
    });
    expectProblem(invalid, 400, 'VALIDATION_FAILED');
    expectReadableBy(invalid, PAGE);
    const unknown = await t.call('GET', '/redis/nothing-here', { token: t.tokens.read, headers });
    expectProblem(unknown, 404, 'NOT_FOUND');
    expectReadableBy(unknown, PAGE);
    const mediaType = await t.call('POST', '/redis/tickets', {
      token: t.tokens.read,
      body: 'path=/x',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectProblem(mediaType, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectReadableBy(mediaType, PAGE);
    // Nothing of the refused writes reached Redis.
    expect(await t.redis.get(`${t.prefix}c1`)).toBe('v');
  });

  it('a 429 to an allowed origin is readable, Retry-After included', async () => {
    await withApp(
      {
        issuer: t.issuer,
        config: {
          server: { cors: { origins: [PAGE] } },
          rateLimits: { requestsPerSecond: 1, burst: 2 },
        },
      },
      async (limited) => {
        const results: Response[] = [];
        for (let i = 0; i < 3; i += 1) {
          results.push(
            await limited.call('GET', '/redis/kv/r', {
              token: limited.tokens.read,
              headers: { origin: PAGE },
            }),
          );
        }
        expectProblem(results[2], 429, 'RATE_LIMITED');
        expect(results[2].headers['retry-after']).toBe('1');
        expectReadableBy(results[2], PAGE);
      },
    );
  });

  it('an SSE stream opened with a ticket from an allowed origin carries the CORS headers', async () => {
    const path = channelEvents('cors:news');
    const issued = await t.call('POST', '/redis/tickets', {
      token: t.tokens.read,
      body: { path },
      headers: { origin: PAGE },
    });
    expect(issued.statusCode).toBe(200);
    expectReadableBy(issued, PAGE);
    const { ticket } = issued.json<{ ticket: string }>();
    const client = await SseClient.open(
      `${t.baseUrl}${path}?ticket=${encodeURIComponent(ticket)}`,
      { headers: { origin: PAGE } },
    );
    try {
      expect(client.status).toBe(200);
      expect(client.headers['content-type']).toMatch(/^text\/event-stream/);
      expectReadableBy(client as unknown as Response, PAGE);
      await t.redis.publish(`${t.prefix}cors:news`, 'hello');
      await client.until((c) => c.named('message').length === 1);
    } finally {
      client.close();
    }
    // A refused stream (the ticket is single-use) is readable too: the page sees the 401.
    const again = await SseClient.open(`${t.baseUrl}${path}?ticket=${encodeURIComponent(ticket)}`, {
      headers: { origin: PAGE },
    });
    expect(again.status).toBe(401);
    expect(again.headers['access-control-allow-origin']).toBe(PAGE);
  });
});

describe('CORS by default (server.cors.origins empty)', () => {
  it('sends no CORS header to anyone, and a preflight is a 404', async () => {
    await withApp({}, async (t) => {
      expect(t.config.server.cors.origins).toEqual([]);
      const response = await preflight(t, '/redis/kv/a', PAGE, 'PUT', 'authorization');
      expectProblem(response, 404, 'NOT_FOUND');
      expect(corsHeaders(response)).toEqual([]);
      for (const token of [t.tokens.read, undefined]) {
        const get = await t.call('GET', '/redis/kv/a', { token, headers: { origin: PAGE } });
        expect(get.statusCode).toBe(token ? 404 : 401);
        expect(corsHeaders(get)).toEqual([]);
      }
    });
  });
});

import { TestApp } from '../support/app';
import { metricValue } from '../support/metrics';
import { eventually } from '../support/ports';
import { RedisServer } from '../support/redis';

describe('health, status and metrics', () => {
  let redis: RedisServer;
  let t: TestApp;

  beforeAll(async () => {
    redis = await RedisServer.start();
    t = await TestApp.create({ redisUrl: redis.url });
  });

  afterAll(async () => {
    await t.close();
    await redis.stop();
  });

  it('GET /healthz and /readyz answer without a token', async () => {
    const live = await t.call('GET', '/healthz');
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
    const ready = await t.call('GET', '/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
  });

  it('GET /redis/status reports Redis and the gateway (redis:read)', async () => {
    expect((await t.call('GET', '/redis/status')).statusCode).toBe(401);
    expect((await t.call('GET', '/redis/status', { token: t.tokens.write })).statusCode).toBe(403);
    const response = await t.call('GET', '/redis/status', { token: t.tokens.read });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({
      status: 'up',
      redis: { version: expect.stringMatching(/^\d+\.\d+/), mode: 'standalone', role: 'master' },
      gateway: { version: '0.1.0', sseSubscribers: 0 },
    });
    expect(body.latencyMs).toBeGreaterThanOrEqual(0);
    expect(body.redis.usedMemoryBytes).toBeGreaterThan(0);
    expect(body.redis.connectedClients).toBeGreaterThanOrEqual(1);
    expect(typeof body.redis.keyspace).toBe('object');
    expect(body.redis.nodes).toEqual([{ address: `127.0.0.1:${redis.port}`, role: 'master' }]);
    expect(body.gateway.uptimeS).toBeGreaterThanOrEqual(0);
  });

  it('/metrics counts requests by route template, never by raw path', async () => {
    await t.call('GET', '/redis/kv/metrics-miss-a', { token: t.tokens.read });
    await t.call('GET', '/redis/kv/metrics-miss-b', { token: t.tokens.read });
    await t.call('GET', '/redis/kv/metrics-unauthenticated');
    const response = await t.call('GET', '/metrics');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    const text = response.body;
    expect(
      metricValue(text, 'http_requests_total', { route: '/redis/kv/:key', status: '404' }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      metricValue(text, 'http_requests_total', { route: '/redis/kv/:key', status: '401' }),
    ).toBeGreaterThanOrEqual(1);
    expect(text).toContain('http_request_duration_seconds_bucket{');
    expect(text).not.toContain('metrics-miss-a');
    expect(
      metricValue(text, 'redis_gateway_operations_total', { operation: 'kv.get', result: 'miss' }),
    ).toBeGreaterThanOrEqual(2);
    expect(metricValue(text, 'redis_gateway_cache_misses_total')).toBeGreaterThanOrEqual(2);
    expect(metricValue(text, 'redis_gateway_redis_up')).toBe(1);
    // Two command connections: one for writes, one for reads (RedisManager).
    expect(metricValue(text, 'redis_gateway_redis_connections', { role: 'command' })).toBe(2);
    expect(text).toContain('# TYPE redis_gateway_sse_clients gauge');
    expect(
      metricValue(text, 'redis_gateway_auth_failures_total', { reason: 'missing' }),
    ).toBeGreaterThanOrEqual(1);
    expect(text).toContain('process_resident_memory_bytes');
  });

  it('counts hits and operation results', async () => {
    await t.call('PUT', '/redis/kv/metrics-hit', { token: t.tokens.write, body: { value: 'v' } });
    const before = (await t.call('GET', '/metrics')).body;
    await t.call('GET', '/redis/kv/metrics-hit', { token: t.tokens.read });
    const after = (await t.call('GET', '/metrics')).body;
    expect(metricValue(after, 'redis_gateway_cache_hits_total')).toBe(
      metricValue(before, 'redis_gateway_cache_hits_total') + 1,
    );
    expect(
      metricValue(after, 'redis_gateway_operations_total', { operation: 'kv.get', result: 'ok' }),
    ).toBe(
      metricValue(before, 'redis_gateway_operations_total', { operation: 'kv.get', result: 'ok' }) +
        1,
    );
  });

  it('with Redis down: /readyz 503, /healthz 200, /redis/status 503 with the same shape, redis_up 0', async () => {
    await redis.kill();
    try {
      await eventually(async () => expect((await t.call('GET', '/readyz')).statusCode).toBe(503));
      expect((await t.call('GET', '/readyz')).json()).toEqual({ status: 'not_ready' });
      expect((await t.call('GET', '/healthz')).statusCode).toBe(200);
      const status = await t.call('GET', '/redis/status', { token: t.tokens.read });
      expect(status.statusCode).toBe(503);
      expect(status.json()).toMatchObject({
        status: 'down',
        latencyMs: null,
        redis: { mode: 'standalone', version: null, keyspace: null, nodes: [] },
        gateway: { version: '0.1.0' },
      });
      // /readyz turns 503 when the first command connection drops; the second one may notice
      // its close a moment later.
      await eventually(async () => {
        const metrics = (await t.call('GET', '/metrics')).body;
        expect(metricValue(metrics, 'redis_gateway_redis_up')).toBe(0);
        expect(metricValue(metrics, 'redis_gateway_redis_connections', { role: 'command' })).toBe(
          0,
        );
      });
    } finally {
      await redis.launch();
    }
    await eventually(
      async () => expect((await t.call('GET', '/readyz')).statusCode).toBe(200),
      5000,
    );
  });
});

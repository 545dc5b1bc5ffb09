import { LocalIssuer } from '../../src/dev/local-issuer';
import { eventually } from '../support/ports';
import { RedisServer } from '../support/redis';
import { ServiceProcess } from '../support/service-process';

/** The built service as a process: start-up, configuration errors, logs and SIGTERM. */
describe('the service process (dist/main.js)', () => {
  let issuer: LocalIssuer;
  let redis: RedisServer;

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis.stop();
    await issuer.close();
  });

  function serviceEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'proc:',
      OIDC_ISSUER: issuer.url,
      OIDC_AUDIENCE: issuer.audience,
      ...extra,
    };
  }

  it('stops at start-up on a wrong setting: exit 1, one line per problem, no stack, no value', async () => {
    const service = await ServiceProcess.start({
      PORT: 'not-a-port',
      REDIS_MODE: 'ring',
      REDIS_PASSWORD: 'hunter2-secret',
      OIDC_AUDIENCE: 'x',
    });
    const { code } = await service.exited;
    expect(code).toBe(1);
    expect(service.stderr).toContain('redis.mode: must be one of: standalone, sentinel, cluster');
    expect(service.stderr).toContain('auth.issuer: required (OIDC_ISSUER)');
    expect(service.stderr).not.toMatch(/^\s+at /m);
    expect(service.stderr).not.toContain('hunter2-secret');
    expect(service.stderr).not.toContain('ring');
  });

  it('logs one JSON line per request with the fields of README.md, Observability, and never the token', async () => {
    const service = await ServiceProcess.start(serviceEnv());
    try {
      await service.listening();
      const token = await issuer.token({});
      const response = await fetch(`${service.baseUrl}/redis/kv/some%20key`, {
        headers: { authorization: `Bearer ${token}`, 'x-request-id': 'trace-42' },
      });
      expect(response.status).toBe(404);
      expect(response.headers.get('x-request-id')).toBe('trace-42');
      const inUrl = await fetch(`${service.baseUrl}/redis/kv/x?access_token=${token}`, {
        headers: { 'x-request-id': 'trace-43' },
      });
      expect(inUrl.status).toBe(401);

      // The line is written after the response; it reaches this process through a pipe.
      const completed = (reqId: string) =>
        service.logLines().find((line) => line.reqId === reqId && line.msg === 'request completed');
      await eventually(() => expect(completed('trace-43')).toBeDefined());
      const request = completed('trace-42');
      expect(completed('trace-43')).toMatchObject({ status: 401, route: '/redis/kv/:key' });
      expect(request).toMatchObject({
        level: 'info',
        method: 'GET',
        route: '/redis/kv/:key',
        status: 404,
        sub: 'local-client',
      });
      expect(typeof request?.time).toBe('string');
      expect(typeof request?.durationMs).toBe('number');
      expect(service.stdout).not.toContain(token);
      expect(service.stdout).not.toContain(token.split('.')[2]);
    } finally {
      await service.stop();
    }
  });

  it('on SIGTERM finishes in-flight requests, closes Redis and exits 0 (R-18)', async () => {
    const service = await ServiceProcess.start(serviceEnv());
    try {
      await stopsGracefully(service);
    } finally {
      await service.stop();
    }
  });

  async function stopsGracefully(service: ServiceProcess): Promise<void> {
    await service.listening();
    const token = await issuer.token({});
    const control = redis.client();
    const gatewayClients = async () =>
      String(await control.call('CLIENT', 'LIST'))
        .split('\n')
        .filter((line) => line.includes('name=redis-gateway')).length;
    // The command connections (one for writes, one for reads) and the pub/sub subscriber.
    await eventually(async () => expect(await gatewayClients()).toBe(3));

    // The token is verified (keys fetched, cached) before the stall, so the PUT below reaches
    // its Redis call at once: a request still being authenticated when the signal arrives would
    // rightly be refused with 503 as the server closes, and a busy machine makes that likely.
    const warm = await fetch(`${service.baseUrl}/redis/kv/warm`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(warm.status).toBe(404);
    // Redis stalls for 800 ms (under the 1 s command timeout), so this request is in flight
    // when the signal arrives.
    const stall = redis.client();
    void stall.call('DEBUG', 'SLEEP', '0.8').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const inFlight = fetch(`${service.baseUrl}/redis/kv/slow`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'finished' }),
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    service.child.kill('SIGTERM');

    const response = await inFlight;
    expect(response.status).toBe(200);
    const { code, signal } = await service.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(await control.get('proc:slow')).toBe('finished');
    expect(await gatewayClients()).toBe(0);
    await expect(fetch(`${service.baseUrl}/healthz`)).rejects.toThrow();
  }
});

/**
 * The lock endpoints of README.md (Distributed locks), one by one: success, and each error
 * status (400 with nothing written, 401, 403 scope and key pattern, 404, 409), against the
 * suite's real Redis with real tokens. The failure and safety cases (L-1 … L-12, quorum,
 * delayed restart, fencing) are in locks-reliability.e2e-spec.ts.
 */
import { performance } from 'node:perf_hooks';
import { TestApp } from '../support/app';
import { lockPath, type Grant } from '../support/locks';
import { expectProblem, expectScopeGuarded } from '../support/problems';

const MAX_TTL_MS = 60000;
const at = lockPath;

describe('distributed locks API', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      // The suite's Redis was started moments ago without persistence: with the delayed
      // restart on (the default) it would grant nothing for maxTtlMs. The reliability suite
      // covers that rule; here it is off.
      config: {
        locks: { maxTtlMs: MAX_TTL_MS, delayedRestartMs: 0 },
        limits: { maxBlockMs: 2000 },
      },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  const acquire = (name: string, body: unknown, token = t.tokens.write) =>
    t.call('POST', at(name), { token, body });
  const extend = (name: string, body: unknown, token = t.tokens.write) =>
    t.call('POST', `${at(name)}/extend`, { token, body });
  const release = (name: string, lockToken: string | undefined, token = t.tokens.write) =>
    t.call('DELETE', at(name), {
      token,
      headers: lockToken === undefined ? {} : { 'lock-token': lockToken },
    });
  const status = (name: string, token = t.tokens.read) => t.call('GET', at(name), { token });
  const lockKey = (name: string) => `${t.prefix}__gw:{lock:${name}}`;
  const granted = async (name: string, ttlMs = 10000): Promise<Grant> => {
    const response = await acquire(name, { ttlMs });
    expect(response.statusCode).toBe(201);
    return response.json<Grant>();
  };
  /** The keys (lock and fencing counter) one name's lock operations left in Redis. */
  const lockKeys = async (name: string) =>
    (await t.storedKeys()).filter((key) => key.startsWith(`__gw:{lock:${name}}`));

  describe('POST /redis/locks/{name} (acquire)', () => {
    it('grants a lease with a secret token and a fencing token, stored under __gw:', async () => {
      const started = Date.now();
      const response = await acquire('jobs:report', { ttlMs: 5000 });
      expect(response.statusCode).toBe(201);
      const grant = response.json<Grant>();
      expect(Object.keys(grant).sort()).toEqual([
        'expiresAt',
        'fencingToken',
        'name',
        'token',
        'ttlMs',
      ]);
      expect(grant.name).toBe('jobs:report');
      expect(grant.token).toMatch(/^[0-9a-f]{32}$/);
      expect(Number.isSafeInteger(grant.fencingToken)).toBe(true);
      // The counter starts from the clock (ms since the epoch * 1000).
      expect(grant.fencingToken).toBeGreaterThan(started * 1000);
      // 5000 minus the drift allowance (1 % + 2 ms) and the time the grant took.
      expect(grant.ttlMs).toBeGreaterThan(4800);
      expect(grant.ttlMs).toBeLessThanOrEqual(4948);
      const expiresAt = Date.parse(grant.expiresAt);
      expect(expiresAt).toBeGreaterThan(started + 4800);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + 5000);

      const stored = await t.redis.get(lockKey('jobs:report'));
      expect(stored).not.toBeNull();
      // Redis holds a digest of the owner, never the token itself.
      expect(stored).not.toContain(grant.token);
      const pttl = await t.redis.pttl(lockKey('jobs:report'));
      expect(pttl).toBeGreaterThan(4800);
      expect(pttl).toBeLessThanOrEqual(5000);
      expect(Number(await t.redis.get(`${lockKey('jobs:report')}:fence`))).toBe(grant.fencingToken);
      expect(await lockKeys('jobs:report')).toEqual([
        '__gw:{lock:jobs:report}',
        '__gw:{lock:jobs:report}:fence',
      ]);
      expect(await release('jobs:report', grant.token)).toMatchObject({ statusCode: 204 });
    });

    it('answers 409 LOCK_HELD with Retry-After from the holder’s lease, and changes nothing', async () => {
      const holder = await granted('held', 4500);
      const pttl = await t.redis.pttl(lockKey('held'));
      const response = await acquire('held', { ttlMs: 1000 });
      expectProblem(response, 409, 'LOCK_HELD');
      expect(response.headers['retry-after']).toBe('5');
      expect(await t.redis.pttl(lockKey('held'))).toBeLessThanOrEqual(pttl);
      expect(await release('held', holder.token)).toMatchObject({ statusCode: 204 });
    });

    it('waits up to waitMs and answers 409 when the lock stays held', async () => {
      const holder = await granted('busy');
      const started = performance.now();
      const response = await acquire('busy', { ttlMs: 1000, waitMs: 400, retryDelayMs: 50 });
      const elapsed = performance.now() - started;
      expectProblem(response, 409, 'LOCK_HELD');
      expect(elapsed).toBeGreaterThanOrEqual(395);
      expect(elapsed).toBeLessThan(400 + 200);
      await release('busy', holder.token);
    });

    it('stops trying once it has answered: no attempt reaches Redis after waitMs', async () => {
      const holder = await granted('given-up');
      const attempts = async () => {
        const text = (await t.call('GET', '/metrics')).body;
        return text
          .split('\n')
          .filter((line) =>
            line.startsWith('redis_gateway_operations_total{operation="locks.acquire"'),
          )
          .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
      };
      expectProblem(
        await acquire('given-up', { ttlMs: 1000, waitMs: 200, retryDelayMs: 10 }),
        409,
        'LOCK_HELD',
      );
      await new Promise((resolve) => setTimeout(resolve, 50)); // an attempt in flight lands
      const after = await attempts();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await attempts()).toBe(after);
      await release('given-up', holder.token);
    });

    it('a waitMs shorter than a round trip still makes one whole attempt', async () => {
      const response = await acquire('quick', { ttlMs: 1000, waitMs: 1 });
      expect(response.statusCode).toBe(201);
      await release('quick', response.json<Grant>().token);
    });

    it('a waiting acquisition gets the lock once its holder releases it', async () => {
      const holder = await granted('handover');
      const waiting = acquire('handover', { ttlMs: 1000, waitMs: 2000, retryDelayMs: 20 });
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect((await release('handover', holder.token)).statusCode).toBe(204);
      const response = await waiting;
      expect(response.statusCode).toBe(201);
      expect(response.json<Grant>().fencingToken).toBeGreaterThan(holder.fencingToken);
      await release('handover', response.json<Grant>().token);
    });

    it('issues a larger fencing token on every grant of the same name', async () => {
      const tokens: number[] = [];
      for (let i = 0; i < 5; i++) {
        const grant = await granted('fenced');
        tokens.push(grant.fencingToken);
        await release('fenced', grant.token);
      }
      for (let i = 1; i < tokens.length; i++) {
        expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
      }
    });

    it('takes any valid name: spaces, braces, unicode, reserved-looking suffixes', async () => {
      for (const name of ['a b', '}x{', '{', 'été/ü', 'x:fence', 'jobs:1/extend']) {
        const grant = await granted(name);
        expect(grant.name).toBe(name);
        expect((await status(name)).json()).toMatchObject({ name, held: true });
        expect((await release(name, grant.token)).statusCode).toBe(204);
      }
    });
  });

  describe('POST /redis/locks/{name}/extend', () => {
    it('renews the owner’s lease to ttlMs from now', async () => {
      const grant = await granted('renew', 1000);
      const response = await extend('renew', { token: grant.token, ttlMs: 8000 });
      expect(response.statusCode).toBe(200);
      const lease = response.json();
      expect(Object.keys(lease).sort()).toEqual(['expiresAt', 'name', 'ttlMs']);
      expect(lease.name).toBe('renew');
      expect(lease.ttlMs).toBeGreaterThan(7800);
      expect(await t.redis.pttl(lockKey('renew'))).toBeGreaterThan(7800);
      await release('renew', grant.token);
    });

    it('answers 409 LOCK_NOT_OWNER for another token, and leaves the lease alone', async () => {
      const grant = await granted('renew-other', 3000);
      const pttl = await t.redis.pttl(lockKey('renew-other'));
      const response = await extend('renew-other', { token: 'f'.repeat(32), ttlMs: 9000 });
      expectProblem(response, 409, 'LOCK_NOT_OWNER');
      expect(await t.redis.pttl(lockKey('renew-other'))).toBeLessThanOrEqual(pttl);
      await release('renew-other', grant.token);
    });

    it('answers 409 LOCK_NOT_OWNER once the lease has ended', async () => {
      const grant = await granted('renew-late', 100);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expectProblem(
        await extend('renew-late', { token: grant.token, ttlMs: 1000 }),
        409,
        'LOCK_NOT_OWNER',
      );
      expect(await t.redis.exists(lockKey('renew-late'))).toBe(0);
    });
  });

  describe('DELETE /redis/locks/{name} (release)', () => {
    it('releases with the owner’s Lock-Token (204); a second release is 404', async () => {
      const grant = await granted('free');
      const response = await release('free', grant.token);
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe('');
      expect(await t.redis.exists(lockKey('free'))).toBe(0);
      expectProblem(await release('free', grant.token), 404, 'NOT_FOUND');
    });

    it('answers 404 for a lock nobody holds', async () => {
      expectProblem(await release('never', 'a'.repeat(32)), 404, 'NOT_FOUND');
    });

    it('answers 409 LOCK_NOT_OWNER for another token and keeps the owner’s lock', async () => {
      const grant = await granted('kept');
      const stored = await t.redis.get(lockKey('kept'));
      expectProblem(await release('kept', 'b'.repeat(32)), 409, 'LOCK_NOT_OWNER');
      expect(await t.redis.get(lockKey('kept'))).toBe(stored);
      expect((await release('kept', grant.token)).statusCode).toBe(204);
    });

    it('binds the token to the subject: the same token under another client id is 409', async () => {
      const grant = await granted('bound');
      const other = await t.token({ scopes: ['redis:write'], clientId: 'other-client' });
      expectProblem(await release('bound', grant.token, other), 409, 'LOCK_NOT_OWNER');
      expectProblem(
        await extend('bound', { token: grant.token, ttlMs: 1000 }, other),
        409,
        'LOCK_NOT_OWNER',
      );
      expect((await release('bound', grant.token)).statusCode).toBe(204);
    });
  });

  describe('GET /redis/locks/{name} (status)', () => {
    it('says whether the lock is held and for how long, never by whom', async () => {
      const grant = await granted('watched', 6000);
      const response = await status('watched');
      expect(response.statusCode).toBe(200);
      const body = response.json();
      expect(Object.keys(body).sort()).toEqual(['held', 'name', 'ttlMs']);
      expect(body).toMatchObject({ name: 'watched', held: true });
      expect(body.ttlMs).toBeGreaterThan(5500);
      expect(body.ttlMs).toBeLessThanOrEqual(6000);
      expect(response.body).not.toContain(grant.token);
      await release('watched', grant.token);
      expect((await status('watched')).json()).toEqual({ name: 'watched', held: false, ttlMs: 0 });
    });
  });

  describe('bad input: 400 VALIDATION_FAILED, nothing written', () => {
    afterEach(async () => {
      expect(await lockKeys('bad')).toEqual([]);
    });

    it.each([
      ['no ttlMs', {}, 'ttlMs'],
      ['ttlMs over locks.maxTtlMs', { ttlMs: MAX_TTL_MS + 1 }, 'ttlMs'],
      ['ttlMs not an integer', { ttlMs: 1.5 }, 'ttlMs'],
      ['ttlMs as text', { ttlMs: '1000' }, 'ttlMs'],
      ['ttlMs too short', { ttlMs: 99 }, 'ttlMs'],
      ['negative waitMs', { ttlMs: 1000, waitMs: -1 }, 'waitMs'],
      ['waitMs over limits.maxBlockMs', { ttlMs: 1000, waitMs: 2001 }, 'waitMs'],
      ['retryDelayMs too short', { ttlMs: 1000, waitMs: 100, retryDelayMs: 1 }, 'retryDelayMs'],
      ['an unknown field', { ttlMs: 1000, owner: 'me' }, 'owner'],
    ])('acquire with %s', async (_case, body, field) => {
      const response = await acquire('bad', body);
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual(
        expect.arrayContaining([expect.objectContaining({ field })]),
      );
    });

    it.each([
      ['a control character', 'bad%01name'],
      ['DEL', 'bad%7Fname'],
      ['a lone surrogate', 'bad%ED%A0%80'],
      ['a name over limits.maxKeyBytes', encodeURIComponent('b'.repeat(1025))],
    ])('a name with %s', async (_case, encoded) => {
      const response = await t.call('POST', `/redis/locks/${encoded}`, {
        token: t.tokens.write,
        body: { ttlMs: 1000 },
      });
      expect(response.statusCode).toBe(400);
    });

    it('a body that is not a JSON object', async () => {
      expectProblem(await acquire('bad', [1000]), 400, 'VALIDATION_FAILED');
    });

    it('extend with a malformed token or no ttlMs', async () => {
      expectProblem(await extend('bad', { token: 'x', ttlMs: 1000 }), 400, 'VALIDATION_FAILED');
      expectProblem(await extend('bad', { token: 'a'.repeat(32) }), 400, 'VALIDATION_FAILED');
      expectProblem(
        await extend('bad', { token: 'a'.repeat(32), ttlMs: MAX_TTL_MS + 1 }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('release without a Lock-Token header, or with a malformed one', async () => {
      const missing = await release('bad', undefined);
      expectProblem(missing, 400, 'VALIDATION_FAILED');
      expect(missing.json().errors).toEqual([expect.objectContaining({ field: 'Lock-Token' })]);
      expectProblem(await release('bad', 'not-a-token'), 400, 'VALIDATION_FAILED');
    });
  });

  describe('authentication and authorization', () => {
    it.each([
      ['POST', '/redis/locks/a', 'write'],
      ['POST', '/redis/locks/a/extend', 'write'],
      ['DELETE', '/redis/locks/a', 'write'],
      ['GET', '/redis/locks/a', 'read'],
    ] as const)('%s %s needs a token and redis:%s', async (method, url, scope) => {
      const body = { ttlMs: 1000 };
      await expectScopeGuarded(t, method, url, scope, body);
      expect(await lockKeys('a')).toEqual([]);
    });

    it('a name outside the token’s key patterns is 403 KEY_FORBIDDEN, for every operation', async () => {
      const token = await t.token({
        scopes: ['redis:read', 'redis:write'],
        keyPatterns: ['jobs:*'],
      });
      const grant = await acquire('jobs:1', { ttlMs: 1000 }, token);
      expect(grant.statusCode).toBe(201);
      expectProblem(await acquire('other', { ttlMs: 1000 }, token), 403, 'KEY_FORBIDDEN');
      expectProblem(
        await extend('other', { token: 'a'.repeat(32), ttlMs: 1000 }, token),
        403,
        'KEY_FORBIDDEN',
      );
      expectProblem(await release('other', 'a'.repeat(32), token), 403, 'KEY_FORBIDDEN');
      expectProblem(await status('other', token), 403, 'KEY_FORBIDDEN');
      expect(await t.redis.exists(lockKey('other'))).toBe(0);
      expect((await release('jobs:1', grant.json<Grant>().token, token)).statusCode).toBe(204);
    });

    it('a lock name in the reserved __gw: namespace is 403', async () => {
      expectProblem(await acquire('__gw:lock:x', { ttlMs: 1000 }), 403, 'KEY_FORBIDDEN');
      expectProblem(await status('__gw:x'), 403, 'KEY_FORBIDDEN');
    });
  });

  describe('metrics', () => {
    /** The value of one sample line of /metrics, 0 when absent. */
    async function sample(line: string): Promise<number> {
      const text = (await t.call('GET', '/metrics')).body;
      const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
      return found ? Number(found.split(' ').pop()) : 0;
    }
    const ops = (operation: string, result: string) =>
      `redis_gateway_lock_operations_total{operation="${operation}",result="${result}"}`;

    it('counts lock operations by operation and result, and times acquisitions', async () => {
      const before = {
        acquired: await sample(ops('acquire', 'ok')),
        held: await sample(ops('acquire', 'held')),
        released: await sample(ops('release', 'ok')),
        notOwner: await sample(ops('release', 'not_owner')),
        status: await sample(ops('status', 'ok')),
        waits: await sample('redis_gateway_lock_wait_seconds_count'),
      };
      const grant = await granted('metered');
      await acquire('metered', { ttlMs: 1000 });
      await release('metered', 'c'.repeat(32));
      await status('metered');
      await release('metered', grant.token);
      expect(await sample(ops('acquire', 'ok'))).toBe(before.acquired + 1);
      expect(await sample(ops('acquire', 'held'))).toBe(before.held + 1);
      expect(await sample(ops('release', 'not_owner'))).toBe(before.notOwner + 1);
      expect(await sample(ops('release', 'ok'))).toBe(before.released + 1);
      expect(await sample(ops('status', 'ok'))).toBe(before.status + 1);
      expect(await sample('redis_gateway_lock_wait_seconds_count')).toBe(before.waits + 2);
    });
  });
});

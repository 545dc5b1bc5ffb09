/**
 * Locks under contention and failure, L-1 … L-12, plus the quorum over several lock nodes, the
 * delayed restart and fencing tokens across every kind of restart, scaled to run in about a
 * minute on 2 cores. Real Redis servers (the suite's, or ones a case starts, kills and
 * restarts), real tokens, the real application; the stale holder of L-7 is a real child process
 * stopped with SIGSTOP. Figures print with FAILURES_REPORT=1.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Cluster } from 'ioredis';
import { LocalIssuer } from '../../src/dev/local-issuer';
import { merge, type DeepPartial } from '../../src/config/config.loader';
import type { AppConfig } from '../../src/config/app-config';
import { NO_CALLER_LIMITS, TestApp, uniquePrefix, withApp, type Response } from '../support/app';
import { eventually, sleep } from '../support/ports';
import { RedisServer } from '../support/redis';
import { RedisClusterSet } from '../support/topology';
import { percentile, report } from '../support/figures';
import { watchEventLoop } from '../support/probe';
import { lockPath, type Grant } from '../support/locks';
import { expectProblem } from '../support/problems';

const DURABLE = ['--appendonly', 'yes', '--appendfsync', 'always'];
const at = lockPath;

/** One hold of a lock as its client saw it: from the grant's answer to the release's request. */
interface Hold {
  fencingToken: number;
  acquired: number;
  releasing: number;
}

/** The lock endpoints of one app, for one bearer token. */
function locksOf(t: TestApp, token = t.tokens.both) {
  return {
    acquire: (name: string, body: { ttlMs: number; waitMs?: number; retryDelayMs?: number }) =>
      t.call('POST', at(name), { token, body }),
    extend: (name: string, lockToken: string, ttlMs: number) =>
      t.call('POST', `${at(name)}/extend`, { token, body: { token: lockToken, ttlMs } }),
    release: (name: string, lockToken: string) =>
      t.call('DELETE', at(name), { token, headers: { 'lock-token': lockToken } }),
    status: (name: string) => t.call('GET', at(name), { token }),
    /** Acquires and expects a grant. */
    async grant(name: string, ttlMs: number, waitMs = 0): Promise<Grant> {
      const response = await this.acquire(name, { ttlMs, waitMs });
      if (response.statusCode !== 201) {
        throw new Error(`acquire ${name}: ${response.statusCode} ${response.body}`);
      }
      return response.json<Grant>();
    },
  };
}

/** The checker of a history of holds: they never overlap, tokens rise in grant order. */
function checkHolds(holds: Hold[]): void {
  const ordered = [...holds].sort((a, b) => a.acquired - b.acquired);
  for (let i = 1; i < ordered.length; i++) {
    const [previous, next] = [ordered[i - 1], ordered[i]];
    if (next.acquired < previous.releasing) {
      throw new Error(`overlapping holds: ${JSON.stringify(previous)} and ${JSON.stringify(next)}`);
    }
    if (next.fencingToken <= previous.fencingToken) {
      throw new Error(
        `fencing token went backwards: ${previous.fencingToken} → ${next.fencingToken}`,
      );
    }
  }
}

describe('locks: reliability (L-1 … L-12)', () => {
  let issuer: LocalIssuer;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch(() => undefined);
    }
  });

  afterAll(async () => {
    await issuer.close();
  });

  async function app(redisUrl: string | undefined, config: DeepPartial<AppConfig> = {}) {
    const t = await TestApp.create({
      redisUrl,
      issuer,
      config: merge(NO_CALLER_LIMITS, config),
      ready: redisUrl === undefined,
    });
    cleanups.push(() => t.close());
    return t;
  }

  async function redisServer(args: string[] = []): Promise<RedisServer> {
    const server = await RedisServer.start({ args });
    cleanups.push(() => server.stop());
    return server;
  }

  /** Waits until the app's lock node answers again after a restart of its Redis. */
  async function untilAnswering(t: TestApp, timeoutMs = 5000): Promise<void> {
    await eventually(async () => {
      const response = await locksOf(t).status('probe');
      if (response.statusCode !== 200) {
        throw new Error(`status ${response.statusCode}`);
      }
    }, timeoutMs);
  }

  describe('on the suite’s Redis', () => {
    let t: TestApp;
    let locks: ReturnType<typeof locksOf>;
    const lockKey = (name: string) => `${t.prefix}__gw:{lock:${name}}`;

    beforeAll(async () => {
      t = await TestApp.create({
        issuer,
        config: {
          ...NO_CALLER_LIMITS,
          locks: { maxTtlMs: 10000, delayedRestartMs: 0 },
          limits: { maxBlockMs: 10000 },
        },
      });
      locks = locksOf(t);
    });

    afterAll(async () => {
      await t.close();
    });

    it('L-1: 20 clients × 50 rounds on one name never overlap; the guarded counter loses nothing', async () => {
      const holds: Hold[] = [];
      const statuses = new Map<number, number>();
      const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const counter = `/redis/kv/${encodeURIComponent('l1:counter')}`;
      const client = async () => {
        for (let round = 0; round < 50; round++) {
          const acquired = await locks.acquire('l1', {
            ttlMs: 5000,
            waitMs: 10000,
            retryDelayMs: 10,
          });
          count(acquired.statusCode);
          if (acquired.statusCode !== 201) {
            continue;
          }
          const grant = acquired.json<Grant>();
          const hold = {
            fencingToken: grant.fencingToken,
            acquired: performance.now(),
            releasing: 0,
          };
          // Read-modify-write through the KV API: only mutual exclusion keeps it exact.
          const read = await t.call('GET', counter, { token: t.tokens.read });
          count(read.statusCode);
          const value = read.statusCode === 200 ? Number(read.json().value) : 0;
          await sleep(Math.random() * 2);
          count(
            (
              await t.call('PUT', counter, {
                token: t.tokens.write,
                body: { value: String(value + 1) },
              })
            ).statusCode,
          );
          hold.releasing = performance.now();
          holds.push(hold);
          count((await locks.release('l1', grant.token)).statusCode);
        }
      };
      await Promise.all(Array.from({ length: 20 }, client));
      expect(holds).toHaveLength(1000);
      checkHolds(holds);
      expect(new Set(holds.map((hold) => hold.fencingToken)).size).toBe(1000);
      expect(await t.redis.get(`${t.prefix}l1:counter`)).toBe('1000');
      expect([...statuses.keys()].filter((status) => status >= 500)).toEqual([]);
    }, 60000);

    it('L-2: a lease nobody releases ends after its TTL, not before', async () => {
      const t0 = performance.now();
      await locks.grant('l2', 300);
      const t1 = performance.now();
      const polls: { sent: number; done: number; status: number }[] = [];
      for (;;) {
        const sent = performance.now();
        const response = await locks.acquire('l2', { ttlMs: 1000 });
        polls.push({ sent, done: performance.now(), status: response.statusCode });
        if (response.statusCode === 201 || sent - t1 > 1000) {
          break;
        }
        await sleep(10);
      }
      const first = polls[polls.length - 1];
      expect(first.status).toBe(201);
      // The grant happened after t0 and expires 300 ms after it; drift allowance is 5 ms.
      expect(first.done - t0).toBeGreaterThanOrEqual(295);
      expect(first.sent - t1).toBeLessThanOrEqual(350);
      expect(polls.slice(0, -1).every((poll) => poll.status === 409)).toBe(true);
    });

    it('L-3: a wrong token, or the right token under another subject, changes nothing', async () => {
      const a = await locks.grant('l3', 5000);
      const other = locksOf(
        t,
        await issuer.token({ scopes: ['redis:read', 'redis:write'], clientId: 'other-client' }),
      );
      const stored = await t.redis.get(lockKey('l3'));
      const pttl = await t.redis.pttl(lockKey('l3'));
      expectProblem(await other.release('l3', 'e'.repeat(32)), 409, 'LOCK_NOT_OWNER');
      expectProblem(await other.extend('l3', 'e'.repeat(32), 9000), 409, 'LOCK_NOT_OWNER');
      expectProblem(await other.release('l3', a.token), 409, 'LOCK_NOT_OWNER');
      expectProblem(await other.extend('l3', a.token, 9000), 409, 'LOCK_NOT_OWNER');
      expect(await t.redis.get(lockKey('l3'))).toBe(stored);
      expect(await t.redis.pttl(lockKey('l3'))).toBeLessThanOrEqual(pttl);
      expect((await locks.release('l3', a.token)).statusCode).toBe(204);
      // Documented: a repeated release is 404 (nothing held), never 500.
      expectProblem(await locks.release('l3', a.token), 404, 'NOT_FOUND');
    });

    it('L-4: a late release or extend never touches the next owner’s lock', async () => {
      const a = await locks.grant('l4', 200);
      await sleep(300);
      const b = await locks.grant('l4', 5000);
      const stored = await t.redis.get(lockKey('l4'));
      const pttl = await t.redis.pttl(lockKey('l4'));
      expectProblem(await locks.release('l4', a.token), 409, 'LOCK_NOT_OWNER');
      expectProblem(await locks.extend('l4', a.token, 9000), 409, 'LOCK_NOT_OWNER');
      expect(await t.redis.get(lockKey('l4'))).toBe(stored);
      expect(await t.redis.pttl(lockKey('l4'))).toBeLessThanOrEqual(pttl);
      expect(b.fencingToken).toBeGreaterThan(a.fencingToken);
      expect((await locks.release('l4', b.token)).statusCode).toBe(204);
    });

    it('L-5: a lease extended in time is never taken by anyone else; once left, it ends', async () => {
      const a = await locks.grant('l5', 500);
      const contender = locksOf(
        t,
        await issuer.token({ scopes: ['redis:write'], clientId: 'other-client' }),
      );
      let stop = false;
      const contenderStatuses: number[] = [];
      const contending = (async () => {
        while (!stop) {
          contenderStatuses.push((await contender.acquire('l5', { ttlMs: 1000 })).statusCode);
          await sleep(25);
        }
      })();
      const started = performance.now();
      while (performance.now() - started < 2000) {
        await sleep(300);
        expect((await locks.extend('l5', a.token, 500)).statusCode).toBe(200);
      }
      stop = true;
      await contending;
      expect(contenderStatuses.length).toBeGreaterThan(20);
      expect(contenderStatuses.every((status) => status === 409)).toBe(true);
      // Not extended any more: the contender gets it within the last lease (+ slack).
      const waited = performance.now();
      const taken = await contender.acquire('l5', { ttlMs: 1000, waitMs: 1500, retryDelayMs: 20 });
      expect(taken.statusCode).toBe(201);
      const b = taken.json<Grant>();
      expect(performance.now() - waited).toBeLessThan(500 + 150);
      expect(b.fencingToken).toBeGreaterThan(a.fencingToken);
    });

    it('L-6: fencing tokens rise strictly over 1,000 sequential and 200 concurrent grants', async () => {
      const tokens: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const grant = await locks.grant('l6', 5000);
        tokens.push(grant.fencingToken);
        await locks.release('l6', grant.token);
      }
      for (let i = 1; i < tokens.length; i++) {
        expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
      }
      const holds: Hold[] = [];
      await Promise.all(
        Array.from({ length: 200 }, async () => {
          const grant = await locks.grant('l6', 5000, 10000);
          const hold = {
            fencingToken: grant.fencingToken,
            acquired: performance.now(),
            releasing: 0,
          };
          hold.releasing = performance.now();
          holds.push(hold);
          await locks.release('l6', grant.token);
        }),
      );
      checkHolds(holds);
      expect(Math.min(...holds.map((hold) => hold.fencingToken))).toBeGreaterThan(tokens[999]);
    }, 60000);

    it('L-6: tokens keep rising after a lease expired by itself and after a gateway restart', async () => {
      const first = await locks.grant('l6-restart', 100);
      await sleep(150);
      const afterExpiry = await locks.grant('l6-restart', 100);
      expect(afterExpiry.fencingToken).toBeGreaterThan(first.fencingToken);
      // A new gateway process on the same Redis and key prefix (nothing is kept in the gateway).
      await withApp(
        {
          issuer,
          config: { redis: { keyPrefix: t.prefix }, locks: { delayedRestartMs: 0 } },
        },
        async (restarted) => {
          const afterRestart = await locksOf(restarted).grant('l6-restart', 1000, 1000);
          expect(afterRestart.fencingToken).toBeGreaterThan(afterExpiry.fencingToken);
        },
      );
    });

    it('L-9: a wall-clock jump of ±10 s in the gateway changes no lease (monotonic validity)', async () => {
      const realNow = Date.now.bind(Date);
      const jump = jest.spyOn(Date, 'now');
      try {
        jump.mockImplementation(() => realNow() + 10000);
        const grant = await locks.grant('l9', 2000);
        expect(grant.ttlMs).toBeGreaterThan(1900);
        expect(grant.ttlMs).toBeLessThanOrEqual(1978);
        jump.mockImplementation(() => realNow() - 10000);
        const back = await locks.extend('l9', grant.token, 2000);
        expect(back.statusCode).toBe(200);
        expect(back.json().ttlMs).toBeGreaterThan(1900);
        // node-redlock's own extend compares Date.now() with its expiry and would refuse here.
        jump.mockImplementation(() => realNow() + 10000);
        const forward = await locks.extend('l9', grant.token, 2000);
        expect(forward.statusCode).toBe(200);
        expect(forward.json().ttlMs).toBeGreaterThan(1900);
        expect((await locks.status('l9')).json()).toMatchObject({ held: true });
        expect(await t.redis.pttl(lockKey('l9'))).toBeGreaterThan(1900);
        expect((await locks.release('l9', grant.token)).statusCode).toBe(204);
      } finally {
        jump.mockRestore();
      }
    });

    it('L-10: no data endpoint reads, writes, deletes or lists a lock or fencing key', async () => {
      const grant = await locks.grant('l10', 5000);
      const stored = await t.redis.get(lockKey('l10'));
      for (const name of ['__gw:{lock:l10}', '__gw:{lock:l10}:fence', '__gw:lock:x']) {
        const url = `/redis/kv/${encodeURIComponent(name)}`;
        expectProblem(await t.call('GET', url, { token: t.tokens.read }), 403, 'KEY_FORBIDDEN');
        expectProblem(
          await t.call('GET', '/redis/kv', { token: t.tokens.read, query: { key: name } }),
          403,
          'KEY_FORBIDDEN',
        );
        expectProblem(await t.call('DELETE', url, { token: t.tokens.write }), 403, 'KEY_FORBIDDEN');
        expectProblem(
          await t.call('PUT', url, { token: t.tokens.write, body: { value: 'mine' } }),
          403,
          'KEY_FORBIDDEN',
        );
        expectProblem(
          await t.call('POST', '/redis/kv/_delete', {
            token: t.tokens.write,
            body: { keys: [name] },
          }),
          403,
          'KEY_FORBIDDEN',
        );
      }
      // The other data endpoints authorise names through the same Keyspace.
      for (const name of ['__gw:{lock:l10}', '__gw:{lock:l10}:fence']) {
        const encoded = encodeURIComponent(name);
        for (const [method, url, token] of [
          ['GET', `/redis/hashes/${encoded}`, t.tokens.read],
          ['DELETE', `/redis/hashes/${encoded}`, t.tokens.write],
          ['GET', `/redis/streams/${encoded}`, t.tokens.read],
          ['GET', `/redis/streams/${encoded}/entries`, t.tokens.read],
        ] as const) {
          expectProblem(await t.call(method, url, { token }), 403, 'KEY_FORBIDDEN');
        }
      }
      for (const prefix of ['', '_', '__gw:', '__gw:{lock:']) {
        const listed = await t.call('GET', '/redis/kv', {
          token: t.tokens.read,
          query: { prefix, count: '1000' },
        });
        expect(listed.statusCode).toBe(200);
        const { keys } = listed.json<{ keys: string[] }>();
        expect(keys.filter((key) => key.startsWith('__gw:'))).toEqual([]);
      }
      expect(await t.redis.get(lockKey('l10'))).toBe(stored);
      expect((await locks.status('l10')).body).not.toContain(grant.token);
      expect((await locks.release('l10', grant.token)).statusCode).toBe(204);
    });
  });

  describe('on a Redis of its own', () => {
    it('L-6 + L-8(b): with AOF always, a kill -9 keeps the lease (PTTL reduced) and the counter', async () => {
      const server = await redisServer(DURABLE);
      const t = await app(server.url, { locks: { maxTtlMs: 10000 } });
      const locks = locksOf(t);
      // AOF on: no delayed restart, even on a server that started a moment ago.
      const grant = await locks.grant('l8b', 8000);
      const key = `${t.prefix}__gw:{lock:l8b}`;
      await server.kill();
      const down = performance.now();
      await sleep(500);
      await server.launch();
      await untilAnswering(t);
      const pttl = await t.redis.pttl(key);
      // Redis expiry kept elapsing while it was down (redis.io).
      expect(pttl).toBeLessThanOrEqual(8000 - (performance.now() - down) + 50);
      expect(pttl).toBeGreaterThan(6000);
      expectProblem(await locks.acquire('l8b', { ttlMs: 1000 }), 409, 'LOCK_HELD');
      expect((await locks.release('l8b', grant.token)).statusCode).toBe(204);
      const next = await locks.grant('l8b', 1000);
      expect(next.fencingToken).toBeGreaterThan(grant.fencingToken);
    });

    it('L-8(a): without persistence, no grant for locks.delayedRestartMs (on by default) after a restart', async () => {
      const serverStarting = performance.now();
      const server = await redisServer();
      // delayedRestartMs is left at its default: the same as maxTtlMs.
      const t = await app(server.url, { locks: { maxTtlMs: 1500 } });
      const locks = locksOf(t);
      expect(t.config.locks.delayedRestartMs).toBe(1500);
      await untilAnswering(t);
      // Even a gateway that never saw this server before waits until it has been up maxTtlMs:
      // it cannot tell a new server from one that restarted empty with live leases. It sees
      // the uptime in whole seconds, so within 1 s of the server's start a refusal is certain;
      // a busy machine can take longer to get here, and then a grant is right too.
      const early = await locks.acquire('l8a-early', { ttlMs: 1500 });
      if (performance.now() - serverStarting < 1000) {
        expectProblem(early, 503, 'LOCK_SERVICE_RECOVERING');
        expect(Number(early.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      } else {
        expect([201, 503]).toContain(early.statusCode);
      }
      const old = await eventually(() => locks.grant('l8a', 1500), 3000, 100);
      const granted = performance.now();

      await server.kill();
      await server.launch(); // empty: the lease above is forgotten while it may still be in use
      await untilAnswering(t);
      const outcomes: { at: number; status: number; code?: string; retryAfter?: string }[] = [];
      let grant: Grant | undefined;
      while (!grant) {
        const response = await locks.acquire('l8a', { ttlMs: 1000 });
        outcomes.push({
          at: performance.now(),
          status: response.statusCode,
          code: response.json().code,
          retryAfter: response.headers['retry-after'],
        });
        if (response.statusCode === 201) {
          grant = response.json<Grant>();
        } else {
          expect(outcomes.length).toBeLessThan(100);
          await sleep(50);
        }
      }
      const refused = outcomes.slice(0, -1);
      expect(refused.length).toBeGreaterThan(5);
      for (const outcome of refused) {
        expect(outcome).toMatchObject({ status: 503, code: 'LOCK_SERVICE_RECOVERING' });
        // What is left of the 1.5 s, in whole seconds rounded up.
        expect(['1', '2']).toContain(outcome.retryAfter);
      }
      // Retry-After counts down (from 2 when the first refusal came early in the 1.5 s).
      const waits = refused.map((outcome) => Number(outcome.retryAfter));
      expect(waits).toEqual([...waits].sort((x, y) => y - x));
      // Never two holders: the new grant comes after the forgotten lease has ended.
      expect(outcomes[outcomes.length - 1].at - granted).toBeGreaterThanOrEqual(1500);
      // The counter died with the data; reseeded from the clock, it still rises.
      expect(grant.fencingToken).toBeGreaterThan(old.fencingToken);
    });

    it('L-11: 500 concurrent attempts grant once; 200 waiting ones keep within waitMs and Redis calm', async () => {
      const server = await redisServer();
      const t = await app(server.url, {
        locks: { delayedRestartMs: 0, maxTtlMs: 10000 },
        // 500 requests injected in one tick queue in this process's event loop before their
        // commands are even written; the 1 s command deadline would count that queueing too.
        redis: { commandTimeoutMs: 5000, socketTimeoutMs: 7500 },
      });
      const locks = locksOf(t);
      await untilAnswering(t);
      const timed = async (request: () => Promise<Response>) => {
        const started = performance.now();
        const response = await request();
        return { status: response.statusCode, ms: performance.now() - started };
      };
      // Stalls of this process (app and load generator both) delay every figure by as much.
      const loop = watchEventLoop();
      const burst = await Promise.all(
        Array.from({ length: 500 }, () => timed(() => locks.acquire('l11', { ttlMs: 10000 }))),
      );
      expect(burst.filter((r) => r.status === 201)).toHaveLength(1);
      expect(burst.filter((r) => r.status === 409)).toHaveLength(499);
      // The bar's p99 of 50 ms assumes requests arriving over a network. Injected into one event
      // loop in the same tick, each of the 500 answers waits for the others' turns, so the whole
      // burst takes what 500 requests cost here (the suite shares 2 cores with others). What the
      // lock must not do is cost more than an ordinary request: a burst of 500 refused
      // acquisitions is held to at most twice a burst of 500 KV misses, measured right after.
      const misses = await Promise.all(
        Array.from({ length: 500 }, () =>
          timed(() => t.call('GET', '/redis/kv/l11-miss', { token: t.tokens.read })),
        ),
      );
      expect(misses.every((r) => r.status === 404)).toBe(true);
      const longest = (results: { ms: number }[]) => Math.max(...results.map((r) => r.ms));
      const burstStall = loop.stop();
      expect(longest(burst)).toBeLessThanOrEqual(2 * longest(misses) + burstStall);
      const p99 = (results: { ms: number }[]) =>
        percentile(
          results.map((r) => r.ms),
          99,
        );
      report(
        `L-11 bursts of 500: refused acquisitions p99 ${p99(burst).toFixed(0)} ms, KV misses p99 ${p99(misses).toFixed(0)} ms`,
      );

      // 200 callers that wait 2 s each, arriving over 400 ms, for a lock nobody releases.
      const commands = async () =>
        Number(/total_commands_processed:(\d+)/.exec(await t.redis.info('stats'))?.[1]);
      const before = await commands();
      const waitLoop = watchEventLoop();
      const started = performance.now();
      const waiting = await Promise.all(
        Array.from({ length: 200 }, async (_, index) => {
          await sleep(index * 2);
          return timed(() => locks.acquire('l11', { ttlMs: 1000, waitMs: 2000 }));
        }),
      );
      const perSecond = ((await commands()) - before) / ((performance.now() - started) / 1000);
      expect(waiting.every((r) => r.status === 409)).toBe(true);
      expect(Math.min(...waiting.map((r) => r.ms))).toBeGreaterThanOrEqual(1995);
      expect(longest(waiting)).toBeLessThanOrEqual(2000 + 200 + waitLoop.stop());
      expect(perSecond).toBeLessThanOrEqual(5000);
      report(
        `L-11 200 waiters: longest ${longest(waiting).toFixed(0)} ms, ${Math.round(perSecond)} Redis commands/s`,
      );
    }, 30000);

    it('L-12: with Redis down every lock operation answers 503 at once; the lease then ends by TTL', async () => {
      const server = await redisServer(DURABLE);
      const t = await app(server.url, { locks: { maxTtlMs: 10000 } });
      const locks = locksOf(t);
      const grant = await locks.grant('l12', 2500);
      await server.kill();
      await eventually(async () => {
        expectProblem(await locks.status('l12'), 503, 'REDIS_UNAVAILABLE');
      });
      for (const response of [
        await locks.acquire('l12-other', { ttlMs: 1000, waitMs: 500 }),
        await locks.extend('l12', grant.token, 2500),
        await locks.release('l12', grant.token),
        await locks.status('l12'),
      ]) {
        expectProblem(response, 503, 'REDIS_UNAVAILABLE');
        expect(response.headers['retry-after']).toBeDefined();
      }
      await server.launch();
      await untilAnswering(t);
      // The lease survived (AOF) and nobody released it: it ends by itself.
      expect((await locks.status('l12')).json()).toMatchObject({ held: true });
      await eventually(async () => {
        expect((await locks.status('l12')).json()).toMatchObject({ held: false, ttlMs: 0 });
      }, 4000);
    });
  });

  describe('quorum over three independent redis-servers (locks.nodes)', () => {
    async function threeNodes(delayedRestartMs = 0) {
      const servers = await Promise.all([redisServer(), redisServer(), redisServer()]);
      // The gateway's own Redis is not one of the lock nodes.
      const t = await app(undefined, {
        locks: { nodes: servers.map((server) => server.url), maxTtlMs: 10000, delayedRestartMs },
      });
      const keyOf = (name: string) => `${t.prefix}__gw:{lock:${name}}`;
      const clients = servers.map((server) => server.client());
      return { servers, t, locks: locksOf(t), keyOf, clients };
    }

    it('a grant holds a majority; a lock held on a majority is refused; on a minority it is not', async () => {
      const { locks, keyOf, clients, t } = await threeNodes();
      const grant = await locks.grant('q1', 5000);
      await eventually(async () => {
        for (const client of clients) {
          expect(await client.pttl(keyOf('q1'))).toBeGreaterThan(4000);
        }
      });
      expect(await t.redis.exists(keyOf('q1'))).toBe(0);
      expect((await locks.release('q1', grant.token)).statusCode).toBe(204);
      for (const client of clients) {
        expect(await client.exists(keyOf('q1'))).toBe(0);
      }
      // Someone else's lease on two nodes of three: held.
      await clients[0].set(keyOf('q2'), 'someone', 'PX', 5000);
      await clients[1].set(keyOf('q2'), 'someone', 'PX', 5000);
      expectProblem(await locks.acquire('q2', { ttlMs: 1000 }), 409, 'LOCK_HELD');
      expect((await locks.status('q2')).json()).toMatchObject({ held: true });
      // On one node of three (a partial grant left behind): a majority is still free.
      await clients[1].del(keyOf('q2'));
      const minority = await locks.grant('q2', 1000);
      expect(await clients[0].get(keyOf('q2'))).toBe('someone');
      expect((await locks.release('q2', minority.token)).statusCode).toBe(204);
      expect(await clients[0].get(keyOf('q2'))).toBe('someone');
    });

    it('locks with one node down; answers 503 LOCK_QUORUM_UNAVAILABLE with a majority down', async () => {
      const { servers, locks } = await threeNodes();
      const first = await locks.grant('q3', 5000);
      await servers[2].kill();
      expect((await locks.extend('q3', first.token, 5000)).statusCode).toBe(200);
      expect((await locks.status('q3')).json()).toMatchObject({ held: true });
      expect((await locks.release('q3', first.token)).statusCode).toBe(204);
      const second = await locks.grant('q3', 5000);
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken);

      await servers[1].kill();
      for (const response of [
        await locks.acquire('q4', { ttlMs: 1000, waitMs: 300 }),
        await locks.extend('q3', second.token, 5000),
        await locks.release('q3', second.token),
        await locks.status('q3'),
      ]) {
        expectProblem(response, 503, 'LOCK_QUORUM_UNAVAILABLE');
        expect(response.headers['retry-after']).toBeDefined();
      }
    });

    it('tokens keep rising when the majority that grants changes (counters are raised)', async () => {
      const { servers, locks, keyOf, clients } = await threeNodes();
      const before = await locks.grant('q5', 1000);
      await locks.release('q5', before.token);
      // Node 0 restarts empty: its counter is reseeded from the clock, far above the others'.
      await servers[0].kill();
      await sleep(20);
      await servers[0].launch();
      await eventually(async () => {
        expect((await locks.status('probe')).statusCode).toBe(200);
        const grant = await locks.grant('q5', 1000);
        await locks.release('q5', grant.token);
        expect(await clients[0].exists(`${keyOf('q5')}:fence`)).toBe(1);
      });
      const withRestarted = await locks.grant('q5', 1000);
      await locks.release('q5', withRestarted.token);
      // Without node 0, nodes 1 and 2 grant alone: they must have been raised to its token.
      await servers[0].kill();
      const withoutIt = await locks.grant('q5', 1000);
      expect(withoutIt.fencingToken).toBeGreaterThan(withRestarted.fencingToken);
      expect(withRestarted.fencingToken).toBeGreaterThan(before.fencingToken);
    });

    it('nodes restarted empty grant nothing for delayedRestartMs: with two of three, 503 LOCK_SERVICE_RECOVERING', async () => {
      const { servers, locks } = await threeNodes(1000);
      // Fresh servers: wait out their first delayedRestartMs.
      const first = await eventually(() => locks.grant('q6', 1000), 3000, 100);
      await locks.release('q6', first.token);
      await servers[0].kill();
      await servers[0].launch();
      await eventually(async () => {
        // One node recovering (once reconnected): the other two still make a majority.
        const grant = await locks.grant('q6', 1000);
        await locks.release('q6', grant.token);
      });
      await sleep(1100); // node 0 has recovered
      await Promise.all([servers[1].kill(), servers[2].kill()]);
      await Promise.all([servers[1].launch(), servers[2].launch()]);
      const recovering = await eventually(async () => {
        const response = await locks.acquire('q6', { ttlMs: 1000 });
        expectProblem(response, 503, 'LOCK_SERVICE_RECOVERING');
        return response;
      });
      expect(recovering.headers['retry-after']).toBe('1');
      const later = await eventually(() => locks.grant('q6', 1000), 3000, 100);
      expect(later.fencingToken).toBeGreaterThan(first.fencingToken);
    });
  });

  describe('L-7: a holder paused past its lease (SIGSTOP) has its late write refused by fencing', () => {
    /**
     * The protected resource: it remembers the highest fencing token it accepted and refuses
     * any write that carries a lower one (README.md, Fencing tokens).
     */
    function fencedResource(): Promise<{
      server: Server;
      url: string;
      state: { value: string; highest: number };
    }> {
      const state = { value: '', highest: 0 };
      const server = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          const write = JSON.parse(body) as { value: string; fencingToken: number };
          if (write.fencingToken < state.highest) {
            response.writeHead(409, { 'content-type': 'application/json' });
            response.end(JSON.stringify({ code: 'STALE_FENCING_TOKEN' }));
            return;
          }
          state.highest = write.fencingToken;
          state.value = write.value;
          response.writeHead(204).end();
        });
      });
      return new Promise((resolve) =>
        server.listen(0, '127.0.0.1', () =>
          resolve({
            server,
            url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
            state,
          }),
        ),
      );
    }

    /** A worker: takes the lock over HTTP, works 150 ms, writes the resource with its token. */
    const WORKER = `
      const [base, bearer, name, resource] = process.argv.slice(1);
      (async () => {
        const response = await fetch(base + '/redis/locks/' + encodeURIComponent(name), {
          method: 'POST',
          headers: { authorization: 'Bearer ' + bearer, 'content-type': 'application/json' },
          body: JSON.stringify({ ttlMs: 300, waitMs: 3000, retryDelayMs: 20 }),
        });
        const grant = await response.json();
        console.log(JSON.stringify({ acquired: grant.fencingToken }));
        setTimeout(async () => {
          const write = await fetch(resource, {
            method: 'POST',
            body: JSON.stringify({ value: 'A', fencingToken: grant.fencingToken }),
          });
          console.log(JSON.stringify({ wrote: write.status }));
        }, 150);
      })();
    `;

    it('5 rounds: the stale write is refused (409 STALE_FENCING_TOKEN), the resource keeps B’s value', async () => {
      const t = await TestApp.create({
        issuer,
        listen: true,
        config: { locks: { delayedRestartMs: 0 } },
      });
      cleanups.push(() => t.close());
      const resource = await fencedResource();
      cleanups.push(() => new Promise((resolve) => resource.server.close(resolve)));
      const locks = locksOf(t);
      for (let round = 0; round < 5; round++) {
        const name = `l7:${round}`;
        const worker = spawn(
          process.execPath,
          ['-e', WORKER, t.baseUrl, t.tokens.write, name, resource.url],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        cleanups.push(() => Promise.resolve(worker.kill('SIGKILL')));
        const lines: Record<string, number>[] = [];
        const next = (key: string) =>
          eventually(
            () => {
              const line = lines.find((candidate) => key in candidate);
              if (!line) {
                throw new Error(`no ${key} yet`);
              }
              return line[key];
            },
            5000,
            2,
          );
        worker.stdout.on('data', (chunk: Buffer) => {
          for (const text of chunk.toString().split('\n').filter(Boolean)) {
            lines.push(JSON.parse(text) as Record<string, number>);
          }
        });
        const tokenA = await next('acquired');
        worker.kill('SIGSTOP'); // a GC pause, in the middle of its work
        const paused = performance.now();
        const loop = watchEventLoop();
        const b = await locks.grant(name, 2000, 3000);
        // B waits out A's 300 ms lease, not more; a stall of this process (the app runs in it)
        // delays B by as much (docs/testing.md, "Timing bounds").
        expect(performance.now() - paused).toBeLessThan(700 + loop.stop());
        expect(b.fencingToken).toBeGreaterThan(tokenA);
        const written = await fetch(resource.url, {
          method: 'POST',
          body: JSON.stringify({ value: 'B', fencingToken: b.fencingToken }),
        });
        expect(written.status).toBe(204);
        await sleep(Math.max(0, 700 - (performance.now() - paused)));
        worker.kill('SIGCONT');
        expect(await next('wrote')).toBe(409);
        expect(resource.state).toEqual({ value: 'B', highest: b.fencingToken });
        expect((await locks.release(name, b.token)).statusCode).toBe(204);
      }
    }, 30000);
  });

  describe('cluster mode', () => {
    it('keeps the lock and its counter in one hash slot and fences across names and slots', async () => {
      const set = await RedisClusterSet.start();
      cleanups.push(() => set.stop());
      const nodes = set.nodes;
      const t = await app(set.servers[0].url, {
        redis: { mode: 'cluster', clusterNodes: nodes, keyPrefix: `c{${uniquePrefix()}` },
        locks: { delayedRestartMs: 0 },
      });
      await untilAnswering(t, 10000);
      const cluster = new Cluster(
        nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
      );
      cluster.on('error', () => undefined);
      cleanups.push(() => Promise.resolve(cluster.disconnect()));
      const locks = locksOf(t);
      const slots = new Set<number>();
      // Names with braces of their own, and a prefix with an unclosed one: still one slot each.
      for (const name of ['orders', '}x', 'a{b}c', 'user:42', 'z']) {
        const first = await locks.grant(name, 2000);
        const key = `${t.prefix}__gw:{lock:${name}}`;
        const [lockSlot, fenceSlot] = await Promise.all([
          cluster.cluster('KEYSLOT', key),
          cluster.cluster('KEYSLOT', `${key}:fence`),
        ]);
        expect(fenceSlot).toBe(lockSlot);
        slots.add(lockSlot);
        expect(await cluster.exists(key)).toBe(1);
        await locks.release(name, first.token);
        const second = await locks.grant(name, 2000);
        expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
        await locks.release(name, second.token);
      }
      expect(slots.size).toBeGreaterThan(1);
    }, 30000);
  });
});

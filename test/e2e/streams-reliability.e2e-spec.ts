/**
 * Streams under failure, X-1 … X-5, against real redis-servers this suite starts (the X-6
 * bounds are in streams.e2e-spec.ts). Figures print with FAILURES_REPORT=1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalIssuer } from '../../src/dev/local-issuer';
import { merge } from '../../src/config/config.loader';
import { NO_CALLER_LIMITS, TestApp, withApp, type TestAppOptions } from '../support/app';
import { FaultProxy } from '../support/fault-proxy';
import { eventually, sleep } from '../support/ports';
import { withRedisServer } from '../support/redis';
import { percentile, report } from '../support/figures';

const group = (stream: string, name: string) =>
  `/redis/streams/${encodeURIComponent(stream)}/groups/${encodeURIComponent(name)}`;

describe('streams under failure (X-1 … X-5)', () => {
  let issuer: LocalIssuer;

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
  });

  afterAll(async () => {
    await issuer.close();
  });

  /**
   * The app on that Redis, for withApp, without the per-caller limits: these cases drive one
   * subject past them on purpose, to load the blocking pool and Redis.
   */
  const appOn = (
    redisUrl: string,
    config: TestAppOptions['config'] = {},
    listen = false,
  ): TestAppOptions => ({ redisUrl, issuer, config: merge(NO_CALLER_LIMITS, config), listen });

  async function addEntries(t: TestApp, stream: string, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let start = 0; start < count; start += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, count - start) }, (_, i) =>
          t.call('POST', `/redis/streams/${stream}/entries`, {
            token: t.tokens.write,
            body: { fields: { n: String(start + i) } },
          }),
        ),
      );
      for (const response of batch) {
        expect([response.statusCode, response.body]).toEqual([201, expect.any(String)]);
        ids.push(response.json<{ id: string }>().id);
      }
    }
    return ids;
  }

  it('X-1 delivers every entry at least once while consumers are killed with SIGKILL', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url, { redis: { blockingPoolSize: 8 } }, true), async (t) => {
        const stream = 'x1';
        expect(
          (
            await t.call('POST', `/redis/streams/${stream}/groups`, {
              token: t.tokens.write,
              body: { group: 'workers', from: '0' },
            })
          ).statusCode,
        ).toBe(201);
        const ids = await addEntries(t, stream, 10000);
        const dir = mkdtempSync(join(tmpdir(), 'x1-'));
        const logs = [0, 1, 2, 3].map((i) => join(dir, `consumer-${i}.log`));
        logs.forEach((log) => writeFileSync(log, ''));
        const start = (i: number): ChildProcess =>
          spawn(process.execPath, [join(__dirname, '..', 'support', 'stream-consumer.mjs')], {
            env: {
              ...process.env,
              BASE_URL: t.baseUrl,
              TOKEN: t.tokens.both,
              STREAM: stream,
              GROUP: 'workers',
              CONSUMER: `c${i}`,
              LOG: logs[i],
              PROCESS_MS: '0',
              BATCH: '50',
            },
            stdio: 'ignore',
          });
        const consumers = [0, 1, 2, 3].map(start);
        const processed = () => {
          const lines = logs.flatMap((log) => readFileSync(log, 'utf8').split('\n'));
          return lines.filter(Boolean);
        };
        const pending = async () =>
          (await t.redis.call('XPENDING', `${t.prefix}${stream}`, 'workers')) as [number];
        let kills = 0;
        const started = performance.now();
        let all: string[];
        try {
          const killer = setInterval(() => {
            const victim = kills % 4;
            consumers[victim].kill('SIGKILL');
            consumers[victim] = start(victim);
            kills += 1;
          }, 2000);
          try {
            await eventually(
              async () => {
                expect(new Set(processed()).size).toBe(ids.length);
                expect((await pending())[0]).toBe(0);
              },
              90000,
              200,
            );
          } finally {
            clearInterval(killer);
          }
          all = processed();
        } finally {
          consumers.forEach((consumer) => consumer.kill('SIGKILL'));
          rmSync(dir, { recursive: true, force: true });
        }
        const duplicates = all.length - new Set(all).size;
        expect(new Set(all)).toEqual(new Set(ids));
        // A kill loses at most the batch in hand: it is processed again after a reclaim.
        expect(kills).toBeGreaterThanOrEqual(1);
        expect(duplicates).toBeLessThanOrEqual(kills * 50);
        report(
          `X-1: ${ids.length} entries, 4 consumers, ${kills} SIGKILLs: every id processed, ` +
            `${duplicates} duplicates (bound ${kills * 50}), pending 0, ` +
            `${Math.round(performance.now() - started)} ms`,
        );
      });
    });
  }, 120000);

  it('X-2 a lost XREADGROUP reply leaves the entries pending; a claim recovers them all', async () => {
    await withRedisServer(async (server) => {
      const proxy = await FaultProxy.start({ targetPort: server.port });
      try {
        await withApp(appOn(proxy.url), async (t) => {
          const direct = server.client();
          await t.redis.ping();
          await t.call('POST', `/redis/streams/x2/groups`, {
            token: t.tokens.write,
            body: { group: 'g', from: '0' },
          });
          const ids = await addEntries(t, 'x2', 5);
          const fired = proxy.swallowNextReplyAndReset();
          const lost = await t.call('POST', `${group('x2', 'g')}/read`, {
            token: t.tokens.write,
            body: { consumer: 'c1', count: 10 },
          });
          await fired;
          expect([503, 504]).toContain(lost.statusCode);
          expect(lost.json()).toMatchObject({ code: expect.stringMatching(/^REDIS_/) });
          // Redis delivered them: they sit in the pending list of the consumer that never heard.
          const summary = (await direct.call('XPENDING', `${t.prefix}x2`, 'g')) as [number];
          expect(summary[0]).toBe(5);

          await eventually(async () =>
            expect((await t.call('GET', '/readyz')).statusCode).toBe(200),
          );
          await sleep(300);
          const claimed = await t.call('POST', `${group('x2', 'g')}/claim`, {
            token: t.tokens.write,
            body: { consumer: 'c2', minIdleMs: 200 },
          });
          expect(claimed.statusCode).toBe(200);
          const entries = claimed.json<{ entries: { id: string }[] }>().entries;
          expect(entries.map((entry) => entry.id)).toEqual(ids);
          const acked = await t.call('POST', `${group('x2', 'g')}/ack`, {
            token: t.tokens.write,
            body: { ids },
          });
          expect(acked.json()).toEqual({ acknowledged: 5 });
          expect(((await direct.call('XPENDING', `${t.prefix}x2`, 'g')) as [number])[0]).toBe(0);
        });
      } finally {
        await proxy.close();
      }
    });
  });

  it('X-3 an add retried with its Idempotency-Key after a lost reply adds one entry', async () => {
    await withRedisServer(async (server) => {
      const proxy = await FaultProxy.start({ targetPort: server.port });
      try {
        await withApp(appOn(proxy.url), async (t) => {
          const direct = server.client();
          await t.redis.ping();
          const add = (idempotencyKey: string) =>
            t.call('POST', '/redis/streams/x3/entries', {
              token: t.tokens.write,
              body: { fields: { order: '42' } },
              headers: { 'idempotency-key': idempotencyKey },
            });
          // Load the script first, so the swallowed reply is the script's own.
          expect((await add('warm-up')).statusCode).toBe(201);
          const before = await direct.xlen(`${t.prefix}x3`);
          const fired = proxy.swallowNextReplyAndReset();
          const lost = await add('order-42');
          await fired;
          expect(lost.statusCode).toBe(504);
          expect(lost.json()).toMatchObject({ code: 'OUTCOME_UNKNOWN' });
          expect(await direct.xlen(`${t.prefix}x3`)).toBe(before + 1);

          await eventually(async () =>
            expect((await t.call('GET', '/readyz')).statusCode).toBe(200),
          );
          const retried = await add('order-42');
          expect(retried.statusCode).toBe(201);
          expect(await direct.xlen(`${t.prefix}x3`)).toBe(before + 1);
          const [last] = (await direct.xrevrange(`${t.prefix}x3`, '+', '-', 'COUNT', 1)) as [
            [string, string[]],
          ];
          expect(retried.json()).toEqual({ key: 'x3', id: last[0] });
        });
      } finally {
        await proxy.close();
      }
    });
  });

  it('X-4 200 concurrent long-polls: block capped, pool bounded (503 past it), GETs unaffected', async () => {
    await withRedisServer(async (server) => {
      await withApp(
        appOn(server.url, { limits: { maxBlockMs: 3000 }, redis: { blockingPoolSize: 16 } }),
        async (t) => {
          await t.call('POST', `/redis/streams/x4/groups`, {
            token: t.tokens.write,
            body: { group: 'g' },
          });
          await t.call('PUT', '/redis/kv/plain', { token: t.tokens.write, body: { value: 'v' } });
          const started = performance.now();
          const polls = Array.from({ length: 200 }, (_, i) =>
            t
              .call('POST', `${group('x4', 'g')}/read`, {
                token: t.tokens.write,
                body: { consumer: `c${i}`, blockMs: 10000 },
              })
              .then((response) => ({ response, ms: performance.now() - started })),
          );
          await sleep(100);
          const latencies: number[] = [];
          let getsDone = 0;
          for (let i = 0; i < 100; i++) {
            const begin = performance.now();
            const response = await t.call('GET', '/redis/kv/plain', { token: t.tokens.read });
            latencies.push(performance.now() - begin);
            expect(response.statusCode).toBe(200);
            getsDone = performance.now() - started;
          }
          const results = await Promise.all(polls);
          const blocked = results.filter((r) => r.response.statusCode === 200);
          const refused = results.filter((r) => r.response.statusCode === 503);
          expect(blocked).toHaveLength(16);
          expect(refused).toHaveLength(184);
          for (const { response } of refused) {
            expect(response.json()).toMatchObject({ code: 'BLOCKING_POOL_EXHAUSTED' });
            expect(response.headers['retry-after']).toBeDefined();
          }
          for (const { response, ms } of blocked) {
            expect(response.json()).toEqual({ entries: [] });
            // blockMs 10 s was capped at limits.maxBlockMs (3 s; generous under CI load).
            expect(ms).toBeLessThan(8000);
          }
          // Every GET finished while the long-polls still held their connections (3 s for 100
          // GETs one after another: room for a busy machine, where 1.5 s was not always).
          expect(getsDone).toBeLessThan(Math.min(...blocked.map((b) => b.ms)));
          report(
            `X-4: 200 long-polls (blockMs 10000, capped 3000): 16 blocked, 184 × 503 ` +
              `BLOCKING_POOL_EXHAUSTED; 100 GETs meanwhile p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
              `p99 ${percentile(latencies, 99).toFixed(1)} ms`,
          );
        },
      );
    });
  });

  it('X-5 long-polls waiting across a Redis restart all return (503) within block + 1 s', async () => {
    await withRedisServer(async (server) => {
      await withApp(
        appOn(server.url, { limits: { maxBlockMs: 3000 }, redis: { blockingPoolSize: 20 } }),
        async (t) => {
          await t.call('POST', `/redis/streams/x5/groups`, {
            token: t.tokens.write,
            body: { group: 'g' },
          });
          const started = performance.now();
          const polls = Array.from({ length: 20 }, (_, i) =>
            t
              .call('POST', `${group('x5', 'g')}/read`, {
                token: t.tokens.write,
                body: { consumer: `c${i}`, blockMs: 3000 },
              })
              .then((response) => ({ response, ms: performance.now() - started })),
          );
          await sleep(300);
          await server.kill();
          await server.launch();
          const results = await Promise.all(polls);
          for (const { response, ms } of results) {
            expect(response.statusCode).toBe(503);
            expect(response.json()).toMatchObject({ code: 'REDIS_UNAVAILABLE' });
            expect(ms).toBeLessThan(3000 + 1000);
          }
          // The pool recovers by itself: new long-polls work once Redis is back.
          await eventually(async () =>
            expect((await t.call('GET', '/readyz')).statusCode).toBe(200),
          );
          await t.call('POST', `/redis/streams/x5/groups`, {
            token: t.tokens.write,
            body: { group: 'g' },
          });
          const after = await t.call('POST', `${group('x5', 'g')}/read`, {
            token: t.tokens.write,
            body: { consumer: 'c', blockMs: 200 },
          });
          expect(after.statusCode).toBe(200);
          report(
            `X-5: 20 long-polls across kill -9 + restart: all 503, slowest after ` +
              `${Math.round(Math.max(...results.map((r) => r.ms)))} ms`,
          );
        },
      );
    });
  });
});

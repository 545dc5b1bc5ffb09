/**
 * Redis failing under the gateway: R-1 … R-5, R-7, R-13, R-14 and R-17 (docs/testing.md says
 * where the other R cases are), scaled to run in about a minute on 2 cores. Every case owns its
 * redis-server (never the suite's shared one) and stops it in a finally block. Status codes and
 * error codes are those of README.md (Errors, Failure behaviour): 503 REDIS_UNAVAILABLE /
 * REDIS_READONLY with Retry-After, 504 REDIS_TIMEOUT for reads and OUTCOME_UNKNOWN for writes,
 * 507 REDIS_OOM. Figures print with FAILURES_REPORT=1.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalIssuer } from '../../src/dev/local-issuer';
import { TestApp, withApp, type TestAppOptions } from '../support/app';
import { FaultProxy } from '../support/fault-proxy';
import { eventually, freePort, sleep } from '../support/ports';
import { RedisServer, withRedisServer } from '../support/redis';
import { percentile, report } from '../support/figures';
import { watchEventLoop } from '../support/probe';

/** redis.commandTimeoutMs of config/default.yaml, which these tests keep. */
const COMMAND_TIMEOUT_MS = 1000;
const DURABLE = ['--appendonly', 'yes', '--appendfsync', 'always'];

type Kind = 'read' | 'write';

interface Op {
  name: string;
  kind: Kind;
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  url: string;
  body?: unknown;
  /** The key and value a write stores, for the durability checker. */
  key?: string;
  value?: string;
}

interface Outcome {
  op: Op;
  status: number;
  code?: string;
  retryAfter?: string;
  body?: Record<string, unknown>;
  /** Milliseconds on the performance clock. */
  tInvoke: number;
  tComplete: number;
  ms: number;
}

const at = (name: string) => `/redis/kv/${encodeURIComponent(name)}`;

/** The KV operations in rotation: reads and writes, single and multi-key. */
function mixedOp(seq: number, keys = 8): Op {
  const key = `m:${seq % keys}`;
  const value = `v${seq}`;
  const ops: Op[] = [
    { name: 'get', kind: 'read', method: 'GET', url: at(key) },
    { name: 'put', kind: 'write', method: 'PUT', url: at(key), body: { value }, key, value },
    { name: 'incr', kind: 'write', method: 'POST', url: `${at('m:counter')}/incr`, body: {} },
    { name: 'mget', kind: 'read', method: 'POST', url: '/redis/kv/_mget', body: { keys: [key] } },
    { name: 'create', kind: 'write', method: 'POST', url: '/redis/kv', body: { key, value } },
    { name: 'ttl', kind: 'read', method: 'GET', url: `${at(key)}/ttl` },
    { name: 'delete', kind: 'write', method: 'DELETE', url: at(`m:gone:${seq}`) },
    { name: 'scan', kind: 'read', method: 'GET', url: '/redis/kv?prefix=m%3A&count=10' },
  ];
  return ops[seq % ops.length];
}

function outcomeOf(
  op: Op,
  status: number,
  headers: Record<string, unknown>,
  text: string,
  tInvoke: number,
): Outcome {
  const tComplete = performance.now();
  let body: Record<string, unknown> | undefined;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    body = undefined;
  }
  const retryAfter = headers['retry-after'];
  return {
    op,
    status,
    code: typeof body?.code === 'string' ? body.code : undefined,
    retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    body,
    tInvoke,
    tComplete,
    ms: tComplete - tInvoke,
  };
}

/** One request through Fastify inject (in process, no socket). */
async function inject(t: TestApp, op: Op): Promise<Outcome> {
  const tInvoke = performance.now();
  const token = op.kind === 'read' ? t.tokens.read : t.tokens.write;
  const response = await t.call(op.method, op.url, { token, body: op.body });
  return outcomeOf(op, response.statusCode, response.headers, response.body, tInvoke);
}

/** One request over a real socket, with a client-side deadline that must never be hit. */
async function overHttp(t: TestApp, op: Op, deadlineMs: number): Promise<Outcome> {
  const tInvoke = performance.now();
  const token = op.kind === 'read' ? t.tokens.read : t.tokens.write;
  try {
    const response = await fetch(t.baseUrl + op.url, {
      method: op.method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(op.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: op.body === undefined ? undefined : JSON.stringify(op.body),
      signal: AbortSignal.timeout(deadlineMs),
    });
    const text = await response.text();
    return outcomeOf(op, response.status, Object.fromEntries(response.headers), text, tInvoke);
  } catch (error) {
    // Status 0: the client gave up (or the connection failed); the checkers treat it as a hang.
    return outcomeOf(op, 0, {}, JSON.stringify({ code: (error as Error).name }), tInvoke);
  }
}

/**
 * Open-loop load: starts one request every 1000/rps ms for durationMs whatever the answers
 * take (a closed loop would hide slow answers), then waits for all of them.
 */
async function load(
  rps: number,
  durationMs: number,
  send: (seq: number) => Promise<Outcome>,
): Promise<Outcome[]> {
  const pending: Promise<Outcome>[] = [];
  const started = performance.now();
  const interval = 1000 / rps;
  for (let seq = 0; ; seq++) {
    const due = started + seq * interval;
    if (due - started >= durationMs) {
      break;
    }
    const wait = due - performance.now();
    if (wait > 0) {
      await sleep(wait);
    }
    pending.push(send(seq));
  }
  return Promise.all(pending);
}

const is2xx = (o: Outcome) => o.status >= 200 && o.status < 300;
/**
 * Answered by a working Redis: 2xx, or the 404 of a miss (the mixed load deletes and reads keys
 * that another request may just have deleted).
 */
const served = (o: Outcome) => is2xx(o) || (o.status === 404 && o.code === 'NOT_FOUND');
const describeOutcome = (o: Outcome) =>
  `${o.op.name} ${o.op.url} -> ${o.status} ${o.code ?? ''} in ${Math.round(o.ms)} ms`;

/**
 * The durability checker for one key written with unique values: the final value comes from a
 * write that may have applied (2xx, or 504 OUTCOME_UNKNOWN), and each acknowledged write is the
 * final value or may have been overwritten by the write that is.
 */
function durabilityViolations(
  key: string,
  initial: string,
  final: string | null,
  writes: Outcome[],
): string[] {
  const mayHaveApplied = (o: Outcome) => is2xx(o) || o.code === 'OUTCOME_UNKNOWN';
  const finalWrite = writes.find((o) => o.op.value === final);
  const violations: string[] = [];
  if (final !== initial && !(finalWrite && mayHaveApplied(finalWrite))) {
    const answer = finalWrite ? describeOutcome(finalWrite) : 'no request';
    violations.push(`${key}: holds ${final}, written by ${answer}`);
  }
  for (const acknowledged of writes.filter(is2xx)) {
    if (acknowledged.op.value === final) {
      continue;
    }
    // Overwritten only if the final write could have been applied after this one began: an
    // acknowledged one that had not completed by then, or one whose outcome is unknown.
    const overwritten =
      finalWrite !== undefined &&
      (finalWrite.code === 'OUTCOME_UNKNOWN' ||
        (is2xx(finalWrite) && finalWrite.tComplete > acknowledged.tInvoke));
    if (!overwritten) {
      violations.push(`${key}: acknowledged ${acknowledged.op.value} lost (holds ${final})`);
    }
  }
  return violations;
}

/** Each failure the API may give for an unavailable or slow Redis, by kind of operation. */
const REDIS_FAILURES: Record<Kind, Record<string, number>> = {
  read: { REDIS_UNAVAILABLE: 503, REDIS_TIMEOUT: 504 },
  write: { REDIS_UNAVAILABLE: 503, OUTCOME_UNKNOWN: 504 },
};

/** Failed outcomes whose status and code are not the API's answer for a Redis failure. */
function wrongFailures(outcomes: Outcome[]): string[] {
  return outcomes
    .filter((o) => !served(o))
    .filter((o) => {
      const expected = o.code === undefined ? undefined : REDIS_FAILURES[o.op.kind][o.code];
      const retryAfterOk = o.status !== 503 || retryAfterInRange(o);
      return expected !== o.status || !retryAfterOk;
    })
    .map(describeOutcome);
}

function retryAfterInRange(o: Outcome): boolean {
  const seconds = Number(o.retryAfter);
  return Number.isInteger(seconds) && seconds >= 1 && seconds <= 5;
}

const countBy = (outcomes: Outcome[]) =>
  outcomes.reduce<Record<string, number>>((counts, o) => {
    const label = `${o.status}${o.code ? ` ${o.code}` : ''}`;
    counts[label] = (counts[label] ?? 0) + 1;
    return counts;
  }, {});

/** The service's connections as Redis sees them in CLIENT LIST (named redis-gateway:*). */
async function gatewayConnections(direct: Redis): Promise<{ id: string; age: number }[]> {
  const list = (await direct.call('CLIENT', 'LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.includes('name=redis-gateway:'))
    .map((line) => ({
      id: /\bid=(\d+)/.exec(line)?.[1] ?? '',
      age: Number(/\bage=(\d+)/.exec(line)?.[1] ?? -1),
    }));
}

describe('Redis failure behaviour (R-1 … R-5, R-7, R-13, R-14, R-17)', () => {
  let issuer: LocalIssuer;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
    process.on('unhandledRejection', onUnhandled);
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await issuer.close();
  });

  afterEach(() => {
    // R-1: no unhandledRejection while Redis fails (the process must keep serving).
    expect(unhandled.splice(0)).toEqual([]);
  });

  /**
   * The real app against that Redis (directly or through a FaultProxy), for withApp. It is not
   * waited for: each case checks readiness itself (untilReady), or starts with Redis down.
   */
  const appOn = (redisUrl: string, listen = false): TestAppOptions => ({
    redisUrl,
    issuer,
    listen,
    ready: false,
  });

  /** A private redis-server behind a FaultProxy, and the app connected through it, ready. */
  async function withProxiedApp(
    run: (t: TestApp, proxy: FaultProxy, server: RedisServer) => Promise<void>,
  ): Promise<void> {
    await withRedisServer(async (server) => {
      const proxy = await FaultProxy.start({ targetPort: server.port });
      try {
        await withApp(appOn(proxy.url), async (t) => {
          await untilReady(t);
          await run(t, proxy, server);
        });
      } finally {
        await proxy.close();
      }
    });
  }

  const readyz = async (t: TestApp) => (await t.call('GET', '/readyz')).statusCode;
  const untilReady = (t: TestApp, timeoutMs = 5000) =>
    eventually(async () => expect(await readyz(t)).toBe(200), timeoutMs, 20);

  it('R-1 fails fast with 503 REDIS_UNAVAILABLE and Retry-After while Redis is stopped', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url), async (t) => {
        await untilReady(t);
        await server
          .client()
          .call('SHUTDOWN', 'NOSAVE')
          .catch(() => undefined);
        await eventually(async () => expect(await readyz(t)).toBe(503), 3000, 20);

        const loop = watchEventLoop();
        const outcomes = await load(100, 1500, (seq) => inject(t, mixedOp(seq)));
        const readyStarted = performance.now();
        const ready = await readyz(t);
        const readyMs = performance.now() - readyStarted;
        // This process runs the app and the load: a busy machine delays both by its stalls.
        const stall = loop.stop();
        const live = (await t.call('GET', '/healthz')).statusCode;

        const wrong = outcomes
          .filter(
            (o) => o.status !== 503 || o.code !== 'REDIS_UNAVAILABLE' || !retryAfterInRange(o),
          )
          .map(describeOutcome);
        const latencies = outcomes.map((o) => o.ms);
        report('R-1', {
          requests: outcomes.length,
          outcomes: countBy(outcomes),
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: Math.max(...latencies),
          readyMs,
          stall,
        });
        expect(outcomes.length).toBeGreaterThanOrEqual(140);
        expect(wrong).toEqual([]);
        expect(percentile(latencies, 99)).toBeLessThanOrEqual(100 + stall);
        expect(Math.max(...latencies)).toBeLessThanOrEqual(200 + stall);
        expect(ready).toBe(503);
        expect(readyMs).toBeLessThanOrEqual(200 + stall);
        expect(live).toBe(200);
        // The process keeps serving: the outage did not take anything down with it.
        expect((await t.call('GET', '/healthz')).statusCode).toBe(200);
      });
    });
  }, 20000);

  it('R-2 loses no acknowledged write and never doubles an INCR when Redis is killed under load', async () => {
    await withRedisServer(
      async (server) => {
        await withApp(appOn(server.url, true), async (t) => {
          await untilReady(t);
          const direct = server.client();
          const setKeys = Array.from({ length: 40 }, (_, i) => `d:${i}`);
          const counters = ['c:0', 'c:1'];
          for (const key of setKeys) {
            await direct.set(t.prefix + key, 'init');
          }
          const op = (seq: number): Op => {
            const roll = seq % 10;
            if (roll < 6) {
              return { name: 'get', kind: 'read', method: 'GET', url: at(setKeys[seq % 40]) };
            }
            if (roll < 8) {
              const key = setKeys[(seq * 7) % 40];
              const value = `v${seq}`;
              return {
                name: 'set',
                kind: 'write',
                method: 'PUT',
                url: at(key),
                body: { value },
                key,
                value,
              };
            }
            const key = counters[seq % 2];
            return {
              name: 'incr',
              kind: 'write',
              method: 'POST',
              url: `${at(key)}/incr`,
              body: {},
              key,
            };
          };

          // Warm the path with reads (JWKS key cache, HTTP connections, JIT; writes would upset the
          // checkers below): the deadlines are about Redis failing, not about a cold process.
          for (const seq of [0, 1, 2, 3]) {
            expect((await overHttp(t, op(seq), 5000)).status).toBe(200);
          }
          // The client-side deadline catches a hang (ioredis's own defaults take 74 s), never a
          // slow answer: those are judged below, against the budget.
          const clientDeadlineMs = 10 * COMMAND_TIMEOUT_MS;
          // A stall of this whole process (the load generator lives in it too) delays every
          // answer by as much; the bounds below allow for it.
          const loop = watchEventLoop();
          const started = performance.now();
          let killedAt = 0;
          let backAt = 0;
          const faults = (async () => {
            await sleep(2000);
            killedAt = performance.now();
            await server.kill();
            await sleep(2000);
            await server.launch();
            backAt = performance.now();
          })();
          const outcomes = await load(150, 8000, (seq) => overHttp(t, op(seq), clientDeadlineMs));
          await faults;
          const stall = loop.stop();
          await untilReady(t);

          // No hang: every request answered within the command timeout and a small margin.
          const sentAt = (o: Outcome) =>
            `${describeOutcome(o)}, sent at ${Math.round(o.tInvoke - started)} ms`;
          const slow = outcomes.filter((o) => o.ms > COMMAND_TIMEOUT_MS + 300 + stall).map(sentAt);
          // Every non-2xx is one of the API's answers for a Redis failure.
          const wrong = wrongFailures(outcomes);

          // Durability: every acknowledged SET is visible unless a later write may have replaced it.
          const lost: string[] = [];
          for (const key of setKeys) {
            const writes = outcomes.filter((o) => o.op.name === 'set' && o.op.key === key);
            lost.push(
              ...durabilityViolations(key, 'init', await direct.get(t.prefix + key), writes),
            );
          }

          // Counters: final == ok + δ, 0 ≤ δ ≤ #OUTCOME_UNKNOWN.
          const counterReport: Record<string, unknown> = {};
          const counterErrors: string[] = [];
          for (const key of counters) {
            const incrs = outcomes.filter((o) => o.op.name === 'incr' && o.op.key === key);
            const ok = incrs.filter(is2xx).length;
            const unknown = incrs.filter((o) => o.code === 'OUTCOME_UNKNOWN').length;
            const final = Number((await direct.get(t.prefix + key)) ?? 0);
            counterReport[key] = { final, ok, unknown };
            if (final < ok || final > ok + unknown) {
              counterErrors.push(`${key}: final ${final}, ok ${ok}, unknown ${unknown}`);
            }
          }

          const afterBack = outcomes.filter((o) => o.tInvoke >= backAt + 2000);
          const okAfterBack = afterBack.filter(is2xx).length / afterBack.length;
          const firstOkAfterBack = outcomes.find((o) => o.tInvoke >= backAt && is2xx(o));
          const latencies = outcomes.map((o) => o.ms);
          report('R-2', {
            requests: outcomes.length,
            outcomes: countBy(outcomes),
            killedAtMs: Math.round(killedAt - started),
            backAtMs: Math.round(backAt - started),
            firstOkAfterBackMs: firstOkAfterBack
              ? Math.round(firstOkAfterBack.tComplete - backAt)
              : null,
            okRatioFrom2sAfterBack: okAfterBack,
            p99: percentile(latencies, 99),
            max: Math.max(...latencies),
            counters: counterReport,
            eventLoopMaxDelayMs: Math.round(stall),
            acknowledgedSets: outcomes.filter((o) => o.op.name === 'set' && is2xx(o)).length,
          });
          expect(backAt).toBeGreaterThan(0);
          const stalled = `event loop max delay ${Math.round(stall)} ms`;
          expect([stalled, ...outcomes.filter((o) => o.status === 0).map(sentAt)]).toEqual([
            stalled,
          ]);
          // Every GET reads a seeded key that nothing deletes: a 404 would be a lost key.
          expect(outcomes.filter((o) => o.status === 404).map(describeOutcome)).toEqual([]);
          expect([stalled, ...slow]).toEqual([stalled]);
          expect(wrong).toEqual([]);
          expect(lost).toEqual([]);
          expect(counterErrors).toEqual([]);
          // The fault really happened, and the service really came back.
          expect(outcomes.filter((o) => !is2xx(o)).length).toBeGreaterThan(0);
          // (How many requests fall after the restart depends on how fast Redis restarts under
          // load; 100 is plenty to measure the 99%.)
          expect(afterBack.length).toBeGreaterThan(100);
          expect(okAfterBack).toBeGreaterThanOrEqual(0.99);
        });
      },
      { args: DURABLE },
    );
  }, 30000);

  it('R-3 a lost INCR reply followed by a reset never becomes two increments', async () => {
    await withProxiedApp(async (t, proxy, server) => {
      // The harness's own client goes through the proxy too: let it finish connecting, so
      // the only requests on the wire are the service's.
      await t.redis.ping();
      const direct = server.client();
      /** Swallowed replies that answered the INCR script (EVALSHA or EVAL). */
      const swallowedIncrs = () =>
        proxy.events.filter((e) => e.type === 'swallowed' && /eval/i.test(e.detail ?? '')).length;
      const violations: string[] = [];
      const seen: Outcome[] = [];
      for (let i = 0; i < 20; i++) {
        const key = `r3:${i}`;
        const fired = proxy.swallowNextReplyAndReset();
        const outcome = await inject(t, {
          name: 'incr',
          kind: 'write',
          method: 'POST',
          url: `${at(key)}/incr`,
          body: {},
        });
        // (If the proxy never fired, the counts asserted below say so.)
        await Promise.race([fired, sleep(2000)]);
        // Let a resend (the bug this guards against) happen before reading the counter.
        await untilReady(t);
        await sleep(50);
        const counter = Number((await direct.get(t.prefix + key)) ?? 0);
        seen.push(outcome);
        const label = `#${i}: ${describeOutcome(outcome)}, counter ${counter}`;
        if (is2xx(outcome)) {
          if (counter !== 1 || outcome.body?.value !== 1) {
            violations.push(`${label}: 2xx with a doubled or missing effect`);
          }
        } else if (outcome.status === 504 && outcome.code === 'OUTCOME_UNKNOWN') {
          if (counter > 1) {
            violations.push(`${label}: applied twice`);
          }
        } else if (outcome.status === 503 && outcome.code === 'REDIS_UNAVAILABLE') {
          // A definite failure: Redis must not have applied it.
          if (counter !== 0) {
            violations.push(`${label}: said unavailable but was applied`);
          }
        } else {
          violations.push(`${label}: unexpected answer`);
        }
        if (outcome.ms > COMMAND_TIMEOUT_MS + 200) {
          violations.push(`${label}: too slow`);
        }
      }
      report('R-3', {
        calls: seen.length,
        outcomes: countBy(seen),
        swallowedAfterScript: swallowedIncrs(),
        maxMs: Math.max(...seen.map((o) => o.ms)),
      });
      // Every repetition really lost the reply of the INCR it sent.
      expect(proxy.count('swallowed')).toBe(20);
      expect(swallowedIncrs()).toBe(20);
      expect(violations).toEqual([]);
    });
  }, 30000);

  it('R-4 a half-open (frozen) connection fails requests within the timeout and heals', async () => {
    // A network namespace with iptables dropping the replies would black-hole the path; the
    // FaultProxy's freeze gives the same half-open connection (sockets open, nothing delivered)
    // without privileges or a network namespace.
    await withProxiedApp(async (t, proxy) => {
      const started = performance.now();
      let frozenAt = 0;
      let thawedAt = 0;
      const faults = (async () => {
        await sleep(500);
        proxy.freeze();
        frozenAt = performance.now();
        await sleep(4000);
        proxy.pass();
        thawedAt = performance.now();
      })();
      const loop = watchEventLoop();
      const outcomes = await load(50, 8500, (seq) => inject(t, mixedOp(seq)));
      await faults;
      const stall = loop.stop();

      const during = outcomes.filter((o) => o.tInvoke >= frozenAt && o.tInvoke < thawedAt);
      // Nothing crosses a frozen connection: every request ends within the budget, and one
      // sent a full budget before the thaw cannot have been served.
      const duringWrong = during
        .filter(
          (o) =>
            o.ms > COMMAND_TIMEOUT_MS + 200 + stall ||
            (served(o) && o.tInvoke < thawedAt - COMMAND_TIMEOUT_MS),
        )
        .map(describeOutcome);
      const after = outcomes.filter((o) => o.tInvoke >= thawedAt + 3000);
      const okAfter = after.filter(served).length / after.length;
      const firstOk = outcomes.find((o) => o.tInvoke >= thawedAt && served(o));
      report('R-4', {
        requests: outcomes.length,
        during: countBy(during),
        duringMaxMs: Math.max(...during.map((o) => o.ms)),
        after: countBy(after),
        firstOkAfterThawMs: firstOk ? Math.round(firstOk.tComplete - thawedAt) : null,
        proxyAccepted: proxy.accepted,
        frozenAtMs: Math.round(frozenAt - started),
      });
      expect(during.length).toBeGreaterThan(150);
      expect(duringWrong).toEqual([]);
      expect(wrongFailures(outcomes)).toEqual([]);
      expect(after.length).toBeGreaterThan(40);
      expect(okAfter).toBeGreaterThanOrEqual(0.99);
    });
  }, 30000);

  it('FaultProxy delay, reset and refuse: in-budget latency is served, the rest fails fast and heals', async () => {
    // No case of docs/testing.md of its own: the proxy's remaining modes against the service
    // (latency below and above redis.commandTimeoutMs; RST of every connection while
    // reconnects are refused, which R-6 does with CLIENT KILL).
    await withProxiedApp(async (t, proxy) => {
      const get: Op = { name: 'get', kind: 'read', method: 'GET', url: at('p') };
      const put: Op = {
        name: 'put',
        kind: 'write',
        method: 'PUT',
        url: at('p'),
        body: { value: 'v' },
      };
      expect((await inject(t, put)).status).toBe(200);

      // 2 × 300 ms on the way there and back: slow, inside the budget, served.
      proxy.delay(300);
      const slowRead = await inject(t, get);
      expect(slowRead.status).toBe(200);
      expect(slowRead.ms).toBeGreaterThanOrEqual(600);

      // 2 × 700 ms: over the budget, answered at the budget.
      proxy.delay(700);
      const [lateRead, lateWrite] = await Promise.all([inject(t, get), inject(t, put)]);
      proxy.pass();
      for (const [outcome, code] of [
        [lateRead, 'REDIS_TIMEOUT'],
        [lateWrite, 'OUTCOME_UNKNOWN'],
      ] as const) {
        expect(outcome).toMatchObject({ status: 504, code });
        expect(outcome.ms).toBeLessThanOrEqual(COMMAND_TIMEOUT_MS + 200);
      }
      // The late replies still arrive, in order: the next read waits behind them and is served
      // its own reply (a proxy or client that reordered them would hand it the PUT's "OK").
      const afterDelay = await inject(t, get);
      expect(afterDelay).toMatchObject({ status: 200, body: { value: 'v' } });

      // Every connection reset while new ones are refused: 503 at once, until it listens again.
      proxy.refuse();
      proxy.reset();
      await eventually(async () => expect(await readyz(t)).toBe(503), 2000, 10);
      const refused = await load(50, 1000, (seq) => inject(t, seq % 2 ? get : put));
      const loop = watchEventLoop();
      await proxy.accept();
      const acceptedAt = performance.now();
      await untilReady(t, 10000);
      const recoveredMs = performance.now() - acceptedAt;
      // Ready again within 2 s, plus whatever a busy machine stalled this process meanwhile.
      expect(recoveredMs).toBeLessThanOrEqual(2000 + loop.stop());
      report('FaultProxy modes', {
        slowReadMs: Math.round(slowRead.ms),
        lateMs: [Math.round(lateRead.ms), Math.round(lateWrite.ms)],
        refused: countBy(refused),
        resets: proxy.count('reset'),
        recoveredMs: Math.round(recoveredMs),
      });
      expect(proxy.count('reset')).toBeGreaterThanOrEqual(2);
      expect(
        refused
          .filter((o) => o.status !== 503 || o.code !== 'REDIS_UNAVAILABLE' || o.ms > 200)
          .map(describeOutcome),
      ).toEqual([]);
      expect((await inject(t, get)).status).toBe(200);
    });
  }, 20000);

  it('R-5 a stalled Redis (DEBUG SLEEP, CLIENT PAUSE) gives 504s within the timeout, no reconnect storm', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url), async (t) => {
        await untilReady(t);
        const admin = server.client();
        await t.call('PUT', at('m:0'), { token: t.tokens.write, body: { value: 'x' } });
        const before = await gatewayConnections(admin);
        const figures: Record<string, unknown> = {};

        /** Load while `stall` holds Redis for 2 s; returns the requests and the stall window. */
        const underStall = async (stall: () => Promise<unknown>, ops: (seq: number) => Op) => {
          const pending = load(60, 3000, (seq) => inject(t, ops(seq)));
          await sleep(300);
          const stallAt = performance.now();
          await stall();
          const outcomes = await pending;
          return { outcomes, stallAt };
        };

        for (const [label, stall] of [
          ['DEBUG SLEEP 2', () => server.client().call('DEBUG', 'SLEEP', '2')],
          ['CLIENT PAUSE 2000 ALL', () => admin.call('CLIENT', 'PAUSE', '2000', 'ALL')],
        ] as const) {
          const { outcomes, stallAt } = await underStall(stall, (seq) => mixedOp(seq));
          // Requests that started inside the stall and would have had to wait past the timeout.
          const stalled = outcomes.filter(
            (o) =>
              o.tInvoke >= stallAt + 50 && o.tInvoke < stallAt + 2000 - COMMAND_TIMEOUT_MS - 100,
          );
          const notTimedOut = stalled
            .filter(
              (o) =>
                o.status !== 504 ||
                o.code !== (o.op.kind === 'read' ? 'REDIS_TIMEOUT' : 'OUTCOME_UNKNOWN'),
            )
            .map(describeOutcome);
          const maxMs = Math.max(...outcomes.map((o) => o.ms));
          figures[label] = { requests: outcomes.length, outcomes: countBy(outcomes), maxMs };
          expect(stalled.length).toBeGreaterThan(20);
          expect(notTimedOut).toEqual([]);
          expect(wrongFailures(outcomes)).toEqual([]);
          expect(maxMs).toBeLessThanOrEqual(COMMAND_TIMEOUT_MS + 200);
          await sleep(300);
        }

        // PAUSE WRITE: reads keep working, writes time out with an unknown outcome.
        const reads = (seq: number): Op =>
          seq % 2 === 0
            ? { name: 'get', kind: 'read', method: 'GET', url: at('m:0') }
            : {
                name: 'mget',
                kind: 'read',
                method: 'POST',
                url: '/redis/kv/_mget',
                body: { keys: ['m:0'] },
              };
        const writes = (seq: number): Op =>
          seq % 2 === 0
            ? {
                name: 'put',
                kind: 'write',
                method: 'PUT',
                url: at(`w:${seq}`),
                body: { value: 'w' },
              }
            : {
                name: 'incr',
                kind: 'write',
                method: 'POST',
                url: `${at('w:counter')}/incr`,
                body: {},
              };
        const { outcomes, stallAt } = await underStall(
          () => admin.call('CLIENT', 'PAUSE', '2000', 'WRITE'),
          (seq) => (seq % 3 === 0 ? writes(seq) : reads(seq)),
        );
        const inPause = outcomes.filter(
          (o) => o.tInvoke >= stallAt + 50 && o.tInvoke < stallAt + 2000 - COMMAND_TIMEOUT_MS - 100,
        );
        const readsInPause = inPause.filter((o) => o.op.kind === 'read');
        const writesInPause = inPause.filter((o) => o.op.kind === 'write');
        figures['CLIENT PAUSE 2000 WRITE'] = {
          requests: outcomes.length,
          reads: countBy(readsInPause),
          writes: countBy(writesInPause),
          maxMs: Math.max(...outcomes.map((o) => o.ms)),
        };
        expect(readsInPause.length).toBeGreaterThan(10);
        expect(writesInPause.length).toBeGreaterThan(5);
        // Every read of the run, before, during and after the pause, is served.
        expect(
          outcomes.filter((o) => o.op.kind === 'read' && !is2xx(o)).map(describeOutcome),
        ).toEqual([]);
        expect(
          writesInPause
            .filter((o) => o.status !== 504 || o.code !== 'OUTCOME_UNKNOWN')
            .map(describeOutcome),
        ).toEqual([]);
        expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThanOrEqual(
          COMMAND_TIMEOUT_MS + 200,
        );

        // No reconnect storm: the same few connections before and after (writes, reads and
        // the pub/sub subscriber).
        const after = await gatewayConnections(admin);
        figures.connections = { before, after };
        report('R-5', figures);
        expect(after.length).toBeLessThanOrEqual(3);
        expect(after.map((c) => c.id).sort()).toEqual(before.map((c) => c.id).sort());
      });
    });
  }, 30000);

  it('R-7 after an outage Redis executes no command of a request already answered 503', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url), async (t) => {
        await untilReady(t);
        await server.kill();
        await eventually(async () => expect(await readyz(t)).toBe(503), 3000, 20);

        // Every write of the outage names keys of its own, so a replay would leave a trace.
        const outageOp = (seq: number): Op => {
          const key = `z:${seq}`;
          switch (seq % 4) {
            case 0:
              return {
                name: 'put',
                kind: 'write',
                method: 'PUT',
                url: at(key),
                body: { value: 'z' },
                key,
              };
            case 1:
              return {
                name: 'incr',
                kind: 'write',
                method: 'POST',
                url: `${at(key)}/incr`,
                body: {},
                key,
              };
            case 2:
              return {
                name: 'create',
                kind: 'write',
                method: 'POST',
                url: '/redis/kv',
                body: { key, value: 'z' },
                key,
              };
            default:
              return { name: 'get', kind: 'read', method: 'GET', url: at(key), key };
          }
        };
        const outcomes = await load(60, 3000, (seq) => inject(t, outageOp(seq)));

        await server.launch();
        const monitor = server.client();
        const monitored: string[] = [];
        const feed = await monitor.monitor();
        feed.on('error', () => undefined);
        feed.on('monitor', (_time: string, args: string[]) => monitored.push(args.join(' ')));
        await untilReady(t);
        await sleep(1500);
        // Stop watching before this test's own queries below.
        feed.disconnect();
        const stats = (await server.client().info('commandstats'))
          .split('\r\n')
          .filter((line) => line.startsWith('cmdstat_'))
          .map((line) => line.slice('cmdstat_'.length, line.indexOf(':')));
        const replayedKeys = await server.client().keys(`${t.prefix}z:*`);

        const dataCommands = [
          'set',
          'get',
          'incr',
          'incrby',
          'evalsha',
          'eval',
          'multi',
          'exec',
          'ttl',
        ];
        report('R-7', {
          requests: outcomes.length,
          outcomes: countBy(outcomes),
          commandsSinceRestart: stats,
          monitored: monitored.length,
        });
        expect(outcomes.length).toBeGreaterThan(150);
        expect(
          outcomes
            .filter((o) => o.status !== 503 || o.code !== 'REDIS_UNAVAILABLE')
            .map(describeOutcome),
        ).toEqual([]);
        expect(replayedKeys).toEqual([]);
        expect(stats.filter((name) => dataCommands.includes(name))).toEqual([]);
        expect(monitored.filter((line) => line.includes(`${t.prefix}z:`))).toEqual([]);
      });
    });
  }, 30000);

  it('R-13 answers writes with 507 REDIS_OOM while reads and deletes still work', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url), async (t) => {
        await untilReady(t);
        const admin = server.client();
        const write = (name: string, value: string) =>
          t.call('PUT', at(name), { token: t.tokens.write, body: { value } });
        expect((await write('keep', 'small')).statusCode).toBe(200);
        expect((await write('drop', 'small')).statusCode).toBe(200);
        const connectionBefore = await gatewayConnections(admin);

        const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
        await admin.config('SET', 'maxmemory-policy', 'noeviction');
        await admin.config('SET', 'maxmemory', String(used + 64 * 1024));
        try {
          const big = 'x'.repeat(512 * 1024);
          const refused = [];
          for (let i = 0; i < 3; i++) {
            refused.push(await write(`big:${i}`, big));
          }
          const incr = await t.call('POST', `${at('n')}/incr`, { token: t.tokens.write, body: {} });
          const read = await t.call('GET', at('keep'), { token: t.tokens.read });
          const deleted = await t.call('DELETE', at('drop'), { token: t.tokens.write });
          report('R-13', {
            writes: refused.map((r) => `${r.statusCode} ${r.json().code}`),
            incr: `${incr.statusCode} ${incr.json().code}`,
            read: read.statusCode,
            delete: deleted.statusCode,
          });
          for (const response of [...refused, incr]) {
            expect(response.statusCode).toBe(507);
            expect(response.json()).toMatchObject({ status: 507, code: 'REDIS_OOM' });
            expect(response.body).not.toMatch(/OOM command|maxmemory/);
          }
          expect(read.statusCode).toBe(200);
          expect(read.json().value).toBe('small');
          expect(deleted.statusCode).toBe(204);
          expect(await admin.exists(`${t.prefix}big:0`)).toBe(0);
          // No reconnect because of OOM.
          const ids = (connections: { id: string }[]) => connections.map((c) => c.id).sort();
          expect(ids(await gatewayConnections(admin))).toEqual(ids(connectionBefore));
        } finally {
          await admin.config('SET', 'maxmemory', '0');
        }
        expect((await write('big:after', 'x'.repeat(512 * 1024))).statusCode).toBe(200);
      });
    });
  }, 20000);

  it('R-14 answers writes with 503 REDIS_READONLY on a replica, reads still work, and recovers', async () => {
    await withRedisServer(async (spare) => {
      await withRedisServer(async (server) => {
        await withApp(appOn(server.url), async (t) => {
          await untilReady(t);
          const primary = spare.client();
          await primary.set(`${t.prefix}ro`, 'from-spare');
          // Start the full sync at once (Redis 7 waits 5 s for more replicas by default).
          await primary.config('SET', 'repl-diskless-sync-delay', '0');
          const admin = server.client();
          await admin.call('REPLICAOF', '127.0.0.1', String(spare.port));
          try {
            await eventually(
              async () => expect(await admin.info('replication')).toMatch(/master_link_status:up/),
              5000,
              20,
            );
            const outcomes: Outcome[] = [];
            for (let i = 0; i < 30; i++) {
              const write: Op =
                i % 2 === 0
                  ? {
                      name: 'put',
                      kind: 'write',
                      method: 'PUT',
                      url: at(`ro:${i}`),
                      body: { value: 'w' },
                    }
                  : {
                      name: 'incr',
                      kind: 'write',
                      method: 'POST',
                      url: `${at('ro:n')}/incr`,
                      body: {},
                    };
              const read: Op = { name: 'get', kind: 'read', method: 'GET', url: at('ro') };
              outcomes.push(...(await Promise.all([inject(t, write), inject(t, read)])));
              await sleep(20);
            }
            const writes = outcomes.filter((o) => o.op.kind === 'write');
            const reads = outcomes.filter((o) => o.op.kind === 'read');
            report('R-14', { writes: countBy(writes), reads: countBy(reads) });
            expect(
              writes
                .filter(
                  (o) => o.status !== 503 || o.code !== 'REDIS_READONLY' || !retryAfterInRange(o),
                )
                .map(describeOutcome),
            ).toEqual([]);
            expect(
              reads.filter((o) => !is2xx(o) || o.body?.value !== 'from-spare').map(describeOutcome),
            ).toEqual([]);
          } finally {
            await admin.call('REPLICAOF', 'NO', 'ONE');
          }
          const healedAt = performance.now();
          await eventually(
            async () => {
              const response = await t.call('PUT', at('ro:after'), {
                token: t.tokens.write,
                body: { value: 'w' },
              });
              expect(response.statusCode).toBe(200);
            },
            2000,
            20,
          );
          report('R-14 recovery', { ms: Math.round(performance.now() - healedAt) });
          expect(await admin.get(`${t.prefix}ro:after`)).toBe('w');
        });
      });
    });
  }, 20000);

  it('R-14 with a host name reconnects on READONLY at most once per interval, never per write', async () => {
    // Behind a host name a reconnect may reach a new primary (DNS failover), so the service
    // does reconnect there, but a replica that stays a replica must not cause a reconnect storm.
    await withRedisServer(async (spare) => {
      await withRedisServer(async (server) => {
        await withApp(appOn(`redis://localhost:${server.port}`), async (t) => {
          await untilReady(t);
          await spare.client().config('SET', 'repl-diskless-sync-delay', '0');
          const admin = server.client();
          await admin.call('REPLICAOF', '127.0.0.1', String(spare.port));
          try {
            await eventually(
              async () => expect(await admin.info('replication')).toMatch(/master_link_status:up/),
              5000,
              20,
            );
            const connections = async () =>
              Number(/total_connections_received:(\d+)/.exec(await admin.info('stats'))?.[1]);
            const before = await connections();
            const outcomes = await load(40, 3000, (seq) =>
              inject(
                t,
                seq % 2 === 0
                  ? {
                      name: 'put',
                      kind: 'write',
                      method: 'PUT',
                      url: at(`h:${seq}`),
                      body: { value: 'w' },
                    }
                  : { name: 'get', kind: 'read', method: 'GET', url: at('h:absent') },
              ),
            );
            const reconnects = (await connections()) - before;
            const writes = outcomes.filter((o) => o.op.kind === 'write');
            const reads = outcomes.filter((o) => o.op.kind === 'read');
            report('R-14 host name', {
              writes: countBy(writes),
              reads: countBy(reads),
              reconnects,
            });
            // 60 refused writes in 3 s: one reconnect per 2 s at most, and at least the first.
            expect(reconnects).toBeGreaterThanOrEqual(1);
            expect(reconnects).toBeLessThanOrEqual(2);
            expect(
              writes
                .filter(
                  (o) =>
                    o.status !== 503 ||
                    !['REDIS_READONLY', 'REDIS_UNAVAILABLE'].includes(o.code ?? ''),
                )
                .map(describeOutcome),
            ).toEqual([]);
            expect(writes.filter((o) => o.code === 'REDIS_READONLY').length).toBeGreaterThan(
              writes.length / 2,
            );
            // Reads go over their own connection, which the write connection's reconnects spare.
            expect(reads.filter((o) => o.status !== 404).map(describeOutcome)).toEqual([]);
          } finally {
            await admin.call('REPLICAOF', 'NO', 'ONE');
          }
        });
      });
    });
  }, 20000);

  it('R-17 starts without Redis, answers 503, and becomes ready when Redis appears', async () => {
    const port = await freePort();
    await withApp(appOn(`redis://127.0.0.1:${port}`), async (t) => {
      expect((await t.call('GET', '/healthz')).statusCode).toBe(200);
      expect(await readyz(t)).toBe(503);
      const outcomes = await load(50, 500, (seq) => inject(t, mixedOp(seq)));
      expect(
        outcomes
          .filter((o) => o.status !== 503 || o.code !== 'REDIS_UNAVAILABLE' || o.ms > 200)
          .map(describeOutcome),
      ).toEqual([]);

      await withRedisServer(
        async () => {
          const upAt = performance.now();
          await untilReady(t, 2000);
          const readyMs = performance.now() - upAt;
          const written = await t.call('PUT', at('r17'), {
            token: t.tokens.write,
            body: { value: '1' },
          });
          report('R-17', {
            requestsWhileDown: countBy(outcomes),
            readyAfterRedisMs: Math.round(readyMs),
          });
          expect(readyMs).toBeLessThanOrEqual(2000);
          expect(written.statusCode).toBe(200);
        },
        { port },
      );
    });
  }, 20000);

  it('R-17 LOADING: not ready while Redis loads its dataset, ready soon after', async () => {
    await withRedisServer(async (server) => {
      // A dataset that takes most of a second to load: a million keys.
      const seeding = server.client();
      await seeding.call('DEBUG', 'POPULATE', '1000000', 'key', '100');
      await seeding.call('SAVE');
      await server.kill();

      await withApp(appOn(server.url), async (t) => {
        // No ready check: ioredis would hold INFO back until the loading is over.
        const probe = server.client({ retryStrategy: () => 20, enableReadyCheck: false });
        const launching = server.launch();
        await eventually(
          async () => expect(await probe.info('persistence')).toMatch(/loading:1/),
          5000,
          10,
        );
        const whileLoading: Outcome[] = [];
        const readiness: number[] = [];
        const loop = watchEventLoop();
        while (/loading:1/.test(await probe.info('persistence'))) {
          whileLoading.push(await inject(t, mixedOp(whileLoading.length)));
          readiness.push(await readyz(t));
          await sleep(20);
        }
        const loadedAt = performance.now();
        await untilReady(t, 15000);
        const readyMs = performance.now() - loadedAt;
        // The bounds below are a quiet machine's, widened by what this process was stalled.
        const stallMs = loop.stop();
        // The harness's start-up probe has its own ready check; it may return later.
        await launching;
        report('R-17 LOADING', {
          requestsWhileLoading: countBy(whileLoading),
          readyzWhileLoading: [...new Set(readiness)],
          readyAfterLoadedMs: Math.round(readyMs),
        });
        expect(whileLoading.length).toBeGreaterThan(5);
        expect(
          whileLoading
            .filter(
              (o) => o.status !== 503 || o.code !== 'REDIS_UNAVAILABLE' || o.ms > 200 + stallMs,
            )
            .map(describeOutcome),
        ).toEqual([]);
        expect(readiness.every((status) => status === 503)).toBe(true);
        expect(readyMs).toBeLessThanOrEqual(1000 + stallMs);
        expect(await probe.dbsize()).toBe(1000000);
      });
    });
  }, 30000);
});

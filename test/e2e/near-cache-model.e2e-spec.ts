/**
 * N-12: a model check of the near-cache. fast-check generates schedules of writes (through either
 * gateway instance, or straight into Redis: SET, SET with a short PX, DEL) and reads (GET and
 * _mget through either instance, both caching) over three names, spread over three lanes that
 * run at the same time, so each schedule is a real interleaving of HTTP requests and Redis
 * invalidations. Two properties:
 *
 * - no read ever answers a value Redis never held for that name (every value written is unique,
 *   and "absent" is allowed only when the name was absent at some moment: before its first
 *   write, after a DEL or a PX expiry);
 * - once the writes stop and the invalidation delay has passed, every read through either
 *   instance agrees with Redis.
 *
 * A failure shrinks to the shortest schedule that still shows it, printed with its seed.
 */
import fc from 'fast-check';
import { TestApp } from '../support/app';
import { metricValue } from '../support/metrics';
import { sleep } from '../support/ports';
import { RedisServer } from '../support/redis';

const NAMES = 3;
const LANES = 3;
/** The invalidation delay the cache must keep within (N-1 measures it), and the longest PX. */
const INVALIDATION_MS = 100;
const MAX_PX_MS = 60;
const NEAR = { enabled: true, maxBytes: 64 * 1024, maxEntryBytes: 1024, keyPatterns: ['*'] };

type Via = 'a' | 'b';
type Op =
  | { lane: number; kind: 'set' | 'del'; via: Via | 'redis'; name: number }
  | { lane: number; kind: 'setpx'; via: 'redis'; name: number; px: number }
  | { lane: number; kind: 'get' | 'mget'; via: Via; name: number };

const lane = fc.integer({ min: 0, max: LANES - 1 });
const name = fc.integer({ min: 0, max: NAMES - 1 });
const writer = fc.constantFrom<Via | 'redis'>('a', 'b', 'redis');
const reader = fc.constantFrom<Via>('a', 'b');
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ lane, kind: fc.constantFrom('set' as const, 'del' as const), via: writer, name }),
  fc.record({
    lane,
    kind: fc.constant('setpx' as const),
    via: fc.constant('redis' as const),
    name,
    px: fc.integer({ min: 5, max: MAX_PX_MS }),
  }),
  // Reads weigh more: a stale answer needs a read at the wrong moment.
  {
    arbitrary: fc.record({
      lane,
      kind: fc.constantFrom('get' as const, 'mget' as const),
      via: reader,
      name,
    }),
    weight: 3,
  },
);

/** What one schedule may see: every value each name held, and whether it was ever absent. */
class History {
  private readonly held = Array.from({ length: NAMES }, () => new Set<string | null>([null]));
  private serial = 0;

  nextValue(n: number): string {
    const value = `v${(this.serial += 1)}`;
    this.held[n].add(value);
    return value;
  }

  absent(n: number): void {
    this.held[n].add(null);
  }

  allows(n: number, value: string | null): boolean {
    return this.held[n].has(value);
  }
}

describe('near-cache model (N-12)', () => {
  let server: RedisServer;
  let a: TestApp;
  let b: TestApp;
  let run = 0;

  beforeAll(async () => {
    server = await RedisServer.start();
    const config = { nearCache: NEAR, rateLimits: { requestsPerSecond: 0 } };
    a = await TestApp.create({ redisUrl: server.url, config });
    b = await TestApp.create({
      redisUrl: server.url,
      issuer: a.issuer,
      config: { ...config, redis: { keyPrefix: a.prefix } },
    });
    for (const t of [a, b]) {
      await waitArmed(t);
    }
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await server?.stop();
  });

  const app = (via: Via) => (via === 'a' ? a : b);
  const path = (names: string[], n: number) => `/redis/kv/${encodeURIComponent(names[n])}`;

  /** One read through the gateway: the value, or null when the name is absent. */
  async function read(names: string[], via: Via, kind: 'get' | 'mget', n: number) {
    const t = app(via);
    if (kind === 'get') {
      const answer = await t.call('GET', path(names, n), { token: t.tokens.read });
      if (answer.statusCode === 404) {
        return null;
      }
      expect(answer.statusCode).toBe(200);
      return answer.json().value as string;
    }
    const answer = await t.call('POST', '/redis/kv/_mget', {
      token: t.tokens.read,
      body: { keys: names },
    });
    expect(answer.statusCode).toBe(200);
    return (answer.json().values as Record<string, string>)[names[n]] ?? null;
  }

  async function perform(names: string[], history: History, step: Op, seen: string[]) {
    const key = `${a.prefix}${names[step.name]}`;
    switch (step.kind) {
      case 'get':
      case 'mget': {
        const value = await read(names, step.via, step.kind, step.name);
        if (!history.allows(step.name, value)) {
          seen.push(`${step.via} ${step.kind} ${names[step.name]} answered ${value}`);
        }
        return;
      }
      case 'set': {
        const value = history.nextValue(step.name);
        if (step.via === 'redis') {
          await a.redis.set(key, value);
        } else {
          const t = app(step.via);
          const answer = await t.call('PUT', path(names, step.name), {
            token: t.tokens.write,
            body: { value },
          });
          expect(answer.statusCode).toBe(200);
        }
        return;
      }
      case 'setpx':
        // Held for px ms, then absent: both are values Redis held.
        history.absent(step.name);
        await a.redis.set(key, history.nextValue(step.name), 'PX', step.px);
        return;
      case 'del':
        history.absent(step.name);
        if (step.via === 'redis') {
          await a.redis.del(key);
        } else {
          const t = app(step.via);
          const answer = await t.call('DELETE', path(names, step.name), { token: t.tokens.write });
          expect([204, 404]).toContain(answer.statusCode);
        }
    }
  }

  it('no read answers a value Redis never held; once writes stop, every read agrees with Redis', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 24 }), async (schedule) => {
        run += 1;
        const names = Array.from({ length: NAMES }, (_, n) => `model:${run}:${n}`);
        const history = new History();
        const stale: string[] = [];
        await Promise.all(
          Array.from({ length: LANES }, async (_, l) => {
            for (const step of schedule.filter((s) => s.lane === l)) {
              await perform(names, history, step, stale);
            }
          }),
        );
        expect(stale).toEqual([]);

        // Quiet: every PX has run out and every invalidation has arrived.
        await sleep(MAX_PX_MS + INVALIDATION_MS);
        for (let n = 0; n < NAMES; n++) {
          const truth = await a.redis.get(`${a.prefix}${names[n]}`);
          for (const via of ['a', 'b'] as const) {
            for (const kind of ['get', 'mget'] as const) {
              expect(`${via} ${kind} ${names[n]}: ${await read(names, via, kind, n)}`).toBe(
                `${via} ${kind} ${names[n]}: ${truth}`,
              );
            }
          }
        }
      }),
      { numRuns: 30 },
    );
    // The property is about the cache: it must have answered from memory along the way.
    const metrics = (await a.call('GET', '/metrics')).body;
    expect(metricValue(metrics, 'redis_gateway_near_cache_hits_total')).toBeGreaterThan(0);
  }, 120000);
});

async function waitArmed(t: TestApp): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    const status = await t.call('GET', '/redis/status', { token: t.tokens.read });
    if (status.json().gateway.nearCache.trackingArmed === true) {
      return;
    }
    await sleep(50);
  }
  throw new Error('near-cache tracking never armed');
}

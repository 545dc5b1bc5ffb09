import { performance } from 'node:perf_hooks';
import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import { TestApp } from '../support/app';
import { percentile, report } from '../support/figures';
import { eventually, sleep } from '../support/ports';
import { watchEventLoop } from '../support/probe';
import { INVALIDATE_CHANNEL } from '../../src/near-cache/tracking';
import { nearCacheStatus, xCache } from '../support/near-cache';
import { expectProblem } from '../support/problems';

/**
 * The near-cache on the topology of the test project (standalone, the Sentinel set, the 3-master
 * cluster): two instances `a` (reads) and `b` (writes elsewhere) with the cache on and one key
 * prefix. The matrix servers are shared with suites running in parallel: nothing here flushes
 * a database or kills a connection it did not identify as one of its own instances' (only this
 * suite turns the near-cache on in the matrix). FLUSHALL and restarts are in near-cache.e2e-spec,
 * FLUSHALL and a slot migration on a cluster of its own in near-cache-cluster.e2e-spec.
 */
const at = (name: string) => `/redis/kv/${encodeURIComponent(name)}`;
const NEAR = { enabled: true, maxBytes: 1024 * 1024, maxEntryBytes: 4096, keyPatterns: ['*'] };
/** The invalidation delay the near-cache promises on a quiet machine. */
const STALENESS_BOUND_MS = 100;

/** The lines of CLIENT LIST, each as its fields. */
function clients(list: string): Record<string, string>[] {
  return list
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields: Record<string, string> = {};
      for (const field of line.trim().split(' ')) {
        const eq = field.indexOf('=');
        fields[field.slice(0, eq)] = field.slice(eq + 1);
      }
      return fields;
    });
}

describe('near-cache on the project topology (cluster: one tracking link per master)', () => {
  let a: TestApp;
  let b: TestApp;
  /** One name per master (the one server outside cluster mode), each in another slot. */
  let names: string[];

  const get = (t: TestApp, name: string) => t.call('GET', at(name), { token: t.tokens.read });
  const put = (t: TestApp, name: string, value: string, ttl?: number) =>
    t.call('PUT', at(name), { token: t.tokens.write, body: { value, ttl } });
  const status = nearCacheStatus;
  const armed = (t: TestApp) =>
    eventually(async () => expect((await status(t)).trackingArmed).toBe(true), 15000);
  const direct = (name: string) => `${a.prefix}${name}`;
  /**
   * A value cached in `a`: written through `b`, then read until a HIT. The first read is a MISS;
   * the second is a HIT unless the write's own invalidation reached `a` only after that first
   * read had been cached (both sockets read in the same turn of the event loop), which removes
   * it again: a third read, once, is allowed for that.
   */
  const cached = async (name: string, value: string) => {
    expect((await put(b, name, value)).statusCode).toBe(200);
    expect(xCache(await get(a, name))).toBe('MISS');
    let hit = await get(a, name);
    if (xCache(hit) !== 'HIT') {
      hit = await get(a, name);
    }
    expect(hit.json().value).toBe(value);
    expect(xCache(hit)).toBe('HIT');
  };
  /** Reads through `a` until the value is `value`, and says how long that took and how. */
  const seenWithin = async (name: string, value: string) => {
    const started = performance.now();
    for (;;) {
      const read = await get(a, name);
      if (read.statusCode === 200 && read.json().value === value) {
        return { ms: performance.now() - started, cache: xCache(read) };
      }
      if (performance.now() - started > 2000) {
        throw new Error(`not seen: ${read.statusCode} ${read.body}`);
      }
      await sleep(1);
    }
  };
  /** The master (`host:port`) serving a name's slot, by the direct cluster client. */
  const masterOf = (name: string) =>
    a.redis instanceof Cluster ? a.redis.slots[calculateSlot(direct(name))]?.[0] : undefined;
  const serverKey = (server: Redis) => `${server.options.host}:${server.options.port}`;
  /** This suite's invalidation connections on one server, by CLIENT LIST. */
  const invalidationClients = async (server: Redis) =>
    clients((await server.client('LIST')) as string).filter(
      (client) => client.name === 'redis-gateway:invalidations',
    );
  /** The connections tracking on one server, redirected to one of this suite's subscribers. */
  const trackingClients = async (server: Redis) => {
    const ids = new Set((await invalidationClients(server)).map((client) => client.id));
    const all = clients((await server.client('LIST')) as string);
    return all.filter((client) => client.flags.includes('t') && ids.has(client.redir));
  };
  const kill = async (server: Redis, targets: Record<string, string>[]) => {
    for (const { id } of targets) {
      await server.call('CLIENT', 'KILL', 'ID', id);
    }
  };

  beforeAll(async () => {
    a = await TestApp.create({ config: { nearCache: NEAR, rateLimits: { requestsPerSecond: 0 } } });
    b = await TestApp.create({
      issuer: a.issuer,
      config: {
        nearCache: NEAR,
        redis: { keyPrefix: a.prefix },
        rateLimits: { requestsPerSecond: 0 },
      },
    });
    await armed(a);
    await armed(b);
    names = ['n:0'];
    if (a.redis instanceof Cluster) {
      const masters = new Set(a.servers().map(serverKey));
      const found = new Map<string, string>();
      for (let n = 0; found.size < masters.size && n < 1000; n++) {
        const owner = masterOf(`n:${n}`);
        if (owner !== undefined && !found.has(owner)) {
          found.set(owner, `n:${n}`);
        }
      }
      names = [...found.values()];
      expect(names).toHaveLength(masters.size);
    }
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('is armed on the project topology and says so in /redis/status (N-7)', async () => {
    const read = await a.call('GET', '/redis/status', { token: a.tokens.read });
    expect(read.json().redis).toMatchObject({ mode: a.topology });
    expect(await status(a)).toMatchObject({ enabled: true, trackingArmed: true });
  });

  it('arms one tracking link per master: its reads connection redirected to a subscriber on that master (N-7)', async () => {
    for (const server of a.servers()) {
      const subscribers = await invalidationClients(server);
      // a and b: one subscriber each on every master, subscribed to the invalidation channel.
      expect(subscribers.length).toBeGreaterThanOrEqual(2);
      expect(subscribers.every((client) => client.sub === '1')).toBe(true);
      expect((await trackingClients(server)).length).toBeGreaterThanOrEqual(2);
      const channels = (await server.call('PUBSUB', 'NUMSUB', INVALIDATE_CHANNEL)) as unknown[];
      expect(Number(channels[1])).toBeGreaterThanOrEqual(2);
    }
  });

  it('caches a key on every master (HIT after a first read), and /redis/status counts them (N-7)', async () => {
    for (const name of names) {
      await cached(name, `v:${name}`);
    }
    const state = await status(a);
    expect(state.entries).toBeGreaterThanOrEqual(names.length);
    expect(state.bytes).toBeGreaterThan(0);
  });

  it('sees a write through the other instance and one straight into Redis within 100 ms, on every master (N-7)', async () => {
    const staleness: number[] = [];
    const loop = watchEventLoop();
    for (let round = 0; round < 10; round++) {
      for (const name of names) {
        await cached(name, `b${round}`);
        expect((await put(b, name, `b${round}'`)).statusCode).toBe(200);
        const seen = await seenWithin(name, `b${round}'`);
        expect(seen.cache).toBe('MISS');
        staleness.push(seen.ms);
        // Straight into the master of the key's slot (the cluster client routes it there).
        await a.redis.set(direct(name), `direct${round}`);
        staleness.push((await seenWithin(name, `direct${round}`)).ms);
      }
    }
    const stall = loop.stop();
    const figures = {
      topology: a.topology,
      masters: names.length,
      writes: staleness.length,
      p50: percentile(staleness, 50),
      p99: percentile(staleness, 99),
      max: Math.max(...staleness),
      longestStall: stall,
    };
    report('near-cache staleness after a remote write (ms)', figures);
    // The bound on a quiet machine, widened by the longest stall this process measured.
    expect(figures.p99).toBeLessThan(STALENESS_BOUND_MS + stall);
  });

  it('reads its own writes and agrees with Redis: GET, PUT, _mget, DELETE, INCR, TTL expiry (N-8)', async () => {
    for (const name of names) {
      await cached(name, 'old');
      expect((await put(a, name, 'new')).statusCode).toBe(200);
      expect((await get(a, name)).json().value).toBe('new');
      expect(await a.redis.get(direct(name))).toBe('new');
    }
    const mget = () =>
      a.call('POST', '/redis/kv/_mget', { token: a.tokens.read, body: { keys: names } });
    await mget();
    const both = await mget();
    expect(xCache(both)).toBe('HIT');
    const values = await Promise.all(names.map((name) => a.redis.get(direct(name))));
    expect(both.json().values).toEqual(Object.fromEntries(names.map((n, i) => [n, values[i]])));
    await a.redis.set(direct(names[names.length - 1]), 'changed');
    await eventually(async () => {
      expect((await mget()).json().values[names[names.length - 1]]).toBe('changed');
    }, 1000);
    for (const name of names) {
      await cached(name, '1');
      const incr = await a.call('POST', `${at(name)}/incr`, {
        token: a.tokens.write,
        body: { by: 2 },
      });
      expect(incr.statusCode).toBe(200);
      expect((await get(a, name)).json().value).toBe('3');
      expect(await a.redis.get(direct(name))).toBe('3');
      expect((await a.call('DELETE', at(name), { token: a.tokens.write })).statusCode).toBe(204);
      expectProblem(await get(a, name), 404, 'NOT_FOUND');
      expect(await a.redis.exists(direct(name))).toBe(0);
    }
    for (const name of names) {
      expect((await put(b, name, 'brief', 1)).statusCode).toBe(200);
      await get(a, name);
      const hit = await get(a, name);
      expect(xCache(hit)).toBe('HIT');
      expect(hit.json().ttl).toBeLessThanOrEqual(1);
    }
    await sleep(1100);
    for (const name of names) {
      expectProblem(await get(a, name), 404, 'NOT_FOUND');
      expect(await a.redis.exists(direct(name))).toBe(0);
    }
  });

  it('flushes everything when one master loses its invalidation connection, bypasses meanwhile, and re-arms (N-9)', async () => {
    for (const name of names) {
      await cached(name, 'before');
    }
    const last = names[names.length - 1];
    const owner = masterOf(last);
    const server = a.servers().find((node) => owner === undefined || serverKey(node) === owner)!;
    await kill(server, await invalidationClients(server));
    // That master can no longer tell of changes: nothing is answered from memory, on any master.
    await a.redis.set(direct(last), 'during');
    expect((await get(a, last)).json().value).toBe('during');
    expect((await status(a)).entries).toBe(0);
    await armed(a);
    await armed(b);
    for (const name of names) {
      await cached(name, 'after');
    }
  });

  it('flushes when a master closes a reads connection, and re-arms on a new one (N-9)', async () => {
    for (const name of names) {
      await cached(name, 'before');
    }
    const server = a.servers()[0];
    const tracking = await trackingClients(server);
    expect(tracking.length).toBeGreaterThanOrEqual(2);
    await kill(server, tracking);
    await eventually(async () => expect((await status(a)).entries).toBe(0), 2000);
    await armed(a);
    await armed(b);
    for (const name of names) {
      await cached(name, 'after');
    }
    expect((await trackingClients(server)).length).toBeGreaterThanOrEqual(2);
  });
});

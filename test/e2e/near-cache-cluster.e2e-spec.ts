import { performance } from 'node:perf_hooks';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { TestApp } from '../support/app';
import { report } from '../support/figures';
import { eventually } from '../support/ports';
import { nearCacheStatus, xCache } from '../support/near-cache';
import { expectProblem } from '../support/problems';
import { RedisClusterSet } from '../support/topology';

/**
 * The near-cache on a Redis Cluster of this suite's own (3 masters), where FLUSHALL and a slot
 * migration touch no other suite; the standalone project runs it, as the other suites that
 * change their topology. The shared matrix cluster's cases are in near-cache-topology.
 */
const at = (name: string) => `/redis/kv/${encodeURIComponent(name)}`;
const NEAR = { enabled: true, maxBytes: 1024 * 1024, maxEntryBytes: 4096, keyPatterns: ['*'] };

describe('near-cache on a cluster of its own: FLUSHALL and a slot migration flush all', () => {
  let set: RedisClusterSet;
  let t: TestApp;
  let direct: Cluster;
  /** One name per master. */
  let names: string[];

  const get = (name: string) => t.call('GET', at(name), { token: t.tokens.read });
  const state = () => nearCacheStatus(t);
  const masterOf = (name: string) => direct.slots[calculateSlot(t.prefix + name)][0];
  const serverOf = (name: string) =>
    set.servers.find((server) => `127.0.0.1:${server.port}` === masterOf(name))!;
  /** A value cached: written straight into Redis, read until a HIT. */
  const cached = async (name: string, value: string) => {
    await direct.set(t.prefix + name, value);
    await eventually(async () => {
      const read = await get(name);
      expect(read.json().value).toBe(value);
      expect(read.headers['x-cache']).toBe('HIT');
    }, 5000);
  };
  const armed = () => eventually(async () => expect((await state()).trackingArmed).toBe(true));

  beforeAll(async () => {
    set = await RedisClusterSet.start(3);
    try {
      t = await TestApp.create({
        redisUrl: set.servers[0].url,
        config: { nearCache: NEAR, redis: { mode: 'cluster', clusterNodes: set.nodes } },
      });
      direct = new Cluster(
        set.servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
        { redisOptions: { maxRetriesPerRequest: 1 } },
      );
      direct.on('error', () => undefined);
      await direct.ping();
      await armed();
    } catch (error) {
      await t?.close();
      await set.stop();
      throw error;
    }
    const byMaster = new Map<string, string>();
    for (let n = 0; byMaster.size < 3; n++) {
      const name = `own:${n}`;
      if (!byMaster.has(masterOf(name))) {
        byMaster.set(masterOf(name), name);
      }
    }
    names = [...byMaster.values()];
  }, 60000);

  afterAll(async () => {
    try {
      direct?.disconnect();
      await t?.close();
    } finally {
      await set?.stop();
    }
  });

  it('FLUSHALL on one master flushes the whole cache and it stays armed; on every master too (N-10)', async () => {
    for (const name of names) {
      await cached(name, 'v');
    }
    await serverOf(names[0]).client().flushall();
    await eventually(async () => expect((await state()).entries).toBe(0), 1000);
    expect((await state()).trackingArmed).toBe(true);
    expectProblem(await get(names[0]), 404, 'NOT_FOUND');
    for (const name of names.slice(1)) {
      expect(xCache(await get(name))).toBe('MISS');
    }
    for (const name of names) {
      await cached(name, 'w');
    }
    for (const server of set.servers) {
      await server.client().flushall();
    }
    await eventually(async () => expect((await state()).entries).toBe(0), 1000);
    for (const name of names) {
      expectProblem(await get(name), 404, 'NOT_FOUND');
    }
  });

  it('a slot moved to another master flushes everything, and the key is tracked on its new master (N-10)', async () => {
    for (const name of names) {
      await cached(name, 'before');
    }
    const [moving, other] = names;
    const slot = calculateSlot(t.prefix + moving);
    const source = serverOf(moving);
    const target = serverOf(other);
    const sourceId = await source.client().cluster('MYID');
    const targetId = await target.client().cluster('MYID');
    await target.client().cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await source.client().cluster('SETSLOT', slot, 'MIGRATING', targetId);
    await source
      .client()
      .call('MIGRATE', '127.0.0.1', target.port, '', 0, 5000, 'KEYS', t.prefix + moving);
    for (const server of [
      target,
      source,
      ...set.servers.filter((s) => s !== source && s !== target),
    ]) {
      await server.client().cluster('SETSLOT', slot, 'NODE', targetId);
    }
    // The gateway learns of the move at its next read of the slot (MOVED, then a refresh of
    // the slot map): a topology change, so the keys on the other masters go too.
    expect((await get(moving)).json().value).toBe('before');
    await eventually(async () => {
      expect(xCache(await get(names[2]))).toBe('MISS');
    }, 2000);
    await armed();
    await cached(moving, 'on the new master');
    // A change on the new master reaches the gateway: that master's link tracks it.
    const started = performance.now();
    await direct.set(t.prefix + moving, 'changed there');
    await eventually(
      async () => expect((await get(moving)).json().value).toBe('changed there'),
      1000,
    );
    report('near-cache invalidation from a slot new master (ms)', {
      ms: performance.now() - started,
    });
    expect(masterOf(moving)).toBe(`127.0.0.1:${target.port}`);
  });
});

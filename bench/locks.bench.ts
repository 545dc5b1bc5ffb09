/**
 * Lock throughput through the HTTP API: acquire + release pairs per second, uncontended (one
 * client; 16 clients on 16 names) and contended (16 clients on one name, at two retry delays),
 * beside a KV GET baseline over the same HTTP path. It starts the real application on a loopback
 * port with a development issuer, and uses REDIS_URL or a throwaway redis-server.
 *
 *   node bench/run.js locks                       # 5 s per scenario
 *   BENCH_SECONDS=10 REDIS_URL=redis://127.0.0.1:6379 node bench/run.js locks
 *
 * Figures, never assertions: they depend on the machine (and on what else runs on it).
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { createApp } from '../src/app.factory';
import { SCOPES } from '../src/auth/scopes';
import { loadConfig } from '../src/config/config.loader';
import { LocalIssuer } from '../src/dev/local-issuer';
import { percentile, throwawayRedis } from './support';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

interface Result {
  pairs: number;
  refused: number;
  acquireMs: number[];
  seconds: number;
}

async function main(): Promise<void> {
  const redis = await throwawayRedis();
  const issuer = await LocalIssuer.start();
  const config = loadConfig({
    env: {},
    overrides: {
      redis: { url: redis.url, keyPrefix: `bench:${process.pid}:` },
      auth: { issuer: issuer.url, audience: issuer.audience },
      log: { level: 'silent' },
      server: { port: 0, host: '127.0.0.1' },
      // A throwaway Redis has just started: the delayed restart would refuse every grant.
      locks: { delayedRestartMs: 0 },
      // One token subject stands for every client: its request rate is not what is measured.
      rateLimits: { requestsPerSecond: 0 },
    },
  });
  const app = await createApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const token = await issuer.token({ scopes: [SCOPES.read, SCOPES.write] });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const lockUrl = (name: string) => `${base}/redis/locks/${encodeURIComponent(name)}`;

  /** Acquire + release pairs from `clients` loops for SECONDS; client i locks names[i]. */
  async function pairs(names: string[], waitMs: number, retryDelayMs?: number): Promise<Result> {
    const result: Result = { pairs: 0, refused: 0, acquireMs: [], seconds: 0 };
    const started = performance.now();
    const until = started + SECONDS * 1000;
    await Promise.all(
      names.map(async (name) => {
        while (performance.now() < until) {
          const sent = performance.now();
          const acquired = await fetch(lockUrl(name), {
            method: 'POST',
            headers,
            body: JSON.stringify({ ttlMs: 10000, waitMs, retryDelayMs }),
          });
          result.acquireMs.push(performance.now() - sent);
          if (acquired.status !== 201) {
            await acquired.arrayBuffer();
            result.refused++;
            continue;
          }
          const { token: lockToken } = (await acquired.json()) as { token: string };
          const released = await fetch(lockUrl(name), {
            method: 'DELETE',
            headers: { authorization: headers.authorization, 'lock-token': lockToken },
          });
          await released.arrayBuffer();
          if (released.status !== 204) {
            throw new Error(`release answered ${released.status}`);
          }
          result.pairs++;
        }
      }),
    );
    result.seconds = (performance.now() - started) / 1000;
    return result;
  }

  /** KV GETs (a miss) from `clients` loops for SECONDS: the same HTTP path without locking. */
  async function kvGets(clients: number): Promise<number> {
    let count = 0;
    const started = performance.now();
    const until = started + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < until) {
          const response = await fetch(`${base}/redis/kv/bench-miss`, { headers });
          await response.arrayBuffer();
          count++;
        }
      }),
    );
    return count / ((performance.now() - started) / 1000);
  }

  const report = (label: string, result: Result, baseline: number) => {
    const perSecond = result.pairs / result.seconds;
    process.stdout.write(
      `${label.padEnd(46)} ${perSecond.toFixed(0).padStart(6)} pairs/s` +
        `  acquire p50 ${percentile(result.acquireMs, 0.5).toFixed(1)} ms` +
        ` p99 ${percentile(result.acquireMs, 0.99).toFixed(1)} ms` +
        `  refused ${result.refused}` +
        `  (${((2 * perSecond) / baseline).toFixed(2)} × KV GET request rate)\n`,
    );
  };

  try {
    await pairs(['warm-up'], 0).catch(() => undefined);
    const clients16 = Array.from({ length: 16 }, (_, i) => `own:${i}`);
    process.stdout.write(
      `redis-gateway lock benchmark: ${SECONDS} s per scenario, Redis ${redis.url}, node ${process.version}\n`,
    );
    const kv1 = await kvGets(1);
    process.stdout.write(
      `${'baseline: KV GET (miss), 1 client'.padEnd(46)} ${kv1.toFixed(0).padStart(6)} req/s\n`,
    );
    const kv16 = await kvGets(16);
    process.stdout.write(
      `${'baseline: KV GET (miss), 16 clients'.padEnd(46)} ${kv16.toFixed(0).padStart(6)} req/s\n`,
    );
    report('uncontended: 1 client, 1 name', await pairs(['solo'], 0), kv1);
    report('uncontended: 16 clients, a name each', await pairs(clients16, 0), kv16);
    const contended = Array.from({ length: 16 }, () => 'shared');
    report('contended: 16 clients, 1 name, retryDelayMs 200', await pairs(contended, 10000), kv16);
    report(
      'contended: 16 clients, 1 name, retryDelayMs 10',
      await pairs(contended, 10000, 10),
      kv16,
    );
  } finally {
    await app.close();
    await issuer.close();
    redis.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});

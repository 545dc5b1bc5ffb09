import { RedisServer, containerRuntimeHint } from './redis';

interface TestGlobals {
  redisServer?: RedisServer;
  redisContainer?: { stop(): Promise<unknown> };
}

/**
 * The shared Redis of the suite: REDIS_URL when it is set, else a testcontainers Redis when a
 * container runtime answers, else a redis-server spawned on a free port. Tests isolate
 * themselves with a unique key prefix each, never FLUSHALL.
 */
export default async function globalSetup(): Promise<void> {
  const globals = globalThis as TestGlobals;
  if (process.env.REDIS_URL) {
    process.stdout.write(`\ntests use REDIS_URL ${process.env.REDIS_URL}\n`);
    return;
  }
  if (containerRuntimeHint()) {
    try {
      const { RedisContainer } = await import('@testcontainers/redis');
      const container = await new RedisContainer('redis:7-alpine').start();
      globals.redisContainer = container;
      process.env.REDIS_URL = container.getConnectionUrl();
      process.stdout.write(`\ntests use a testcontainers Redis at ${process.env.REDIS_URL}\n`);
      return;
    } catch (error) {
      process.stdout.write(
        `\nno working container runtime (${(error as Error).message}); spawning redis-server\n`,
      );
    }
  }
  const server = await RedisServer.start();
  globals.redisServer = server;
  process.env.REDIS_URL = server.url;
  process.stdout.write(`\ntests use a spawned redis-server at ${server.url}\n`);
}

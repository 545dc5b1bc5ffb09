interface TestGlobals {
  redisServer?: { stop(): Promise<void> };
  redisContainer?: { stop(): Promise<unknown> };
}

export default async function globalTeardown(): Promise<void> {
  const globals = globalThis as TestGlobals;
  await globals.redisServer?.stop();
  await globals.redisContainer?.stop();
}

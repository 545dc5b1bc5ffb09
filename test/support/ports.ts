export { freePort } from '../../src/dev/local-redis';

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until the check passes or the deadline passes (then throws the last failure). */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 5000,
  stepMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) {
        throw error;
      }
      await sleep(stepMs);
    }
  }
}

import { performance } from 'node:perf_hooks';
import type { TestApp } from './app';
import { sleep } from './ports';

export interface ProbeReport<T> {
  result: T;
  /** How long `work` took, in milliseconds. */
  workMs: number;
  /** The slowest answer to the probe request while `work` ran, in milliseconds. */
  probeMaxMs: number;
  /** Probe answers that were not 2xx. */
  probeFailures: number;
  probes: number;
  /** The longest the event loop was blocked meanwhile, in milliseconds. */
  loopMaxMs: number;
}

/**
 * Runs `work` while another caller keeps asking `probe` (every 10 ms, one at a time), so a test
 * can show that what one caller does leaves the others served: the slowest probe, the
 * failures, and the longest event-loop block while it ran.
 */
export async function whileProbing<T>(
  app: TestApp,
  work: () => Promise<T>,
  probe: { method?: 'GET' | 'POST'; url: string; token?: string } = { url: '/healthz' },
): Promise<ProbeReport<T>> {
  // The event loop's longest block: the largest lateness of a 5 ms timer.
  let loopMaxMs = 0;
  let tick = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    loopMaxMs = Math.max(loopMaxMs, now - tick - 5);
    tick = now;
  }, 5);
  let running = true;
  let probeMaxMs = 0;
  let probeFailures = 0;
  let probes = 0;
  const prober = (async () => {
    while (running) {
      const started = performance.now();
      const response = await app.call(probe.method ?? 'GET', probe.url, { token: probe.token });
      probeMaxMs = Math.max(probeMaxMs, performance.now() - started);
      probes += 1;
      if (response.statusCode >= 300) {
        probeFailures += 1;
      }
      await sleep(10);
    }
  })();
  const started = performance.now();
  try {
    const result = await work();
    return {
      result,
      workMs: performance.now() - started,
      probeMaxMs,
      probeFailures,
      probes,
      loopMaxMs,
    };
  } finally {
    running = false;
    await prober;
    clearInterval(ticker);
  }
}

/**
 * Watches this process's event loop from now on: `stop()` ends the watch and answers its
 * longest block in milliseconds. The app under test and the load generator share this process,
 * so on a busy machine every latency a test measures is late by up to this much; timing bounds
 * add it rather than fail by chance (docs/testing.md, "Timing bounds").
 */
export function watchEventLoop(): { stop(): number } {
  let longest = 0;
  let tick = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - tick - 10);
    tick = now;
  }, 10);
  return {
    stop() {
      clearInterval(ticker);
      return Math.max(0, longest);
    },
  };
}

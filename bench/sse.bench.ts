/**
 * Server-Sent Events at scale on one gateway instance (pub/sub fan-out, stream tails):
 *
 * - pub/sub: N concurrent SSE clients (1k, 5k, 10k) over 10 channels, a publisher at R messages
 *   per second through the HTTP API; publish→deliver latency p50/p99 over every delivery, and
 *   the gateway's RSS per client.
 * - stream tails: N SSE tails over the blocking pool's streams plus one blocked group read per
 *   remaining pool connection; entry add→deliver latency, RSS per tail.
 *
 * The gateway runs as its own process (dist/main.js, production mode, JSON logs at info) so its
 * RSS is its own; clients and the publisher run here. Redis: REDIS_URL or a throwaway one.
 *
 *   npm run bench                                   # every benchmark
 *   node bench/run.js sse                           # this one (after npm run build)
 *   BENCH_CLIENTS=1000,5000 BENCH_RATE=20 BENCH_SECONDS=5 node bench/run.js sse
 *
 * Figures, never assertions: they depend on the machine and on what else runs on it.
 */
import { request, type ClientRequest } from 'node:http';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SCOPES } from '../src/auth/scopes';
import { LocalIssuer } from '../src/dev/local-issuer';
import { startGateway, throwawayRedis, percentile, type Gateway } from './support';

const CLIENTS = (process.env.BENCH_CLIENTS ?? '1000,5000,10000').split(',').map(Number);
const RATE = Number(process.env.BENCH_RATE ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CHANNELS = 10;
const CONNECT_BATCH = 250;

/** One SSE connection that records the latency of every `event: message` or `event: entry`. */
class Listener {
  received = 0;
  private buffer = '';
  private req: ClientRequest | undefined;

  constructor(private readonly latencies: number[]) {}

  open(url: string, token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.req = request(url, {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        agent: false,
      });
      this.req.on('error', reject);
      this.req.on('response', (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`SSE answered ${res.statusCode}`));
          res.resume();
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.feed(chunk));
        resolve();
      });
      this.req.end();
    });
  }

  close(): void {
    this.req?.destroy();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end = this.buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = /^data: (.*)$/m.exec(block);
      const sent = data ? /t=([\d.]+)|"t":"([\d.]+)"/.exec(data[1]) : null;
      if (sent) {
        this.received += 1;
        const at = Number(sent[1] ?? sent[2]);
        this.latencies.push(performance.timeOrigin + performance.now() - at);
      }
      end = this.buffer.indexOf('\n\n');
    }
  }
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** The largest RSS of the gateway seen every 100 ms until `stop` (GC makes single reads noisy). */
function sampleRss(pid: number): { stop: () => number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 100);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, rssMb(pid));
    },
  };
}

async function post(gateway: Gateway, token: string, path: string, body: unknown): Promise<number> {
  const response = await fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

async function openAll(urls: string[], token: string, latencies: number[]): Promise<Listener[]> {
  const listeners: Listener[] = [];
  for (let start = 0; start < urls.length; start += CONNECT_BATCH) {
    const batch = urls.slice(start, start + CONNECT_BATCH).map(() => new Listener(latencies));
    await Promise.all(batch.map((l, i) => l.open(urls[start + i], token)));
    listeners.push(...batch);
  }
  return listeners;
}

/** The gateway's RSS before any client: RSS seldom shrinks, so each row is measured from it. */
let startRss = 0;

interface Row {
  scenario: string;
  clients: number;
  sent: number;
  expected: number;
  delivered: number;
  p50: number;
  p99: number;
  rssIdleMb: number;
  rssMb: number;
  kbPerClient: number;
}

/** Publishes (or adds) at RATE per second for SECONDS; `send(i)` carries the send time. */
async function drive(send: (i: number, t: number) => Promise<number>): Promise<number> {
  const total = RATE * SECONDS;
  const started = performance.now();
  let ok = 0;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    if ((await send(i, performance.timeOrigin + performance.now())) < 300) {
      ok += 1;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return ok;
}

async function pubsub(gateway: Gateway, token: string, clients: number): Promise<Row> {
  const idle = rssMb(gateway.pid);
  const latencies: number[] = [];
  const urls = Array.from(
    { length: clients },
    (_, i) => `${gateway.url}/redis/pubsub/channels/bench:${i % CHANNELS}/events`,
  );
  const rss = sampleRss(gateway.pid);
  const listeners = await openAll(urls, token, latencies);
  const sent = await drive((i, t) =>
    post(gateway, token, `/redis/pubsub/channels/bench:${i % CHANNELS}/messages`, {
      message: `t=${t.toFixed(3)}`,
    }),
  );
  const connected = rss.stop();
  listeners.forEach((l) => l.close());
  const expected = (sent * clients) / CHANNELS;
  return row('pub/sub', clients, sent, expected, latencies, idle, connected);
}

async function tails(gateway: Gateway, token: string, clients: number, pool: number): Promise<Row> {
  const streams = pool / 2;
  const idle = rssMb(gateway.pid);
  const latencies: number[] = [];
  const urls = Array.from(
    { length: clients },
    (_, i) => `${gateway.url}/redis/streams/tail:${i % streams}/events`,
  );
  const rss = sampleRss(gateway.pid);
  const listeners = await openAll(urls, token, latencies);
  // The other half of the pool: blocked group reads, held for the whole run.
  let holding = true;
  const blocked = Array.from({ length: pool - streams }, async (_, i) => {
    await post(gateway, token, `/redis/streams/held:${i}/groups`, { group: 'g' });
    let reads = 0;
    while (holding) {
      await post(gateway, token, `/redis/streams/held:${i}/groups/g/read`, {
        consumer: 'c',
        blockMs: 1000,
      });
      reads += 1;
    }
    return reads;
  });
  const sent = await drive((i, t) =>
    post(gateway, token, `/redis/streams/tail:${i % streams}/entries`, {
      fields: { t: t.toFixed(3) },
    }),
  );
  const connected = rss.stop();
  holding = false;
  await Promise.all(blocked);
  listeners.forEach((l) => l.close());
  const expected = (sent * clients) / streams;
  return row(
    `tails (+${pool - streams} blocked reads)`,
    clients,
    sent,
    expected,
    latencies,
    idle,
    connected,
  );
}

function row(
  scenario: string,
  clients: number,
  sent: number,
  expected: number,
  latencies: number[],
  idle: number,
  connected: number,
): Row {
  return {
    scenario,
    clients,
    sent,
    expected: Math.round(expected),
    delivered: latencies.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    rssIdleMb: idle,
    rssMb: connected,
    kbPerClient: ((connected - startRss) * 1024) / clients,
  };
}

async function main(): Promise<void> {
  const redis = await throwawayRedis();
  const issuer = await LocalIssuer.start();
  const pool = 16;
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-bench-'));
  const configFile = join(dir, 'bench.yaml');
  const most = Math.max(...CLIENTS);
  writeFileSync(
    configFile,
    // One token subject stands for thousands of clients: its per-caller limits are off.
    `sse:\n  maxClients: ${most + 100}\n  maxClientsPerSubject: ${most + 100}\nredis:\n  blockingPoolSize: ${pool}\n` +
      'rateLimits:\n  requestsPerSecond: 0\nquotas:\n  blockingPerSubject: 0\n',
  );
  const rows: Row[] = [];
  let gateway: Gateway | undefined;
  try {
    gateway = await startGateway({
      REDIS_URL: redis.url,
      OIDC_ISSUER: issuer.url,
      OIDC_AUDIENCE: issuer.audience,
      CONFIG_FILE: configFile,
    });
    const token = await issuer.token({ scopes: [SCOPES.read, SCOPES.write], ttlS: 3600 });
    startRss = rssMb(gateway.pid);
    for (const clients of CLIENTS) {
      rows.push(await pubsub(gateway, token, clients));
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    rows.push(await tails(gateway, token, Math.min(5000, most), pool));
  } finally {
    gateway?.stop();
    await issuer.close();
    redis.stop();
  }
  console.log(
    `\nSSE fan-out: ${RATE} msg/s for ${SECONDS} s, ${CHANNELS} channels; latency over every delivery\n`,
  );
  console.table(
    rows.map((r) => ({
      scenario: r.scenario,
      clients: r.clients,
      'sent (2xx)': r.sent,
      'delivered / expected': `${r.delivered} / ${r.expected}`,
      'p50 ms': r.p50.toFixed(1),
      'p99 ms': r.p99.toFixed(1),
      'RSS idle MB': r.rssIdleMb.toFixed(0),
      'RSS peak MB': r.rssMb.toFixed(0),
      'KB per client (from start)': r.kbPerClient.toFixed(1),
    })),
  );
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

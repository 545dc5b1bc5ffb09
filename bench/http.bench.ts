/**
 * HTTP throughput and latency of the gateway beside a baseline measured in the same run.
 * One Redis (owned by this run), a local OIDC issuer, and two servers on
 * loopback, each loaded in turn with autocannon (64 connections, a warm-up, then a fixed time):
 *
 * - the baseline, bench/baseline-server.js: bare Fastify + ioredis, one auto-pipelined GET, and
 *   for writes one auto-pipelined SET behind `PUT /kv/:key` with a JSON body (the write baseline);
 * - the gateway, dist/main.js in production mode: RS256 tokens from the issuer (scopes
 *   redis:read redis:write), validation, JSON logs at info (to /dev/null), metrics on.
 *
 * Gateway scenarios: KV GET (100-byte value), the same GET on a second gateway with rate limits
 * off (the limiter's cost per request, printed after the table), KV PUT, _mget of 10 keys, a hash
 * field GET, a stream add, a publish, lock acquire + release (pairs per second). Then the KV GET
 * at half its peak rate, twice: with autocannon's overallRate (a budget per connection and
 * second, so bursts at the peak rate, then idle) and with a paced open-loop client (a request due
 * every 1/rate s), and the baseline paced at that rate too (the tail latency the machine adds by
 * itself). Then a leak check: the KV GET load three more times, the gateway's RSS after each and
 * its lowest heap used under load. Ratios are to the baseline's GET, and for the writes (PUT,
 * stream add, publish, locks) also to the baseline's PUT; the baseline runs again at the end
 * (drift). The goals of the lean request pipeline are printed after the table, met or not.
 *
 * Each row also shows the server's CPU use and CPU time per request (per pair for locks), the
 * share of the server's CPU the hypervisor stole meanwhile (on a shared virtual machine, the noise
 * no pinning removes: CPU time per request stays steady under it where req/s does not), and the
 * load generator's CPU (near 100%: autocannon, not the server, was the limit).
 *
 * Pinning (when taskset works and at least two CPUs are allowed; BENCH_PIN=0 turns it off): the
 * server under load (baseline, then gateway) on the first allowed CPU, this process (autocannon,
 * the issuer) and redis-server on the second. Results: a table here, and under bench/results/
 * (gitignored) http-<time>.json and http-latest.svg. Figures, never assertions.
 *
 *   npm run bench                                   # every benchmark, after a build
 *   node bench/run.js http                          # this one (after npm run build)
 *   BENCH_HTTP_SECONDS=20 BENCH_CONNECTIONS=128 node bench/run.js http
 *
 * BENCH_HTTP_SECONDS (8) measured seconds per scenario, BENCH_HTTP_WARMUP (2) warm-up seconds,
 * BENCH_LEAK_SECONDS (5) seconds per leak-check run, BENCH_CONNECTIONS (64).
 */
import autocannon from 'autocannon';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SCOPES } from '../src/auth/scopes';
import { LocalIssuer } from '../src/dev/local-issuer';
import {
  cpuSeconds,
  percentile,
  pinProcess,
  pinnableCpus,
  redisConnection,
  rssMb,
  startBaseline,
  startGateway,
  throwawayRedis,
  type Gateway,
} from './support';

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 8);
const WARMUP_S = Number(process.env.BENCH_HTTP_WARMUP ?? 2);
const LEAK_SECONDS = Number(process.env.BENCH_LEAK_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const RESULTS = join(__dirname, 'results');

const VALUE = 'x'.repeat(100);
const KV_KEY = 'bench-kv';
const MGET_KEYS = Array.from({ length: 10 }, (_, i) => `bench-mget-${i}`);
const HASH = 'bench-hash';
const STREAM = 'bench-stream';
const CHANNEL = 'bench-channel';
const KV_GET_UNLIMITED = 'KV GET, a gateway with rate limits off';
const NEAR_HOT = 'KV GET, near-cache on, one hot key (HIT)';
const NEAR_COLD = 'KV GET, near-cache on, every key new (MISS)';
/** Distinct keys for the cold row: more than it can read in its warm-up and measured time. */
const COLD_KEYS = 400_000;

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** The throwaway redis-server's pid (undefined with REDIS_URL), for its CPU time. */
let redisPid: number | undefined;
const redisCpuSeconds = () => (redisPid === undefined ? NaN : cpuSeconds(redisPid));

/** The CPU the server under load is pinned to (undefined: not pinned, every CPU counts). */
let serverCpuIndex: number | undefined;

interface Ticks {
  busy: number;
  steal: number;
  total: number;
}

/**
 * The server's CPU so far, in clock ticks (/proc/stat): busy (any process, interrupts), stolen
 * (the hypervisor ran someone else: on a shared virtual machine, noise no pinning removes), all.
 */
function serverCpuTicks(): Ticks {
  const name = serverCpuIndex === undefined ? 'cpu ' : `cpu${serverCpuIndex} `;
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(name));
  const [user, nice, system, idle, iowait, irq, softirq, steal] = (line ?? '')
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
}

/**
 * Shares of the server's CPU since `at`: stolen, and taken by anything but the server (stolen,
 * other processes, interrupts), given the server's own share. Unknown when it is not pinned.
 */
function lostSince(at: Ticks, serverShare: number): { steal: number; others: number } {
  if (serverCpuIndex === undefined) {
    return { steal: NaN, others: NaN };
  }
  const now = serverCpuTicks();
  const total = now.total - at.total;
  return {
    steal: (now.steal - at.steal) / total,
    others: Math.max(0, (now.busy - at.busy + now.steal - at.steal) / total - serverShare),
  };
}

/** Response times in ms, growing as needed (a run records a few hundred thousand). */
class Samples {
  private values = new Float64Array(1 << 16);
  count = 0;

  add(value: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = value;
  }

  percentile(p: number): number {
    return percentile(this.values.subarray(0, this.count), p);
  }
}

/** One measured load: what every row of the table is made of. */
interface Measured {
  /** Successful (2xx) responses per second, or pairs per second for the lock row. */
  rate: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** CPU time per second of the server under load, this process (the load generator), Redis. */
  serverCpu: number;
  clientCpu: number;
  redisCpu: number;
  /** Share of the server's CPU stolen by the hypervisor meanwhile. */
  steal: number;
  /** Share of the server's CPU not used by the server (stolen, other processes, interrupts). */
  others: number;
}

interface Row extends Measured {
  scenario: string;
  unit: 'req' | 'pair';
  /** rate / the baseline's GET rate; undefined for fixed-rate rows. */
  ratio?: number;
  /** rate / the baseline's PUT rate, for the rows that write. */
  writeRatio?: number;
}

/** The rows that write, whose ceiling is the baseline's PUT (one SET). */
const WRITES = new Set([
  'KV PUT /redis/kv/{key}',
  'stream add',
  'publish (no subscribers)',
  'lock acquire + release',
]);

/** The goals of the lean request pipeline: rows and the least ratio each must reach. */
const GOALS: { scenario: string; least: number; against: 'GET' | 'PUT' }[] = [
  { scenario: 'KV GET /redis/kv/{key}', least: 0.85, against: 'GET' },
  { scenario: 'KV PUT /redis/kv/{key}', least: 0.65, against: 'PUT' },
  { scenario: 'KV _mget, 10 keys', least: 0.5, against: 'GET' },
  { scenario: 'hash field GET', least: 0.8, against: 'GET' },
  { scenario: 'stream add', least: 0.6, against: 'PUT' },
  { scenario: 'publish (no subscribers)', least: 0.65, against: 'PUT' },
  { scenario: 'lock acquire + release', least: 0.35, against: 'PUT' },
  // The near-cache's goal: a hot key answered from memory beats the bare server's GET.
  { scenario: NEAR_HOT, least: 1.5, against: 'GET' },
];

interface Load {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Per-connection request sequences (the lock pairs); `path` and the rest are then ignored. */
  setupClient?: (client: autocannon.Client) => void;
  overallRate?: number;
  seconds?: number;
  warmup?: boolean;
  /** Which 2xx statuses count as one unit of the rate (default: every 2xx). */
  counts?: (status: number) => boolean;
}

/** Runs autocannon against `server`; times and counts only the measured part (after warm-up). */
async function load(server: Gateway, spec: Load): Promise<Measured> {
  const seconds = spec.seconds ?? SECONDS;
  const latencies = new Samples();
  let units = 0;
  let startedAt = 0;
  let serverCpuAt = 0;
  let redisCpuAt = 0;
  let ticksAt = serverCpuTicks();
  let clientCpuAt = process.cpuUsage();
  const instance = autocannon({
    url: `${server.url}${spec.path}`,
    connections: CONNECTIONS,
    duration: seconds,
    warmup: spec.warmup === false ? undefined : { connections: CONNECTIONS, duration: WARMUP_S },
    method: spec.method ?? 'GET',
    headers: spec.headers,
    body: spec.body,
    setupClient: spec.setupClient,
    overallRate: spec.overallRate,
  });
  instance.on('start', () => {
    startedAt = performance.now();
    serverCpuAt = cpuSeconds(server.pid);
    redisCpuAt = redisCpuSeconds();
    ticksAt = serverCpuTicks();
    clientCpuAt = process.cpuUsage();
  });
  instance.on('response', (_client, status, _bytes, responseTimeMs) => {
    if (status >= 200 && status < 300) {
      latencies.add(responseTimeMs);
      if (!spec.counts || spec.counts(status)) {
        units += 1;
      }
    }
  });
  const result = await instance;
  const wall = (performance.now() - startedAt) / 1000;
  const client = process.cpuUsage(clientCpuAt);
  const serverCpu = (cpuSeconds(server.pid) - serverCpuAt) / wall;
  return {
    rate: units / wall,
    p50: latencies.percentile(0.5),
    p99: latencies.percentile(0.99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    serverCpu,
    clientCpu: (client.user + client.system) / 1e6 / wall,
    redisCpu: (redisCpuSeconds() - redisCpuAt) / wall,
    ...lostSince(ticksAt, serverCpu),
  };
}

/**
 * GETs at a steady `rate` over CONNECTIONS keep-alive sockets, one request in flight on each: an
 * open-loop load, where a request falls due every 1/rate s whether or not earlier ones have been
 * answered (checked every millisecond). A due request that finds every socket busy waits, and its
 * latency counts from when it fell due, so a server that falls behind shows it.
 */
async function paced(
  server: Gateway,
  path: string,
  headers: Record<string, string>,
  rate: number,
): Promise<Measured> {
  const { hostname, port } = new URL(server.url);
  const request = Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      '\r\n',
  );
  const total = Math.round(rate * SECONDS);
  const latencies = new Samples();
  const due: number[] = [];
  let next = 0;
  let issued = 0;
  let answered = 0;
  let non2xx = 0;
  /** Requests in flight on a socket that failed: never answered. */
  let lost = 0;

  interface Connection {
    socket: Socket;
    buffer: Buffer;
    /** When its request in flight fell due; undefined when idle. */
    dueAt?: number;
  }
  // Used in turn (first idle, first used), so none sits idle past the server's keep-alive timeout.
  const idle: Connection[] = [];
  const dispatch = () => {
    while (next < due.length && idle.length > 0) {
      const connection = idle.shift()!;
      connection.dueAt = due[next++];
      connection.socket.write(request);
    }
  };
  const answer = (connection: Connection, status: number) => {
    latencies.add(performance.now() - connection.dueAt!);
    answered += 1;
    if (status < 200 || status >= 300) {
      non2xx += 1;
    }
    connection.dueAt = undefined;
    idle.push(connection);
    dispatch();
  };
  const connections = await Promise.all(
    Array.from(
      { length: CONNECTIONS },
      () =>
        new Promise<Connection>((resolve, reject) => {
          const socket = connect(Number(port), hostname, () => resolve(connection));
          const connection: Connection = { socket, buffer: Buffer.alloc(0) };
          socket.setNoDelay(true);
          socket.once('error', reject);
          socket.on('data', (chunk: Buffer) => {
            connection.buffer = Buffer.concat([connection.buffer, chunk]);
            // Responses carry Content-Length (Fastify, no chunked encoding for JSON).
            for (;;) {
              const end = connection.buffer.indexOf('\r\n\r\n');
              if (end < 0) {
                return;
              }
              const head = connection.buffer.toString('latin1', 0, end);
              const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
              if (connection.buffer.length < end + 4 + length) {
                return;
              }
              connection.buffer = connection.buffer.subarray(end + 4 + length);
              answer(connection, Number(head.slice(9, 12)));
            }
          });
        }),
    ),
  );
  for (const connection of connections) {
    connection.socket.on('error', () => (lost += connection.dueAt === undefined ? 0 : 1));
    idle.push(connection);
  }

  const clientCpuAt = process.cpuUsage();
  const serverCpuAt = cpuSeconds(server.pid);
  const redisCpuAt = redisCpuSeconds();
  const ticksAt = serverCpuTicks();
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const ticker = setInterval(() => {
      const now = performance.now();
      const owed = Math.min(total, Math.floor(((now - started) * rate) / 1000));
      for (; issued < owed; issued++) {
        due.push(now);
      }
      dispatch();
      if (answered + lost >= total || now - started > (SECONDS + 5) * 1000) {
        clearInterval(ticker);
        resolve();
      }
    }, 1);
  });
  const wall = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientCpuAt);
  const serverCpu = (cpuSeconds(server.pid) - serverCpuAt) / wall;
  const redisCpu = (redisCpuSeconds() - redisCpuAt) / wall;
  const shares = lostSince(ticksAt, serverCpu);
  connections.forEach((connection) => connection.socket.destroy());
  return {
    rate: (answered - non2xx) / wall,
    p50: latencies.percentile(0.5),
    p99: latencies.percentile(0.99),
    non2xx,
    errors: total - answered,
    serverCpu,
    clientCpu: (client.user + client.system) / 1e6 / wall,
    redisCpu,
    ...shares,
  };
}

/** Lock acquire + release pairs: each connection takes and gives back its own lock name. */
function lockPairs(auth: Record<string, string>): Load {
  let connectionIndex = 0;
  return {
    path: '/',
    setupClient: (client) => {
      const path = `/redis/locks/bench-lock-${connectionIndex++}`;
      client.setRequests([
        {
          method: 'POST',
          path,
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ ttlMs: 10000 }),
          onResponse: (status, body, context) => {
            if (status === 201) {
              context.token = (JSON.parse(body) as { token: string }).token;
            }
          },
        },
        {
          method: 'DELETE',
          path,
          // No token (the acquire failed): start the sequence again.
          setupRequest: (request, context) =>
            typeof context.token === 'string'
              ? { ...request, headers: { ...auth, 'lock-token': context.token } }
              : undefined,
        },
      ]);
    },
    counts: (status) => status === 204,
  };
}

async function prepare(gateway: Gateway, auth: Record<string, string>): Promise<void> {
  const send = async (method: string, path: string, body: unknown) => {
    const response = await fetch(`${gateway.url}${path}`, {
      method,
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await response.arrayBuffer();
    if (!response.ok) {
      throw new Error(`${method} ${path} answered ${response.status}`);
    }
  };
  for (const key of [KV_KEY, ...MGET_KEYS]) {
    await send('PUT', `/redis/kv/${key}`, { value: VALUE });
  }
  await send('PUT', `/redis/hashes/${HASH}`, { fields: { f: VALUE } });
  await send('POST', `/redis/streams/${STREAM}/entries`, { fields: { v: VALUE } });
}

/** `bench-cold-<n>` for every n below COLD_KEYS, 100 bytes each, straight into Redis. */
async function prepareColdKeys(redisUrl: string): Promise<void> {
  const redis = await redisConnection(redisUrl);
  try {
    for (let first = 0; first < COLD_KEYS; first += 1000) {
      const pairs: string[] = [];
      for (let n = first; n < Math.min(first + 1000, COLD_KEYS); n++) {
        pairs.push(`bench-cold-${n}`, VALUE);
      }
      await redis.command('MSET', ...pairs);
    }
  } finally {
    redis.close();
  }
}

/** Every connection reads the next key nobody has read yet. */
function coldReads(auth: Record<string, string>): (client: autocannon.Client) => void {
  let next = 0;
  return (client) =>
    client.setRequests([
      {
        method: 'GET',
        headers: auth,
        setupRequest: (request) => ({
          ...request,
          path: `/redis/kv/bench-cold-${next++ % COLD_KEYS}`,
        }),
      },
    ]);
}

interface NearCacheUse {
  entries: number;
  bytes: number;
  rssMb: number;
}

async function nearCacheState(gateway: Gateway, auth: Record<string, string>) {
  const response = await fetch(`${gateway.url}/redis/status`, { headers: auth });
  const status = (await response.json()) as {
    gateway: { nearCache: { trackingArmed: boolean; entries: number; bytes: number } };
  };
  return status.gateway.nearCache;
}

/** Waits (up to 10 s) for the near-cache's tracking to be armed: until then every read misses. */
async function nearCacheArmed(gateway: Gateway, auth: Record<string, string>): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    if ((await nearCacheState(gateway, auth)).trackingArmed) {
      return;
    }
    await sleep(100);
  }
  throw new Error('the near-cache never armed its tracking');
}

async function nearCacheUse(gateway: Gateway, auth: Record<string, string>): Promise<NearCacheUse> {
  const { entries, bytes } = await nearCacheState(gateway, auth);
  return { entries, bytes, rssMb: rssMb(gateway.pid) };
}

async function heapUsedMb(gateway: Gateway): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1] ?? NaN) / 1024 / 1024;
}

const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A horizontal bar chart of each row's rate, labelled with its ratio to the baseline's GET. */
function chart(rows: Row[], subtitle: string): string {
  const left = 390;
  const barMax = 380;
  const rowHeight = 26;
  const top = 56;
  const most = Math.max(...rows.map((row) => row.rate));
  const bars = rows.map((row, i) => {
    const y = top + i * rowHeight;
    const width = Math.max(1, (row.rate / most) * barMax);
    const fill = row.scenario.startsWith('baseline') ? '#9a9a9a' : '#3b78c4';
    const label =
      `${Math.round(row.rate).toLocaleString('en-US')} ${row.unit}/s` +
      (row.ratio === undefined ? ' (fixed rate)' : ` · ${row.ratio.toFixed(2)}×`) +
      ` · p99 ${row.p99.toFixed(1)} ms`;
    return [
      `<text x="${left - 8}" y="${y + 17}" text-anchor="end">${escapeXml(row.scenario)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${width.toFixed(1)}" height="${rowHeight - 8}" fill="${fill}"/>`,
      `<text x="${(left + width + 6).toFixed(1)}" y="${y + 17}">${escapeXml(label)}</text>`,
    ].join('\n');
  });
  const height = top + rows.length * rowHeight + 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="1040" height="${height}" fill="#fff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">redis-gateway HTTP benchmark: rate, ratio to the baseline's GET, p99</text>`,
    `<text x="16" y="44" fill="#555">${escapeXml(subtitle)}</text>`,
    ...bars,
    '</svg>',
    '',
  ].join('\n');
}

const fixed = (value: number, digits: number) =>
  Number.isFinite(value) ? value.toFixed(digits) : '-';

const percent = (share: number) => (Number.isFinite(share) ? `${Math.round(share * 100)}%` : '-');

/** The server's CPU time per request (per pair for locks), in µs: what steal does not change. */
const cpuPerUnitUs = (row: Measured) => (row.serverCpu / row.rate) * 1e6;

function tableOf(rows: Row[]) {
  return rows.map((row) => ({
    scenario: row.scenario,
    'req/s': `${Math.round(row.rate)}${row.unit === 'pair' ? ' pairs' : ''}`,
    'p50 ms': fixed(row.p50, 2),
    'p99 ms': fixed(row.p99, 2),
    'ratio to baseline GET': row.ratio === undefined ? '-' : `${row.ratio.toFixed(2)}×`,
    'ratio to baseline PUT': row.writeRatio === undefined ? '-' : `${row.writeRatio.toFixed(2)}×`,
    'non-2xx': row.non2xx + row.errors,
    'server CPU': percent(row.serverCpu),
    'server µs/req': fixed(cpuPerUnitUs(row), 0),
    'its CPU: stolen': percent(row.steal),
    'its CPU: others': percent(row.others),
    'load-gen CPU': percent(row.clientCpu),
  }));
}

function markdownOf(rows: ReturnType<typeof tableOf>): string {
  const columns = Object.keys(rows[0]) as (keyof (typeof rows)[0])[];
  return [
    `| ${columns.join(' | ')} |`,
    `| ${columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${columns.map((column) => String(row[column])).join(' | ')} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    node: process.version,
    kernel: release(),
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  };
  const [serverCpu, loadCpu] = pinnableCpus();
  serverCpuIndex = serverCpu;
  if (loadCpu !== undefined) {
    pinProcess(process.pid, loadCpu);
  }
  const pinning =
    loadCpu === undefined
      ? 'none (BENCH_PIN=0, no taskset, or a single CPU)'
      : `server under load on CPU ${serverCpu} (taskset -c ${serverCpu}); autocannon (this process, taskset -a -cp ${loadCpu}) and redis-server on CPU ${loadCpu}`;
  console.log(
    `HTTP benchmark: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${SECONDS} s per scenario\n` +
      `machine: ${machine.cpu} × ${machine.cpus}, node ${machine.node}, Linux ${machine.kernel}, ` +
      `load average ${machine.loadAverageAtStart.join(' ')}\npinning: ${pinning}`,
  );

  const redis = await throwawayRedis({ cpu: loadCpu });
  redisPid = redis.pid;
  const issuer = await LocalIssuer.start();
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-bench-'));
  const configFile = join(dir, 'bench.yaml');
  // A throwaway Redis has just started: the delayed restart would refuse every lock. One token
  // subject stands for every client here: its rate limit is on (the limiter runs on every
  // request) but far out of reach, so every row measures serving, not refusing; and its lock
  // quota is off (autocannon's warm-up connections leave their locks held when they stop).
  const common =
    'locks:\n  delayedRestartMs: 0\nquotas:\n  locksPerSubject: 0\n' +
    'rateLimits:\n  requestsPerSecond: 10000000\n  burst: 100000000\n';
  writeFileSync(configFile, common);
  // The same with the near-cache on, for its two rows.
  const nearCacheConfigFile = join(dir, 'bench-near-cache.yaml');
  writeFileSync(nearCacheConfigFile, `${common}nearCache:\n  enabled: true\n`);
  // The same, with the rate limits off: what the limiter costs.
  const unlimitedConfigFile = join(dir, 'bench-unlimited.yaml');
  writeFileSync(
    unlimitedConfigFile,
    'locks:\n  delayedRestartMs: 0\nquotas:\n  locksPerSubject: 0\n' +
      'rateLimits:\n  requestsPerSecond: 0\n  authFailuresPerMinute: 0\n',
  );
  let baseline: Gateway | undefined;
  let gateway: Gateway | undefined;
  let unlimited: Gateway | undefined;
  let nearCache: Gateway | undefined;
  const rows: Row[] = [];
  const memory = {
    nearCache: undefined as NearCacheUse | undefined,
    idleMb: NaN,
    afterMb: NaN,
    leakRuns: [] as { rssMb: number; heapFloorMb: number }[],
  };
  try {
    baseline = await startBaseline(redis.url, { cpu: serverCpu });
    const gatewayEnv = {
      REDIS_URL: redis.url,
      OIDC_ISSUER: issuer.url,
      OIDC_AUDIENCE: issuer.audience,
      CONFIG_FILE: configFile,
    };
    gateway = await startGateway(gatewayEnv, { cpu: serverCpu });
    const token = await issuer.token({ scopes: [SCOPES.read, SCOPES.write], ttlS: 3600 });
    const auth = { authorization: `Bearer ${token}` };
    const json = { ...auth, 'content-type': 'application/json' };
    await sleep(1000);
    memory.idleMb = rssMb(gateway.pid);
    await prepare(gateway, auth);

    const record = (scenario: string, measured: Measured, unit: Row['unit'] = 'req') => {
      const row: Row = { scenario, unit, ...measured };
      rows.push(row);
      console.log(
        `  ${scenario.padEnd(48)} ${Math.round(row.rate).toString().padStart(7)} ${unit}/s` +
          `  p50 ${fixed(row.p50, 2)} ms  p99 ${fixed(row.p99, 2)} ms`,
      );
      return row;
    };
    const run = async (scenario: string, server: Gateway, spec: Load, unit: Row['unit'] = 'req') =>
      record(scenario, await load(server, spec), unit);

    const base = await run('baseline GET (bare Fastify + ioredis)', baseline, {
      path: `/kv/${KV_KEY}`,
    });
    const basePut = await run('baseline PUT (bare Fastify + ioredis, one SET)', baseline, {
      path: '/kv/bench-put',
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: VALUE }),
    });
    const kvGet = await run('KV GET /redis/kv/{key}', gateway, {
      path: `/redis/kv/${KV_KEY}`,
      headers: auth,
    });
    // A second gateway, only for this row, on the same CPU: the same GET with rate limits off.
    unlimited = await startGateway(
      { ...gatewayEnv, CONFIG_FILE: unlimitedConfigFile },
      { cpu: serverCpu },
    );
    await run(KV_GET_UNLIMITED, unlimited, { path: `/redis/kv/${KV_KEY}`, headers: auth });
    unlimited.stop();
    unlimited = undefined;
    // A third, only for these rows: the near-cache on, a hot key, then every read a new key.
    nearCache = await startGateway(
      { ...gatewayEnv, CONFIG_FILE: nearCacheConfigFile },
      { cpu: serverCpu },
    );
    await prepareColdKeys(redis.url);
    await nearCacheArmed(nearCache, auth);
    await run(NEAR_HOT, nearCache, { path: `/redis/kv/${KV_KEY}`, headers: auth });
    await run(NEAR_COLD, nearCache, { path: '/redis/kv/cold', setupClient: coldReads(auth) });
    memory.nearCache = await nearCacheUse(nearCache, auth);
    nearCache.stop();
    nearCache = undefined;
    await run('KV PUT /redis/kv/{key}', gateway, {
      path: '/redis/kv/bench-put',
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ value: VALUE }),
    });
    await run('KV _mget, 10 keys', gateway, {
      path: '/redis/kv/_mget',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ keys: MGET_KEYS }),
    });
    await run('hash field GET', gateway, {
      path: `/redis/hashes/${HASH}/fields/f`,
      headers: auth,
    });
    await run('stream add', gateway, {
      path: `/redis/streams/${STREAM}/entries`,
      method: 'POST',
      headers: json,
      body: JSON.stringify({ fields: { v: VALUE } }),
    });
    await run('publish (no subscribers)', gateway, {
      path: `/redis/pubsub/channels/${CHANNEL}/messages`,
      method: 'POST',
      headers: json,
      body: JSON.stringify({ message: VALUE }),
    });
    await run('lock acquire + release', gateway, lockPairs(auth), 'pair');

    const half = Math.max(1, Math.round(kvGet.rate / 2));
    await run(`KV GET at ${half}/s (½ peak), autocannon overallRate`, gateway, {
      path: `/redis/kv/${KV_KEY}`,
      headers: auth,
      overallRate: half,
      warmup: false,
    });
    record(
      `KV GET at ${half}/s (½ peak), paced`,
      await paced(gateway, `/redis/kv/${KV_KEY}`, auth, half),
    );
    // The same steady rate on the bare server: the tail latency this machine adds by itself.
    record(
      `baseline GET at ${half}/s, paced (reference)`,
      await paced(baseline, `/kv/${KV_KEY}`, {}, half),
    );
    await run('baseline GET, again at the end', baseline, { path: `/kv/${KV_KEY}` });
    await sleep(1000);
    memory.afterMb = rssMb(gateway.pid);

    for (let i = 0; i < 3; i++) {
      // Heap used right after a collection is the live heap; its lowest reading while under
      // load (every 500 ms) comes close to that, where one reading after the run may not.
      let heapFloorMb = Infinity;
      const sampler = setInterval(() => {
        heapUsedMb(gateway!).then(
          (mb) => (heapFloorMb = Math.min(heapFloorMb, mb)),
          () => undefined,
        );
      }, 500);
      await load(gateway, {
        path: `/redis/kv/${KV_KEY}`,
        headers: auth,
        seconds: LEAK_SECONDS,
        warmup: false,
      });
      clearInterval(sampler);
      await sleep(1000);
      const rss = rssMb(gateway.pid);
      memory.leakRuns.push({ rssMb: rss, heapFloorMb });
      console.log(
        `  leak check run ${i + 1}: RSS ${rss.toFixed(0)} MB, ` +
          `heap used at least ${heapFloorMb.toFixed(1)} MB under load`,
      );
    }

    for (const row of rows) {
      if (!/at \d+\/s/.test(row.scenario)) {
        row.ratio = row.rate / base.rate;
      }
      if (WRITES.has(row.scenario)) {
        row.writeRatio = row.rate / basePut.rate;
      }
    }
  } finally {
    baseline?.stop();
    gateway?.stop();
    unlimited?.stop();
    nearCache?.stop();
    await issuer.close();
    redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const loadAverageAtEnd = loadavg().map((l) => Number(l.toFixed(2)));
  const table = tableOf(rows);
  console.log(
    `\nHTTP: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${SECONDS} s each; ratio = req/s ÷ the baseline's GET req/s (first row)\n`,
  );
  console.table(table);
  const kvGet = rows.find((row) => row.scenario.startsWith('KV GET /'));
  const atHalf = rows.filter((row) => /½ peak/.test(row.scenario));
  for (const goal of GOALS) {
    const row = rows.find((candidate) => candidate.scenario === goal.scenario);
    const ratio = goal.against === 'GET' ? row?.ratio : row?.writeRatio;
    if (row && ratio !== undefined) {
      const reference = rows.find((candidate) =>
        candidate.scenario.startsWith(`baseline ${goal.against}`),
      );
      // With a whole CPU each, req/s would be in inverse ratio to CPU time per request.
      const byCpu = reference ? cpuPerUnitUs(reference) / cpuPerUnitUs(row) : NaN;
      console.log(
        `goal, ${goal.scenario} ≥ ${goal.least}× the baseline's ${goal.against}: ${ratio.toFixed(2)}× ` +
          `(${ratio >= goal.least ? 'met' : 'not met'}); by server CPU time per ${row.unit} ` +
          `${byCpu.toFixed(2)}× (${fixed(reference ? cpuPerUnitUs(reference) : NaN, 0)} ÷ ${fixed(cpuPerUnitUs(row), 0)} µs)`,
      );
    }
  }
  const kvGetUnlimited = rows.find((row) => row.scenario === KV_GET_UNLIMITED);
  if (kvGet && kvGetUnlimited) {
    const [withLimits, without] = [cpuPerUnitUs(kvGet), cpuPerUnitUs(kvGetUnlimited)];
    console.log(
      `rate limiter cost on KV GET: ${fixed(((withLimits - without) / withLimits) * 100, 1)} % of server CPU per request ` +
        `(${fixed(withLimits, 0)} / ${fixed(without, 0)} µs/req with / without)`,
    );
    if (kvGet.non2xx + kvGet.errors > 0) {
      // µs/req divides all of the server's CPU by its 2xx answers: refusals make it larger.
      console.log(
        `  not the limiter's cost per served request: with limits, ${kvGet.non2xx + kvGet.errors} ` +
          'answers were not 2xx',
      );
    }
  }
  const reference = rows.find((row) => row.scenario.endsWith('(reference)'));
  for (const row of atHalf) {
    const bound = reference ? 1.5 * reference.p99 : NaN;
    console.log(
      `goal, p99 at ½ peak (${row.scenario.replace(/.*\), /, '')}) ≤ 1.5× the baseline's paced p99: ` +
        `${fixed(row.p99, 2)} ms against ${fixed(bound, 2)} ms (${row.p99 <= bound ? 'met' : 'not met'})`,
    );
  }
  if (reference) {
    console.log(`  the bare baseline at the same rate, paced: p99 ${fixed(reference.p99, 2)} ms`);
  }
  const failures = rows.filter((row) => row.non2xx + row.errors > 0);
  for (const row of failures) {
    console.log(`warning: ${row.scenario}: ${row.non2xx} non-2xx answers, ${row.errors} errors`);
  }
  console.log(
    `\ngateway RSS: idle ${memory.idleMb.toFixed(0)} MB, after the benchmark ${memory.afterMb.toFixed(0)} MB; ` +
      `leak check, after each of 3 × ${LEAK_SECONDS} s of KV GET: RSS ` +
      memory.leakRuns.map((run) => `${run.rssMb.toFixed(0)}`).join(' / ') +
      ' MB; lowest heap used under load ' +
      memory.leakRuns.map((run) => `${run.heapFloorMb.toFixed(1)}`).join(' / ') +
      ' MB',
  );
  if (memory.nearCache) {
    const { entries, bytes, rssMb: rss } = memory.nearCache;
    console.log(
      `near-cache after its two rows: ${entries} entries, ${(bytes / 1024 / 1024).toFixed(1)} MiB ` +
        `(nearCache.maxBytes 64 MiB); that gateway's RSS ${rss.toFixed(0)} MB`,
    );
  }
  console.log(
    `machine: ${machine.cpu} × ${machine.cpus}, node ${machine.node}; load average ` +
      `${machine.loadAverageAtStart.join(' ')} at start, ${loadAverageAtEnd.join(' ')} at end; ` +
      `${((performance.now() - startedAt) / 1000).toFixed(0)} s`,
  );
  console.log(`\nfor bench/RESULTS.md:\n\n${markdownOf(table)}\n`);

  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(RESULTS, `http-${stamp}.json`);
  writeFileSync(
    jsonFile,
    `${JSON.stringify(
      {
        time: new Date().toISOString(),
        machine: { ...machine, loadAverageAtEnd },
        pinning,
        settings: { connections: CONNECTIONS, warmupS: WARMUP_S, seconds: SECONDS },
        rows,
        memory,
      },
      null,
      2,
    )}\n`,
  );
  const svgFile = join(RESULTS, 'http-latest.svg');
  writeFileSync(
    svgFile,
    chart(
      rows,
      `${machine.cpu} × ${machine.cpus}, node ${machine.node}, ${CONNECTIONS} connections, ` +
        `${SECONDS} s each, load average ${machine.loadAverageAtStart[0]}; ${new Date().toISOString()}`,
    ),
  );
  console.log(`wrote ${jsonFile} and ${svgFile}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

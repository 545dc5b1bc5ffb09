/**
 * An attack replay of the isolation bounds (docs/testing.md): each attack, one at a time, by one token
 * subject ('attacker', ordinary tokens from the local issuer) against the built gateway as a
 * process (dist/main.js, NODE_ENV=production, default settings but for where Redis and the issuer
 * are and locks.delayedRestartMs 0, as the throwaway Redis has just started), while a second
 * subject ('other-client') keeps probing: GET /healthz and a KV GET of a 100-byte key, each in its
 * own loop every 20 ms, from a worker thread (so the attacker's client work here does not delay
 * the probes' clocks). Prints a Markdown table: what the attacker sent, what it got, what the
 * other caller saw meanwhile, and how much Redis's used_memory and the gateway's RSS grew (their
 * highest reading, every 25 ms, over the row's start), with the CPU each process used.
 *
 * The attacks of one request (rows 1 and 2) are sent back to back for 2 s, so the probes meet
 * them many times; all traffic is from 127.0.0.1, so the attacker and the other caller share a
 * client address (as callers behind one proxy or NAT do: rateLimits.authFailuresPerMinute).
 *
 *   node bench/run.js isolation    # after npm run build; about 2 minutes
 *
 * Traffic goes to 127.0.0.1 only; every loop is bounded in count and time. Figures, never
 * assertions: the row of nothing (0) is this machine's probe latency without an attack.
 */
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { LocalIssuer } from '../src/dev/local-issuer';
import {
  cpuSeconds,
  percentile,
  redisConnection,
  rssMb,
  startGateway,
  throwawayRedis,
  type Gateway,
  type RedisConnection,
} from './support';

const READ = 'redis:read';
const WRITE = 'redis:write';
const MiB = 1024 * 1024;
const PROBE_KEY = 'probe-small';
const PROBE_INTERVAL_MS = 20;
/** A pause between rows: the probes settle and the attacker's request bucket refills. */
const PAUSE_MS = 1500;
/** Response bytes kept per answer (for its problem code); the rest is only counted. */
const KEEP_BYTES = 64 * 1024;

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

// ---------------------------------------------------------------------------------------------
// HTTP client

interface Answer {
  /** 0: the socket failed or timed out (code says how). */
  status: number;
  code?: string;
  ms: number;
  bytes: number;
  text: string;
}

interface CallOptions {
  token?: string;
  json?: unknown;
  body?: string | Buffer;
  contentType?: string;
  agent?: Agent;
  timeoutMs?: number;
}

/** Keep-alive sockets for the attacker's requests (the probes have their own, in the worker). */
const attackAgent = new Agent({ keepAlive: true, maxSockets: 64 });
let gatewayPort = 0;

/** One request to the gateway; always resolves (status 0 on a socket error or timeout). */
function call(method: string, path: string, options: CallOptions = {}): Promise<Answer> {
  const started = performance.now();
  const body = options.json === undefined ? options.body : JSON.stringify(options.json);
  const headers: Record<string, string> = {};
  if (options.token !== undefined) {
    headers.authorization = `Bearer ${options.token}`;
  }
  if (body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve) => {
    const done = (answer: Omit<Answer, 'ms'>) =>
      resolve({ ...answer, ms: performance.now() - started });
    const req = request(
      {
        host: '127.0.0.1',
        port: gatewayPort,
        method,
        path,
        headers,
        agent: options.agent ?? attackAgent,
        timeout: options.timeoutMs ?? 60000,
      },
      (res) => {
        const kept: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          if (bytes < KEEP_BYTES) {
            kept.push(chunk);
          }
          bytes += chunk.length;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(kept).toString('utf8');
          const code = status >= 400 ? /"code":"([A-Z_]+)"/.exec(text)?.[1] : undefined;
          done({ status, code, bytes, text });
        });
        res.on('error', () => done({ status: 0, code: 'aborted', bytes, text: '' }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      done({ status: 0, code: error.code ?? error.message, bytes: 0, text: '' }),
    );
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Figures

const fmtMs = (ms: number) =>
  !Number.isFinite(ms)
    ? '-'
    : ms >= 10000
      ? `${(ms / 1000).toFixed(1)} s`
      : ms >= 100
        ? `${ms.toFixed(0)} ms`
        : `${ms.toFixed(1)} ms`;

const fmtBytes = (bytes: number) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < MiB
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${(bytes / MiB).toFixed(2)} MiB`;

const count = (n: number) => n.toLocaleString('en-US');

/** p50 / p99 / max of `ms`, e.g. `1.2 / 3.4 / 5.6 ms`. */
function spread(ms: number[]): string {
  if (ms.length === 0) {
    return '-';
  }
  const [p50, p99, max] = [percentile(ms, 0.5), percentile(ms, 0.99), Math.max(...ms)];
  return `${fmtMs(p50).replace(/ m?s$/, '')} / ${fmtMs(p99).replace(/ m?s$/, '')} / ${fmtMs(max)}`;
}

/** Answers of one attack, by status (and problem code). */
class Tally {
  private readonly byStatus = new Map<string, Answer[]>();
  readonly startedAt = performance.now();
  endedAt = performance.now();

  add(answer: Answer): Answer {
    const key =
      answer.status === 0
        ? `socket error (${answer.code ?? '?'})`
        : `${answer.status}${answer.code ? ` ${answer.code}` : ''}`;
    const list = this.byStatus.get(key) ?? [];
    // The first answer of each status keeps its text (for its details); the others only count.
    list.push(list.length === 0 ? answer : { ...answer, text: '' });
    this.byStatus.set(key, list);
    this.endedAt = performance.now();
    return answer;
  }

  /** The first answer of the most frequent status. */
  get first(): Answer | undefined {
    return [...this.byStatus.values()].sort((a, b) => b.length - a.length)[0]?.[0];
  }

  get total(): number {
    return [...this.byStatus.values()].reduce((sum, list) => sum + list.length, 0);
  }

  /** `100 × 201 (in …; 0.2 KB), 900 × 429 QUOTA_EXCEEDED (…)`, most frequent first. */
  describe(): string {
    return [...this.byStatus.entries()]
      .sort((a, b) => b[1].length - a[1].length)
      .map(([key, list]) => {
        const ms = list.map((answer) => answer.ms);
        const sizes = list.map((answer) => answer.bytes);
        const [least, most] = [Math.min(...sizes), Math.max(...sizes)];
        const size = least === most ? fmtBytes(most) : `${fmtBytes(least)}–${fmtBytes(most)}`;
        const [fastest, slowest] = [fmtMs(Math.min(...ms)), fmtMs(Math.max(...ms))];
        const time =
          fastest === slowest
            ? `in ${slowest}`
            : list.length <= 20
              ? `in ${fastest}–${slowest}`
              : `p50 / p99 / max ${spread(ms)}`;
        return `${count(list.length)} × ${key} (${time}; ${size}${list.length > 1 ? ' each' : ''})`;
      })
      .join(', ');
  }
}

/**
 * Sends `total` requests made by `send`, due evenly over `seconds` (0: as fast as `concurrency`
 * requests in flight allow), never more than `concurrency` at once, and none issued later than
 * `seconds` + 10 s after the start.
 */
async function flood(
  total: number,
  seconds: number,
  concurrency: number,
  send: (i: number) => Promise<Answer>,
): Promise<Tally> {
  const tally = new Tally();
  const started = performance.now();
  const deadline = started + (seconds + 10) * 1000;
  let next = 0;
  const sender = async () => {
    while (next < total && performance.now() < deadline) {
      const i = next++;
      const wait = started + (i * seconds * 1000) / total - performance.now();
      if (wait >= 1) {
        await sleep(wait);
      }
      tally.add(await send(i));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, sender));
  return tally;
}

/** How long a one-request attack is repeated, so that the probes see it more than once. */
const REPEAT_MS = 2000;

/**
 * `parallel` loops, each sending what `send` makes back to back (the next once the last is
 * answered) for `ms`, at most 10,000 requests in all.
 */
async function repeatFor(
  ms: number,
  parallel: number,
  send: () => Promise<Answer>,
): Promise<Tally> {
  const tally = new Tally();
  const until = performance.now() + ms;
  let sent = 0;
  const loop = async () => {
    do {
      sent += 1;
      tally.add(await send());
    } while (performance.now() < until && sent < 10_000);
  };
  await Promise.all(Array.from({ length: parallel }, loop));
  return tally;
}

const sentIn = (tally: Tally) =>
  `${count(tally.total)} answered in ${((tally.endedAt - tally.startedAt) / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------------------------------------
// The other caller: probes from a worker thread

type Sample = [ms: number, status: number];
type ProbeSamples = Record<'healthz' | 'kv', Sample[]>;

/** Plain JavaScript for the worker (bench/run.js compiles TypeScript for the main thread only). */
const PROBE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent, request } = require('node:http');
const { performance } = require('node:perf_hooks');
const { port, token, key, intervalMs, maxMs } = workerData;
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const until = performance.now() + maxMs;
let running = true;
const probes = [
  { name: 'healthz', path: '/healthz', headers: {} },
  { name: 'kv', path: '/redis/kv/' + key, headers: { authorization: 'Bearer ' + token } },
].map((probe) => ({
  ...probe,
  agent: new Agent({ keepAlive: true, maxSockets: 1 }),
  inFlight: false,
  samples: [],
}));
const once = (probe) =>
  new Promise((resolve) => {
    const started = performance.now();
    const req = request(
      { host: '127.0.0.1', port, path: probe.path, headers: probe.headers, agent: probe.agent, timeout: 30000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve([performance.now() - started, res.statusCode]));
        res.on('error', () => resolve([performance.now() - started, 0]));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve([performance.now() - started, 0]));
    req.end();
  });
const loop = async (probe) => {
  while (running && performance.now() < until) {
    probe.inFlight = true;
    probe.samples.push(await once(probe));
    probe.inFlight = false;
    await sleep(intervalMs);
  }
  probe.agent.destroy();
};
const loops = Promise.all(probes.map(loop));
parentPort.on('message', async (message) => {
  if (message === 'take') {
    // A probe still waiting belongs to this window: wait for it (at most its 30 s timeout).
    for (let i = 0; i < 7000 && probes.some((probe) => probe.inFlight); i++) {
      await sleep(5);
    }
    parentPort.postMessage(Object.fromEntries(probes.map((p) => [p.name, p.samples.splice(0)])));
  } else if (message === 'stop') {
    running = false;
    await loops;
    parentPort.postMessage('stopped');
  }
});
`;

class Prober {
  private constructor(private readonly worker: Worker) {}

  static start(token: string): Prober {
    const worker = new Worker(PROBE_WORKER, {
      eval: true,
      workerData: {
        port: gatewayPort,
        token,
        key: PROBE_KEY,
        intervalMs: PROBE_INTERVAL_MS,
        maxMs: 300_000,
      },
    });
    worker.on('error', (error) => console.error('probe worker:', error));
    return new Prober(worker);
  }

  /** The samples since the last take (after any probe in flight has been answered). */
  take(): Promise<ProbeSamples> {
    return new Promise((resolve) => {
      this.worker.once('message', (samples: ProbeSamples) => resolve(samples));
      this.worker.postMessage('take');
    });
  }

  async stop(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.worker.once('message', () => resolve()));
    this.worker.postMessage('stop');
    await Promise.race([stopped, sleep(5000)]);
    await this.worker.terminate();
  }
}

function describeProbes(samples: ProbeSamples): string {
  const parts = (['healthz', 'kv'] as const).map((name) => {
    const list = samples[name];
    const label = name === 'healthz' ? '/healthz' : 'KV GET';
    return `${label} ${spread(list.map(([ms]) => ms))} (${list.length})`;
  });
  const failures = new Map<string, number>();
  for (const name of ['healthz', 'kv'] as const) {
    for (const [, status] of samples[name]) {
      if (status < 200 || status >= 300) {
        const key = `${name === 'healthz' ? '/healthz' : 'KV GET'} ${status === 0 ? 'socket error' : status}`;
        failures.set(key, (failures.get(key) ?? 0) + 1);
      }
    }
  }
  const failed =
    failures.size === 0
      ? 'all 2xx'
      : `non-2xx: ${[...failures].map(([key, n]) => `${n} × ${key}`).join(', ')}`;
  return `p50 / p99 / max: ${parts.join('; ')}; ${failed}`;
}

// ---------------------------------------------------------------------------------------------
// Redis memory and the gateway's RSS while a row runs

interface Growth {
  redisMb: number;
  rssMb: number;
}

/** Samples Redis's used_memory and the gateway's RSS every 25 ms; `stop` gives the growth. */
function sampleGrowth(admin: RedisConnection, gatewayPid: number): { stop: () => Promise<Growth> } {
  let startUsed = NaN;
  let startPeak = NaN;
  let maxUsed = 0;
  const startRss = rssMb(gatewayPid);
  let maxRss = startRss;
  let asking: Promise<void> | undefined;
  const ask = () =>
    (asking ??= admin
      .info('memory')
      .then((fields) => {
        const used = Number(fields.get('used_memory'));
        if (Number.isNaN(startUsed)) {
          startUsed = used;
          startPeak = Number(fields.get('used_memory_peak'));
        }
        maxUsed = Math.max(maxUsed, used);
      })
      .catch(() => undefined)
      .finally(() => (asking = undefined)));
  void ask();
  const timer = setInterval(() => {
    maxRss = Math.max(maxRss, rssMb(gatewayPid));
    void ask();
  }, 25);
  return {
    stop: async () => {
      clearInterval(timer);
      await asking;
      const fields = await admin.info('memory');
      maxUsed = Math.max(maxUsed, Number(fields.get('used_memory')));
      // A peak between two samples still shows in used_memory_peak when it set a new record.
      const peak = Number(fields.get('used_memory_peak'));
      const highest = peak > startPeak ? Math.max(peak, maxUsed) : maxUsed;
      return { redisMb: (highest - startUsed) / MiB, rssMb: maxRss - startRss };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events and raw sockets

interface Sse {
  status: number;
  headMs: number;
  body: string;
  /** When each event of a name arrived (performance.now()). */
  events: Map<string, number[]>;
  close: () => void;
}

/** Opens an SSE stream; a refusal resolves too (with its body). Head within `timeoutMs`. */
function openSse(path: string, token: string, timeoutMs = 5000): Promise<Sse> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port: gatewayPort,
      path,
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      agent: false,
    });
    const timer = setTimeout(() => req.destroy(new Error('no response head in time')), timeoutMs);
    const stream: Sse = {
      status: 0,
      headMs: NaN,
      body: '',
      events: new Map(),
      close: () => req.destroy(),
    };
    req.on('error', (error) => {
      clearTimeout(timer);
      stream.body ||= error.message;
      resolve(stream);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      stream.status = res.statusCode ?? 0;
      stream.headMs = performance.now() - started;
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        if (stream.status !== 200) {
          stream.body += chunk;
          return;
        }
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          const name = /^event: ?(.*)$/.exec(line)?.[1];
          if (name !== undefined) {
            stream.events.set(name, [...(stream.events.get(name) ?? []), performance.now()]);
          }
        }
      });
      res.on('error', () => undefined);
      if (stream.status === 200) {
        resolve(stream);
      } else {
        res.on('end', () => resolve(stream));
      }
    });
    req.end();
  });
}

/** Waits until `check` holds, every 10 ms, for at most `ms`. */
async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (!check() && performance.now() < until) {
    await sleep(10);
  }
  return check();
}

interface RawSocket {
  socket: Socket;
  openedAt: number;
  /** When the server closed it (performance.now()), undefined while open. */
  closedAt?: number;
  answer: string;
}

/** A socket to the gateway that writes `first` once connected and records its answer and close. */
function rawSocket(first: string): Promise<RawSocket> {
  return new Promise((resolve) => {
    const socket = connect(gatewayPort, '127.0.0.1');
    const raw: RawSocket = { socket, openedAt: NaN, answer: '' };
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (raw.answer.length < 256) {
        raw.answer += chunk.toString('latin1');
      }
    });
    socket.once('close', () => (raw.closedAt = performance.now()));
    socket.once('connect', () => {
      raw.openedAt = performance.now();
      socket.write(first);
      resolve(raw);
    });
    // A refused connection resolves too, already closed.
    socket.once('close', () => resolve(raw));
  });
}

// ---------------------------------------------------------------------------------------------
// The replay

interface Row {
  id: string;
  sent: string;
  got: string;
  others: string;
  growth: string;
}

interface Outcome {
  got: string;
  /** More of what the other caller saw (its own streams, locks, publishes). */
  others?: string;
  /** More figures for the last column (Redis CPU, PUBLISH time). */
  growth?: string;
}

/** A JSON object's members `"f0":1,"f1":1,…` (built as text: fast). */
const members = (n: number) => Array.from({ length: n }, (_, i) => `"f${i}":1`).join(',');

async function main(): Promise<void> {
  const startedAt = performance.now();
  const loadAtStart = loadavg().map((l) => l.toFixed(2));
  const redis = await throwawayRedis();
  const issuer = await LocalIssuer.start({ clients: ['local-client', 'other-client', 'attacker'] });
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-isolation-'));
  const configFile = join(dir, 'isolation.yaml');
  // A throwaway Redis has just started: the delayed restart would refuse every lock.
  writeFileSync(configFile, 'locks:\n  delayedRestartMs: 0\n');
  let gateway: Gateway | undefined;
  let admin: RedisConnection | undefined;
  let prober: Prober | undefined;
  const rows: Row[] = [];
  const cleanups: (() => void)[] = [];
  try {
    gateway = await startGateway({
      REDIS_URL: redis.url,
      OIDC_ISSUER: issuer.url,
      OIDC_AUDIENCE: issuer.audience,
      CONFIG_FILE: configFile,
    });
    gatewayPort = Number(new URL(gateway.url).port);
    admin = await redisConnection(redis.url);
    const gatewayPid = gateway.pid;
    const redisAdmin = admin;

    const attackerRead = await issuer.token({ clientId: 'attacker', scopes: [READ] });
    const attacker = await issuer.token({ clientId: 'attacker', scopes: [READ, WRITE] });
    const other = await issuer.token({ clientId: 'other-client', scopes: [READ, WRITE] });

    // The data the attacks read, written through the gateway (each token verified once here).
    const must = async (answer: Promise<Answer>, what: string) => {
      const { status, text } = await answer;
      if (status < 200 || status >= 300) {
        throw new Error(`${what}: ${status} ${text.slice(0, 200)}`);
      }
    };
    const big = Buffer.alloc(MiB, 0x78);
    await must(
      call('PUT', `/redis/kv/${PROBE_KEY}`, { token: other, json: { value: 'x'.repeat(100) } }),
      'the probe key',
    );
    for (const name of ['big', ...Array.from({ length: 20 }, (_, i) => `big-${i}`)]) {
      await must(
        call('PUT', `/redis/kv/${name}`, {
          token: attacker,
          body: big,
          contentType: 'application/octet-stream',
        }),
        `the 1 MiB key ${name}`,
      );
    }
    await must(
      call('PUT', '/redis/hashes/big-hash', {
        token: attacker,
        json: { fields: { f: big.toString('latin1') } },
      }),
      'the hash with a 1 MiB field',
    );
    await must(call('GET', `/redis/kv/${PROBE_KEY}`, { token: attackerRead }), 'the read token');
    prober = Prober.start(other);
    const probes = prober;

    const row = async (id: string, sent: string, attack: () => Promise<Outcome>) => {
      await sleep(PAUSE_MS);
      await probes.take();
      const growth = sampleGrowth(redisAdmin, gatewayPid);
      const redisCpuAt = redis.pid === undefined ? NaN : cpuSeconds(redis.pid);
      const gatewayCpuAt = cpuSeconds(gatewayPid);
      const clientCpuAt = process.cpuUsage();
      const rowStarted = performance.now();
      let outcome: Outcome;
      let grown: Growth;
      try {
        outcome = await attack();
      } finally {
        grown = await growth.stop();
      }
      const wall = (performance.now() - rowStarted) / 1000;
      const share = (seconds: number) =>
        Number.isFinite(seconds) ? `${Math.round((seconds / wall) * 100)} %` : '-';
      const client = process.cpuUsage(clientCpuAt);
      const cpu =
        `CPU over ${wall.toFixed(1)} s: gateway ${share(cpuSeconds(gatewayPid) - gatewayCpuAt)}, ` +
        `Redis ${share(redis.pid === undefined ? NaN : cpuSeconds(redis.pid) - redisCpuAt)}, ` +
        `this process ${share((client.user + client.system) / 1e6)}`;
      const samples = await probes.take();
      const entry: Row = {
        id,
        sent,
        got: outcome.got,
        others: describeProbes(samples) + (outcome.others ? `; ${outcome.others}` : ''),
        growth:
          `Redis used_memory ${grown.redisMb >= 0 ? '+' : ''}${grown.redisMb.toFixed(1)} MiB, ` +
          `gateway RSS +${grown.rssMb.toFixed(0)} MiB; ${cpu}` +
          (outcome.growth ? `; ${outcome.growth}` : ''),
      };
      rows.push(entry);
      console.log(
        `${id}. ${sent}\n   got: ${entry.got}\n   others: ${entry.others}\n   ${entry.growth}`,
      );
    };

    // 0. Nothing: the probes on this machine as it is.
    await row('0', 'nothing (3 s): the probes alone', async () => {
      await sleep(3000);
      return { got: '-' };
    });

    // 1. Unknown top-level fields in an _mget body.
    for (const fields of [150_000, 49_000]) {
      const body = `{"keys":["a"],${members(fields)}}`;
      await row(
        '1',
        `POST /redis/kv/_mget, {"keys":["a"]} and ${count(fields)} unknown top-level fields ` +
          `(${fmtBytes(body.length)}), read-only token; one at a time, back to back for 2 s`,
        async () => {
          const tally = await repeatFor(REPEAT_MS, 1, () =>
            call('POST', '/redis/kv/_mget', { token: attackerRead, body }),
          );
          const text = tally.first?.text ?? '';
          const errors = (/"errors":\[(.*)\]/.exec(text)?.[1].match(/"field"/g) ?? []).length;
          const detail = /"message":"([^"]*)"/.exec(text)?.[1];
          return { got: `${tally.describe()}; ${errors} error(s), the first: ${detail ?? '-'}` };
        },
      );
    }

    // 2. Batch reads that would amplify, each kept up for 2 s.
    const names = (field: 'keys' | 'fields', list: string[]) => JSON.stringify({ [field]: list });
    const sameKey = names('keys', Array<string>(1000).fill('big'));
    const distinct = names(
      'keys',
      Array.from({ length: 20 }, (_, i) => `big-${i}`),
    );
    const sameField = names('fields', Array<string>(1000).fill('f'));
    for (const [label, path, body] of [
      [
        `POST /redis/kv/_mget naming one 1 MiB key 1,000 times (${fmtBytes(sameKey.length)} body)`,
        '/redis/kv/_mget',
        sameKey,
      ],
      [
        'POST /redis/kv/_mget of 20 distinct 1 MiB keys (20 MiB stored; limits.maxResponseBytes is 16 MiB)',
        '/redis/kv/_mget',
        distinct,
      ],
      [
        `POST /redis/hashes/{key}/_mget naming one 1 MiB field 1,000 times (${fmtBytes(sameField.length)} body)`,
        '/redis/hashes/big-hash/_mget',
        sameField,
      ],
    ] as const) {
      await row('2', `${label}; three at once, back to back for 2 s`, async () => {
        const tally = await repeatFor(REPEAT_MS, 3, () =>
          call('POST', path, { token: attackerRead, body }),
        );
        return { got: `${tally.describe()}; ${sentIn(tally)}` };
      });
    }

    // 3. Costly pattern subscriptions while someone publishes.
    const channel = 'b'.repeat(1000);
    const allowedClass = `*[${'b'.repeat(32)}]`.repeat(7);
    for (const [label, patterns] of [
      [
        `five pattern subscriptions of \`*[\` + 1,000 × \`b\` + \`]x\` (1,004 bytes)`,
        Array<string>(5).fill(`*[${'b'.repeat(1000)}]x`),
      ],
      [
        `for comparison, a costly shape that is allowed: five subscriptions of 7 × \`*[\` + 32 × \`b\` + \`]\` + one of \`vwxyz\` (${allowedClass.length + 1} bytes, classes of 32)`,
        [...'vwxyz'].map((last) => allowedClass + last),
      ],
    ] as const) {
      await row(
        '3',
        `${label}, GET /redis/pubsub/patterns/{pattern}/events (SSE), while it publishes to a ` +
          `channel of 1,000 × \`b\` (250/s for 3 s)`,
        async () => {
          const streams = await Promise.all(
            patterns.map((pattern) =>
              openSse(`/redis/pubsub/patterns/${encodeURIComponent(pattern)}/events`, attackerRead),
            ),
          );
          streams.forEach((stream) => cleanups.push(stream.close));
          try {
            const subscriptions = new Tally();
            for (const stream of streams) {
              subscriptions.add({
                status: stream.status,
                code:
                  stream.status >= 400 ? /"code":"([A-Z_]+)"/.exec(stream.body)?.[1] : undefined,
                ms: stream.headMs,
                bytes: Buffer.byteLength(stream.body),
                text: stream.body,
              });
            }
            await redisAdmin.command('CONFIG', 'RESETSTAT');
            const publishes = await flood(750, 3, 8, () =>
              call('POST', `/redis/pubsub/channels/${channel}/messages`, {
                token: attacker,
                json: { message: 'm' },
              }),
            );
            const stat = (await redisAdmin.info('commandstats')).get('cmdstat_publish') ?? '';
            const calls = Number(/calls=(\d+)/.exec(stat)?.[1] ?? 0);
            const usec = Number(/usec=(\d+)/.exec(stat)?.[1] ?? 0);
            const delivered = streams.reduce(
              (sum, stream) => sum + (stream.events.get('message')?.length ?? 0),
              0,
            );
            return {
              got:
                `subscriptions: ${subscriptions.describe()}; publishes: ${publishes.describe()}` +
                (delivered > 0 ? `; ${count(delivered)} messages delivered` : ''),
              growth: `Redis in PUBLISH ${(usec / 1e6).toFixed(2)} s for ${count(calls)} calls (${calls ? (usec / calls).toFixed(1) : '-'} µs each)`,
            };
          } finally {
            streams.forEach((stream) => stream.close());
          }
        },
      );
    }

    // 4. Blocking group reads filling the pool.
    await must(
      call('POST', '/redis/streams/atk-stream/groups', { token: attacker, json: { group: 'g' } }),
      "the attacker's group",
    );
    await must(
      call('POST', '/redis/streams/other-stream/groups', { token: other, json: { group: 'g' } }),
      "the other caller's group",
    );
    await row(
      '4',
      '20 concurrent POST /redis/streams/{key}/groups/{group}/read with blockMs 15000 (after creating the group)',
      async () => {
        const readAgent = new Agent({ keepAlive: false, maxSockets: 32 });
        cleanups.push(() => readAgent.destroy());
        const tally = new Tally();
        const reads = Array.from({ length: 20 }, async (_, i) =>
          tally.add(
            await call('POST', '/redis/streams/atk-stream/groups/g/read', {
              token: attacker,
              json: { consumer: `c${i}`, blockMs: 15000 },
              agent: readAgent,
              timeoutMs: 25000,
            }),
          ),
        );
        await sleep(500);
        const metrics = await call('GET', '/metrics');
        const inUse = /^redis_gateway_blocking_pool_in_use (\S+)/m.exec(metrics.text)?.[1] ?? '?';
        // The other subject: a stream tail and a blocking read of its own, then an entry for both.
        const tail = await openSse('/redis/streams/other-stream/events', other);
        cleanups.push(tail.close);
        let theirs: string;
        try {
          const readStarted = performance.now();
          const blocked = call('POST', '/redis/streams/other-stream/groups/g/read', {
            token: other,
            json: { consumer: 'o', blockMs: 5000 },
            timeoutMs: 10000,
          });
          await sleep(300);
          const addedAt = performance.now();
          const added = await call('POST', '/redis/streams/other-stream/entries', {
            token: other,
            json: { fields: { n: '1' } },
          });
          const read = await blocked;
          const entries = (read.text.match(/"id":/g) ?? []).length;
          await waitFor(() => (tail.events.get('entry')?.length ?? 0) > 0, 3000);
          const delivered = tail.events.get('entry')?.[0];
          theirs =
            `its tail: ${tail.status}${tail.status === 200 ? '' : ` ${tail.body.slice(0, 80)}`} in ${fmtMs(tail.headMs)}, ` +
            `entry delivered ${delivered === undefined ? 'never (3 s)' : `${fmtMs(delivered - addedAt)} after its add (${added.status})`}; ` +
            `its blocking read: ${read.status}${read.code ? ` ${read.code}` : ''} with ${entries} entry after ${fmtMs(read.ms)} ` +
            `(entry added at ${fmtMs(addedAt - readStarted)})`;
        } finally {
          tail.close();
        }
        await Promise.all(reads);
        return {
          got: `${tally.describe()}; blocking pool in use 0.5 s in: ${inUse} of 16`,
          others: theirs,
        };
      },
    );

    // 5. Floods: locks, publishes, refused tokens.
    await row(
      '5',
      '1,000 POST /redis/locks/{name} {ttlMs: 300000} (distinct names, 10 at a time)',
      async () => {
        const theirs = sleep(200).then(() =>
          call('POST', '/redis/locks/other-lock', { token: other, json: { ttlMs: 1000 } }),
        );
        const tally = await flood(1000, 0, 10, (i) =>
          call('POST', `/redis/locks/atk-lock-${i}`, { token: attacker, json: { ttlMs: 300000 } }),
        );
        const lock = await theirs;
        return {
          got: `${tally.describe()}; ${sentIn(tally)}`,
          others: `its own lock meanwhile: ${lock.status}${lock.code ? ` ${lock.code}` : ''} in ${fmtMs(lock.ms)}`,
        };
      },
    );
    await row(
      '5',
      '11,000 POST /redis/pubsub/channels/{channel}/messages in 5 s (up to 64 at once)',
      async () => {
        const theirs = sleep(2500).then(() =>
          call('POST', '/redis/pubsub/channels/other-news/messages', {
            token: other,
            json: { message: 'm' },
          }),
        );
        const tally = await flood(11_000, 5, 64, () =>
          call('POST', '/redis/pubsub/channels/atk-news/messages', {
            token: attacker,
            json: { message: 'm' },
          }),
        );
        const published = await theirs;
        return {
          got: `${tally.describe()}; ${sentIn(tally)}`,
          others: `its own publish meanwhile: ${published.status}${published.code ? ` ${published.code}` : ''} in ${fmtMs(published.ms)}`,
        };
      },
    );
    await row(
      '5',
      '22,000 GET /redis/kv/{key} in 5 s with invalid tokens (an attacker token, its signature varied each time; up to 64 at once)',
      async () => {
        let forged = 0;
        const bad = () =>
          `${attacker.slice(0, -6)}${(forged++ % 2 ** 30).toString(36).padStart(6, '_')}`;
        // A token of the other subject it has not used before, from the same address (127.0.0.1).
        const fresh = await issuer.token({ clientId: 'other-client', scopes: [READ], ttlS: 3599 });
        const theirs = sleep(2500).then(() =>
          call('GET', `/redis/kv/${PROBE_KEY}`, { token: fresh }),
        );
        const tally = await flood(22_000, 5, 64, () =>
          call('GET', `/redis/kv/${PROBE_KEY}`, { token: bad() }),
        );
        const read = await theirs;
        return {
          got: `${tally.describe()}; ${sentIn(tally)}`,
          others:
            `a new token of its own from the same address meanwhile: ${read.status}` +
            `${read.code ? ` ${read.code}` : ''} in ${fmtMs(read.ms)}`,
        };
      },
    );

    // 6. Slow sockets.
    await row(
      '6',
      '500 sockets sending a request line, then one header line every 5 s (slowloris); and one PUT whose Content-Length (100) exceeds its body (9 bytes sent)',
      async () => {
        const timers: NodeJS.Timeout[] = [];
        const sockets: RawSocket[] = [];
        cleanups.push(() => {
          timers.forEach(clearInterval);
          sockets.forEach((raw) => raw.socket.destroy());
        });
        try {
          const short = await rawSocket(
            'PUT /redis/kv/short-body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
              `Authorization: Bearer ${attacker}\r\nContent-Length: 100\r\n\r\n{"value":`,
          );
          sockets.push(short);
          for (let batch = 0; batch < 5; batch++) {
            const opened = await Promise.all(
              Array.from({ length: 100 }, (_, j) =>
                rawSocket('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n').then((raw) => {
                  const timer = setInterval(() => {
                    if (raw.closedAt === undefined) {
                      raw.socket.write(`X-Slow-${batch * 100 + j}: y\r\n`);
                    }
                  }, 5000);
                  timers.push(timer);
                  return raw;
                }),
              ),
            );
            sockets.push(...opened);
          }
          const slow = sockets.slice(1);
          await waitFor(() => sockets.every((raw) => raw.closedAt !== undefined), 40000);
          const after = (raw: RawSocket) =>
            raw.closedAt === undefined ? NaN : raw.closedAt - raw.openedAt;
          const closedIn = slow.map(after).filter(Number.isFinite);
          const open = slow.length - closedIn.length;
          const answered = slow.filter((raw) => raw.answer.startsWith('HTTP/1.1 408')).length;
          const firstLine = (raw: RawSocket) => raw.answer.split('\r\n')[0] || 'nothing';
          const closedSummary = closedIn.length
            ? `closed ${fmtMs(Math.min(...closedIn))} (first) to ${fmtMs(Math.max(...closedIn))} (last) after their first line`
            : 'none closed';
          return {
            got:
              `slowloris: ${answered} × 408 then ${closedSummary}` +
              `${open ? `, ${open} still open after 40 s` : ''}` +
              `${slow.length - answered ? `, ${slow.length - answered} answered ${firstLine(slow.find((raw) => !raw.answer.startsWith('HTTP/1.1 408')) ?? slow[0])}` : ''}; ` +
              `short body: ${firstLine(short)}, closed ${Number.isFinite(after(short)) ? `after ${fmtMs(after(short))}` : 'never (40 s)'}`,
            growth: `key short-body written: ${(await redisAdmin.command('EXISTS', 'short-body')) === '1' ? 'yes' : 'no'}`,
          };
        } finally {
          timers.forEach(clearInterval);
          sockets.forEach((raw) => raw.socket.destroy());
        }
      },
    );
  } finally {
    for (const cleanup of cleanups) {
      cleanup();
    }
    await prober?.stop();
    attackAgent.destroy();
    admin?.close();
    gateway?.stop();
    await issuer.close();
    redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const cell = (text: string) => text.replace(/\|/g, '\\|');
  console.log(
    `\nAttack replay: one attacker subject against dist/main.js (production, default settings, ` +
      `locks.delayedRestartMs 0); another subject probing GET /healthz and a KV GET every ` +
      `${PROBE_INTERVAL_MS} ms each (latencies p50 / p99 / max, probe count in parentheses). ` +
      `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, node ${process.version}, load average ` +
      `${loadAtStart.join(' ')} at start, ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} at end; ` +
      `${((performance.now() - startedAt) / 1000).toFixed(0)} s.\n`,
  );
  console.log(
    [
      '| # | what the attacker sent | what it got | what the other caller saw meanwhile | Redis used_memory / gateway RSS growth |',
      '| --- | --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.id} | ${cell(r.sent)} | ${cell(r.got)} | ${cell(r.others)} | ${cell(r.growth)} |`,
      ),
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * What every benchmark shares: a throwaway Redis (and a plain connection to read its INFO), the
 * built gateway as a process, percentiles, and pinning processes to CPUs with taskset.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { answersPing, freePort } from '../src/dev/local-redis';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Where a spawned process runs: `cpu` pins it (and its threads) to that CPU with taskset. */
export interface Placement {
  cpu?: number;
  /** Node options before the script (`--cpu-prof` is not allowed in NODE_OPTIONS). */
  execArgv?: string[];
}

/**
 * The CPUs this process may run on (its affinity list, as taskset reports it), or none when
 * pinning is off: BENCH_PIN=0, no taskset, or fewer than two CPUs (nothing to separate).
 */
export function pinnableCpus(): number[] {
  if (process.env.BENCH_PIN === '0') {
    return [];
  }
  try {
    const out = execFileSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
    const cpus = out
      .slice(out.lastIndexOf(':') + 1)
      .trim()
      .split(',')
      .flatMap((range) => {
        const [first, last = first] = range.split('-').map(Number);
        return Array.from({ length: last - first + 1 }, (_, i) => first + i);
      });
    return cpus.length >= 2 ? cpus : [];
  } catch {
    return [];
  }
}

/** Pins every thread of a running process to one CPU (`taskset -a -cp`). */
export function pinProcess(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
}

/** Spawns `command` on `placement.cpu` through taskset (which execs it: the pid is the command's). */
function spawnOn(
  placement: Placement,
  command: string,
  args: string[],
  options: Parameters<typeof spawn>[2],
): ChildProcess {
  args = command === process.execPath ? [...(placement.execArgv ?? []), ...args] : args;
  return placement.cpu === undefined
    ? spawn(command, args, options)
    : spawn('taskset', ['-c', String(placement.cpu), command, ...args], options);
}

/** Resident set size of a process, in MB. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

let clockTicks: number | undefined;

/** CPU time (user + system, every thread) a process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  // Fields after the command name, which is in parentheses and may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/**
 * REDIS_URL when set, else a redis-server on a free port (on `placement.cpu` when given),
 * removed by `stop`.
 */
export async function throwawayRedis(
  placement: Placement = {},
): Promise<{ url: string; pid?: number; stop: () => void }> {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, stop: () => undefined };
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-bench-'));
  const child = spawnOn(
    placement,
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 50 && !(await answersPing(url)); attempt++) {
    await sleep(100);
  }
  return {
    url,
    pid: child.pid,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One Redis connection for what a benchmark reads beside the gateway (INFO, CONFIG RESETSTAT). */
export interface RedisConnection {
  /** Sends one command; resolves with its reply as text (an integer's digits, a bulk string). */
  command: (...args: string[]) => Promise<string>;
  /** `INFO <section>` as fields (`used_memory` → its digits, `cmdstat_publish` → `calls=…`). */
  info: (section: string) => Promise<Map<string, string>>;
  close: () => void;
}

/** The first complete RESP reply in `buffer` (simple string, error, integer or bulk string). */
function firstReply(buffer: Buffer): { text: string; error: boolean; end: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n');
  if (lineEnd < 0) {
    return undefined;
  }
  const head = buffer.toString('utf8', 1, lineEnd);
  const type = String.fromCharCode(buffer[0]);
  if (type === '+' || type === ':' || type === '-') {
    return { text: head, error: type === '-', end: lineEnd + 2 };
  }
  if (type !== '$') {
    throw new Error(`unexpected Redis reply type ${JSON.stringify(type)}`);
  }
  const length = Number(head);
  if (length < 0) {
    return { text: '', error: false, end: lineEnd + 2 };
  }
  const end = lineEnd + 2 + length + 2;
  return buffer.length < end
    ? undefined
    : { text: buffer.toString('utf8', lineEnd + 2, end - 2), error: false, end };
}

/**
 * A plain RESP connection to `url` (host and port only: the throwaway Redis has no password),
 * for replies that are not arrays. Commands are answered in order.
 */
export function redisConnection(url: string): Promise<RedisConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const waiting: { done: (text: string) => void; fail: (error: Error) => void }[] = [];
    let buffer = Buffer.alloc(0);
    const socket = connect(Number(port || 6379), hostname, () => {
      socket.off('error', reject);
      socket.on('error', () => undefined);
      resolve(connection);
    });
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let reply = firstReply(buffer); reply; reply = firstReply(buffer)) {
        buffer = buffer.subarray(reply.end);
        const waiter = waiting.shift();
        if (reply.error) {
          waiter?.fail(new Error(reply.text));
        } else {
          waiter?.done(reply.text);
        }
      }
    });
    socket.on('close', () => {
      for (const waiter of waiting.splice(0)) {
        waiter.fail(new Error('the Redis connection closed'));
      }
    });
    const command = (...args: string[]) =>
      new Promise<string>((done, fail) => {
        waiting.push({ done, fail });
        socket.write(
          `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`,
        );
      });
    const connection: RedisConnection = {
      command,
      info: async (section) => {
        const fields = new Map<string, string>();
        for (const line of (await command('INFO', section)).split('\r\n')) {
          const colon = line.indexOf(':');
          if (colon > 0 && !line.startsWith('#')) {
            fields.set(line.slice(0, colon), line.slice(colon + 1));
          }
        }
        return fields;
      },
      close: () => socket.destroy(),
    };
  });
}

export interface Gateway {
  url: string;
  pid: number;
  stop: () => void;
  /** Settles when the process has exited (a CPU profile it writes is then complete). */
  exited: Promise<void>;
}

/**
 * The built gateway (`dist/main.js`) in production mode on a free loopback port, on
 * `placement.cpu` when given. Its JSON logs (stdout) go to /dev/null.
 */
export async function startGateway(
  env: Record<string, string>,
  placement: Placement = {},
): Promise<Gateway> {
  const main = resolve(__dirname, '..', 'dist', 'main.js');
  if (!existsSync(main)) {
    throw new Error('dist/main.js is missing: run npm run build first (npm run bench does)');
  }
  return startServer('the gateway', main, '/readyz', env, placement);
}

/**
 * bench/baseline-server.js (bare Fastify + ioredis, one auto-pipelined GET per request at
 * GET /kv/:key) on a free loopback port against `redisUrl`, on `placement.cpu` when given.
 */
export function startBaseline(redisUrl: string, placement: Placement = {}): Promise<Gateway> {
  const main = resolve(__dirname, 'baseline-server.js');
  return startServer('the baseline server', main, '/kv/', { REDIS_URL: redisUrl }, placement);
}

/** Runs a Node server until `readyPath` answers 200 (any answer when it ends in '/'). */
async function startServer(
  what: string,
  main: string,
  readyPath: string,
  env: Record<string, string>,
  placement: Placement,
): Promise<Gateway> {
  const port = await freePort();
  const child = spawnOn(placement, process.execPath, [main], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const response = await fetch(`${url}${readyPath}`);
      await response.arrayBuffer();
      if (response.ok || readyPath.endsWith('/')) {
        return { url, pid: child.pid ?? 0, stop: () => child.kill('SIGTERM'), exited };
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`${what} did not become ready`);
}

/** The value below which a fraction `p` (0..1) of `values` lies. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) {
    return NaN;
  }
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)];
}

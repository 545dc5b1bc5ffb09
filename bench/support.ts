/**
 * What every benchmark shares: a throwaway Redis, the built gateway as a process, percentiles,
 * and pinning processes to CPUs with taskset.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { answersPing, freePort } from '../src/dev/local-redis';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Where a spawned process runs: `cpu` pins it (and its threads) to that CPU with taskset. */
export interface Placement {
  cpu?: number;
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

export interface Gateway {
  url: string;
  pid: number;
  stop: () => void;
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
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const response = await fetch(`${url}${readyPath}`);
      await response.arrayBuffer();
      if (response.ok || readyPath.endsWith('/')) {
        return { url, pid: child.pid ?? 0, stop: () => child.kill('SIGTERM') };
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

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { answersPing } from '../../src/dev/local-redis';
import { freePort, sleep } from './ports';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    child.kill('SIGKILL');
  }
});

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes', '--appendfsync', 'always']. */
  args?: string[];
  port?: number;
  /**
   * Run as a Sentinel: writes its configuration file into the server's directory and returns
   * its path (Sentinel rewrites that file, so it must be its own).
   */
  sentinel?: (dir: string) => string;
}

/**
 * A redis-server this test process owns, on a free loopback port, so failure tests can stop,
 * kill, pause and restart it without touching anyone else's Redis.
 */
export class RedisServer {
  private child?: ChildProcess;
  private readonly clients: Redis[] = [];

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
    private readonly sentinelConfig?: string,
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-test-'));
    const server = new RedisServer(port, dir, options.args ?? [], options.sentinel?.(dir));
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts (again) on the same port and directory, so an AOF survives a restart. */
  async launch(): Promise<void> {
    const child = spawn(
      'redis-server',
      this.sentinelConfig
        ? [this.sentinelConfig, '--sentinel']
        : [
            '--port',
            String(this.port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            this.dir,
            '--enable-debug-command',
            'local',
            ...this.args,
          ],
      { stdio: 'ignore' },
    );
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.child = child;
    for (let attempt = 0; attempt < 100; attempt++) {
      if (await answersPing(this.url)) {
        return;
      }
      await sleep(50);
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  /** A direct client for assertions and fault injection (closed by stop()). */
  client(options: RedisOptions = {}): Redis {
    const client = new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1, ...options });
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  /** kill -9: the process ends at once, whatever it was doing. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Stops the server for good and removes its directory. */
  async stop(): Promise<void> {
    for (const client of this.clients.splice(0)) {
      client.disconnect();
    }
    this.resume();
    await this.signal('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}

/** A private redis-server for one test, stopped (SIGKILL, directory removed) however it ends. */
export async function withRedisServer(
  run: (server: RedisServer) => Promise<void>,
  options: RedisServerOptions = {},
): Promise<void> {
  const server = await RedisServer.start(options);
  try {
    await run(server);
  } finally {
    await server.stop();
  }
}

/** Whether a container runtime may answer (checked before loading testcontainers, ~0.5 s). */
export function containerRuntimeHint(): boolean {
  const sockets = [
    '/var/run/docker.sock',
    `${process.env.XDG_RUNTIME_DIR ?? ''}/podman/podman.sock`,
  ];
  return Boolean(process.env.DOCKER_HOST) || sockets.some((socket) => existsSync(socket));
}

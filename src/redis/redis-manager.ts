import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { isIP } from 'node:net';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { AppConfig, type RedisConfig, type RedisMode } from '../config/app-config';
import { GatewayMetrics, type ConnectionRole } from '../observability/gateway-metrics';
import {
  OperationTimeoutError,
  notReady,
  translateRedisError,
  type OperationKind,
} from './redis-errors';

export type RedisClient = Redis | Cluster;
export type ScriptArg = string | number | Buffer;
/**
 * A Lua script loaded with defineCommand: runs by SHA, falls back to EVAL once, on the command
 * connection `exec` hands out.
 */
export type ScriptRunner = (
  keys: string[],
  args: ScriptArg[],
  client: RedisClient,
) => Promise<unknown>;

/** At most one READONLY-driven reconnect per connection in this interval. */
const READONLY_RECONNECT_INTERVAL_MS = 2000;

interface HostPort {
  host: string;
  port: number;
}

function hostPort(entry: string): HostPort {
  const index = entry.lastIndexOf(':');
  return {
    host: entry.slice(0, index).replace(/^\[|\]$/g, ''),
    port: Number(entry.slice(index + 1)),
  };
}

function urlCredential(url: string, part: 'username' | 'password'): string {
  return url ? decodeURIComponent(new URL(url)[part]) : '';
}

/** Exponential backoff capped low with jitter, so recovery is quick and reconnects spread. */
export function reconnectDelay(attempt: number, capMs: number): number {
  return Math.min(50 * 2 ** Math.min(attempt - 1, 16), capMs) + Math.floor(Math.random() * 100);
}

/**
 * READONLY means the server behind the connection has become a replica. Reconnecting helps only
 * where it can reach another server: Sentinel names the current master, a host name may resolve
 * to the new primary after a failover, a cluster refreshes its slots. Against an IP address it
 * reaches the same replica again and only drops the commands in flight, so it is not done there;
 * elsewhere at most once per interval, never once per refused write (a reconnect storm).
 */
function readOnlyReconnect(
  redis: RedisConfig,
  host: string | undefined,
): RedisOptions['reconnectOnError'] {
  if (redis.mode === 'standalone' && isIP(host ?? '') !== 0) {
    return null;
  }
  let last = -Infinity;
  return (error) => {
    const now = performance.now();
    if (!error.message.startsWith('READONLY') || now - last < READONLY_RECONNECT_INTERVAL_MS) {
      return false;
    }
    last = now;
    return 1;
  };
}

/** Warnings about a flapping connection, at most one per interval. */
class ThrottledWarning {
  private last = 0;
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 5000,
  ) {}

  warn(message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.last >= this.intervalMs) {
      this.last = now;
      this.logger.warn(fields, message);
    }
  }
}

/**
 * The only owner of Redis connections. It knows the topology, the credentials, TLS and the
 * fail-fast client settings, runs every operation with metrics and error translation, reports
 * health and closes everything on shutdown.
 */
@Injectable()
export class RedisManager implements OnModuleInit, OnApplicationShutdown {
  readonly mode: RedisMode;
  /** The shared, auto-pipelined command connection for writes. */
  readonly command: RedisClient;
  /**
   * A second command connection, for reads. Redis runs one connection's commands strictly in
   * order, so a write it holds back (CLIENT PAUSE WRITE during a failover, a write stalled on a
   * reconnecting replica) would stall every read queued behind it on a shared connection
   * (RELIABILITY.md ).
   */
  readonly reads: RedisClient;

  private readonly logger = new Logger(RedisManager.name);
  private readonly warning = new ThrottledWarning(this.logger);
  private readonly clients: { role: ConnectionRole; client: RedisClient }[] = [];
  private password: string;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: GatewayMetrics,
  ) {
    const redis = config.redis;
    this.mode = redis.mode;
    this.password = redis.passwordFile
      ? this.readPasswordFile()
      : redis.password || urlCredential(redis.url, 'password');
    this.command = this.createClient('command', 'command');
    this.reads = this.createClient('command', 'reads');
    if (redis.passwordFile) {
      watchFile(redis.passwordFile, { interval: 1000 }, () => this.reloadPassword());
    }
  }

  /**
   * Connects in the background: the service starts (not ready, answering 503) while Redis is
   * down, and becomes ready by itself when Redis answers (RELIABILITY.md R-17).
   */
  onModuleInit(): void {
    for (const { client } of this.clients) {
      client.connect().catch(() => undefined);
    }
  }

  /** Whether both command connections (reads and writes) can take a command now. */
  isReady(): boolean {
    return this.command.status === 'ready' && this.reads.status === 'ready';
  }

  /**
   * Runs one operation on the command connection of its kind (reads or writes): fails at once
   * (503) when that connection is not ready, fails after redis.commandTimeoutMs at the latest
   * (504), records `redis_gateway_operations_*`, and turns every rejection into an AppError.
   */
  async exec<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const client = kind === 'read' ? this.reads : this.command;
    if (client.status !== 'ready') {
      this.metrics.recordOperation(operation, 'error', seconds());
      throw notReady();
    }
    try {
      const result = await this.withinDeadline(run(client));
      this.metrics.recordOperation(operation, isMiss?.(result) ? 'miss' : 'ok', seconds());
      return result;
    } catch (error) {
      this.metrics.recordOperation(operation, 'error', seconds());
      const translated = translateRedisError(error, kind);
      if (translated.code === 'INTERNAL' || translated.code === 'REDIS_NO_PERMISSION') {
        this.logger.error({ err: error, operation }, 'Redis operation failed');
      }
      throw translated;
    }
  }

  /**
   * ioredis arms commandTimeout only when a command is written, and auto-pipelining holds a
   * batch back until the previous batch has settled: behind a stalled batch a command waits up
   * to one timeout unsent, then another one sent. An operation of several round trips (SCAN
   * pages, a script's NOSCRIPT fallback) adds up its commands' timeouts. The request budget is
   * the whole operation's, so it gets one deadline of its own.
   */
  private withinDeadline<T>(operation: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new OperationTimeoutError()),
        this.config.redis.commandTimeoutMs,
      );
    });
    // A late rejection of the abandoned operation must not become an unhandled rejection.
    operation.catch(() => undefined);
    return Promise.race([operation, deadline]).finally(() => clearTimeout(timer));
  }

  /**
   * Loads a Lua script file named `<name>-<numberOfKeys>.lua` onto both command connections;
   * with `buffers`, bulk replies come back as Buffers (binary-safe values).
   */
  defineScript(file: string, { buffers = false } = {}): ScriptRunner {
    const match = /^(.+)-(\d+)\.lua$/.exec(basename(file));
    if (!match) {
      throw new Error(`Lua script file name must be <name>-<numberOfKeys>.lua: ${file}`);
    }
    const name = match[1].replace(/-(\w)/g, (_, char: string) => char.toUpperCase());
    const numberOfKeys = Number(match[2]);
    const lua = readFileSync(file, 'utf8');
    for (const client of [this.command, this.reads]) {
      client.defineCommand(name, { numberOfKeys, lua });
    }
    const method = buffers ? `${name}Buffer` : name;
    return (keys, args, client) => {
      if (keys.length !== numberOfKeys) {
        throw new Error(`${name} takes ${numberOfKeys} keys`);
      }
      const script = client as unknown as Record<
        string,
        (...args: ScriptArg[]) => Promise<unknown>
      >;
      return script[method](...keys, ...args);
    };
  }

  /**
   * Round-trip time of a PING (on the reads connection) in milliseconds; rejects like any
   * operation, and with 503 while the writes connection is not ready either.
   */
  async ping(): Promise<number> {
    if (this.command.status !== 'ready') {
      throw notReady();
    }
    const started = performance.now();
    await this.exec('ping', 'read', (client) => client.ping());
    return performance.now() - started;
  }

  /** INFO, parsed into `{ section: { field: value } }`. */
  async info(): Promise<Record<string, Record<string, string>>> {
    const text = await this.exec('info', 'read', (client) =>
      client instanceof Cluster ? (client.nodes('master')[0]?.info() ?? '') : client.info(),
    );
    const sections: Record<string, Record<string, string>> = {};
    let current: Record<string, string> = {};
    for (const line of text.split(/\r?\n/)) {
      if (line.startsWith('# ')) {
        current = {};
        sections[line.slice(2).trim().toLowerCase()] = current;
      } else if (line.includes(':')) {
        const index = line.indexOf(':');
        current[line.slice(0, index)] = line.slice(index + 1);
      }
    }
    return sections;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.config.redis.passwordFile) {
      unwatchFile(this.config.redis.passwordFile);
    }
    await Promise.all(
      this.clients.map(async ({ client }) => {
        if (client.status === 'wait' || client.status === 'end') {
          client.disconnect();
          return;
        }
        try {
          await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 1000))]);
        } catch {
          // A connection that is already down has nothing left to close gracefully.
        }
        client.disconnect();
      }),
    );
  }

  private createClient(role: ConnectionRole, name: string): RedisClient {
    const redis = this.config.redis;
    const options = this.clientOptions(role, name);
    const client =
      redis.mode === 'cluster'
        ? new Cluster(this.clusterNodes(), {
            redisOptions: options,
            enableOfflineQueue: false,
            enableAutoPipelining: options.enableAutoPipelining,
            clusterRetryStrategy: (attempt) => reconnectDelay(attempt, redis.retryMaxDelayMs),
            scaleReads: 'master',
            lazyConnect: true,
          } satisfies ClusterOptions)
        : new Redis(options);
    this.clients.push({ role, client });
    this.watch(role, name, client);
    return client;
  }

  private clientOptions(role: ConnectionRole, name: string): RedisOptions {
    const redis = this.config.redis;
    const endpoint = this.endpoint(redis);
    const options: RedisOptions = {
      ...endpoint,
      username: redis.username || urlCredential(redis.url, 'username') || undefined,
      password: this.password || undefined,
      connectionName: `redis-gateway:${name}`,
      lazyConnect: true,
      protocol: 2,
      // Fail fast, never hang, never write twice (ARCHITECTURE.md, RELIABILITY.md §1.2).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: role === 'command',
      commandTimeout: role === 'command' ? redis.commandTimeoutMs : undefined,
      socketTimeout: role === 'command' ? redis.socketTimeoutMs : undefined,
      connectTimeout: redis.connectTimeoutMs,
      // While Redis loads its dataset ioredis re-checks readiness after Redis's loading ETA,
      // which early in the load can be many seconds too long: look at least twice a second.
      maxLoadingRetryTime: 500,
      keepAlive: redis.keepAliveMs,
      // ioredis 6.0.0 never settles the commands in flight when a connection closes with
      // autoResendUnfulfilledCommands off (#2193, fixed after 6.0.0 by #2194). With no retries
      // per request it rejects them at every close instead (MaxRetriesPerRequestError), so a
      // caller learns at once that a write's outcome is unknown (redis-errors.ts).
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => reconnectDelay(attempt, redis.retryMaxDelayMs),
      reconnectOnError: readOnlyReconnect(redis, endpoint.host),
    };
    if (redis.mode === 'sentinel') {
      options.sentinels = redis.sentinels.map(hostPort);
      options.name = redis.sentinelName;
      options.sentinelRetryStrategy = (attempt) => reconnectDelay(attempt, redis.retryMaxDelayMs);
    }
    return options;
  }

  /** Host, port, db and TLS from `redis.url` when given, else from host and port. */
  private endpoint(redis: RedisConfig): RedisOptions {
    const options: RedisOptions = { host: redis.host, port: redis.port, db: redis.db };
    let tls = redis.tls.enabled;
    if (redis.url) {
      const url = new URL(redis.url);
      options.host = url.hostname.replace(/^\[|\]$/g, '');
      options.port = url.port ? Number(url.port) : 6379;
      const db = /^\/(\d+)$/.exec(url.pathname);
      if (db && redis.db === 0) {
        options.db = Number(db[1]);
      }
      tls ||= url.protocol === 'rediss:';
    }
    if (tls) {
      options.tls = redis.tls.caFile ? { ca: readFileSync(redis.tls.caFile) } : {};
    }
    return options;
  }

  private clusterNodes(): HostPort[] {
    const { clusterNodes, url } = this.config.redis;
    if (clusterNodes.length > 0) {
      return clusterNodes.map(hostPort);
    }
    const parsed = new URL(url);
    return [{ host: parsed.hostname, port: Number(parsed.port || 6379) }];
  }

  private watch(role: ConnectionRole, name: string, client: RedisClient): void {
    const { metrics } = this;
    const count = () => {
      const ready = this.clients.filter((c) => c.role === role && c.client.status === 'ready');
      metrics.connections.set({ role }, ready.length);
      if (role === 'command') {
        metrics.redisUp.set(this.isReady() ? 1 : 0);
      }
    };
    client.on('ready', () => {
      this.logger.log({ role, connection: name }, 'Redis connection ready');
      count();
    });
    client.on('close', () => {
      count();
    });
    client.on('error', (error: Error) => {
      this.warning.warn('Redis connection error', {
        role,
        connection: name,
        reason: error.message,
      });
    });
  }

  private readPasswordFile(): string {
    return readFileSync(this.config.redis.passwordFile, 'utf8').replace(/\r?\n$/, '');
  }

  /** New connections authenticate with the new password; live ones keep theirs. */
  private reloadPassword(): void {
    try {
      this.password = this.readPasswordFile();
    } catch {
      this.logger.warn('Redis password file unreadable; keeping the previous password');
      return;
    }
    for (const { client } of this.clients) {
      if (client instanceof Cluster) {
        client.options.redisOptions = { ...client.options.redisOptions, password: this.password };
      } else {
        client.options.password = this.password;
      }
    }
    this.logger.log('Redis password reloaded from its file');
  }
}

/** The replies of a MULTI/EXEC, or the first error among them. */
export function unwrapExec(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) {
    throw new Error('transaction aborted');
  }
  return results.map(([error, value]) => {
    if (error) {
      throw error;
    }
    return value;
  });
}

import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { AppConfig, type RedisConfig, type RedisMode } from '../config/app-config';
import { GatewayMetrics, type ConnectionRole } from '../observability/gateway-metrics';
import {
  ConnectionLostError,
  notReady,
  translateRedisError,
  type OperationKind,
} from './redis-errors';

export type RedisClient = Redis | Cluster;
export type ScriptArg = string | number | Buffer;
/** A Lua script loaded with defineCommand: runs by SHA, falls back to EVAL once. */
export type ScriptRunner = (keys: string[], args: ScriptArg[]) => Promise<unknown>;

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
  /** The shared, auto-pipelined command connection. */
  readonly command: RedisClient;

  private readonly logger = new Logger(RedisManager.name);
  private readonly warning = new ThrottledWarning(this.logger);
  private readonly clients = new Map<ConnectionRole, RedisClient>();
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
    this.command = this.createClient('command');
    if (redis.passwordFile) {
      watchFile(redis.passwordFile, { interval: 1000 }, () => this.reloadPassword());
    }
  }

  /**
   * Connects in the background: the service starts (not ready, answering 503) while Redis is
   * down, and becomes ready by itself when Redis answers (RELIABILITY.md R-17).
   */
  onModuleInit(): void {
    for (const client of this.clients.values()) {
      client.connect().catch(() => undefined);
    }
  }

  /** Whether the command connection can take a command now. */
  isReady(): boolean {
    return this.command.status === 'ready';
  }

  /**
   * Runs one operation on the command connection: fails at once (503) when the connection is
   * not ready, records `redis_gateway_operations_*`, and turns every rejection into an AppError.
   */
  async exec<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    if (!this.isReady()) {
      this.metrics.recordOperation(operation, 'error', seconds());
      throw notReady();
    }
    try {
      const result = await run(this.command);
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

  /** Loads a Lua script file named `<name>-<numberOfKeys>.lua` onto the command connection. */
  defineScript(file: string): ScriptRunner {
    const match = /^(.+)-(\d+)\.lua$/.exec(basename(file));
    if (!match) {
      throw new Error(`Lua script file name must be <name>-<numberOfKeys>.lua: ${file}`);
    }
    const name = match[1].replace(/-(\w)/g, (_, char: string) => char.toUpperCase());
    const numberOfKeys = Number(match[2]);
    this.command.defineCommand(name, { numberOfKeys, lua: readFileSync(file, 'utf8') });
    const client = this.command as unknown as Record<
      string,
      (...args: ScriptArg[]) => Promise<unknown>
    >;
    return (keys, args) => {
      if (keys.length !== numberOfKeys) {
        throw new Error(`${name} takes ${numberOfKeys} keys`);
      }
      return client[name](...keys, ...args);
    };
  }

  /** Round-trip time of a PING in milliseconds; rejects like any operation. */
  async ping(): Promise<number> {
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
      [...this.clients.values()].map(async (client) => {
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

  private createClient(role: ConnectionRole): RedisClient {
    const redis = this.config.redis;
    const options = this.clientOptions(role);
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
    this.clients.set(role, client);
    this.watch(role, client);
    return client;
  }

  private clientOptions(role: ConnectionRole): RedisOptions {
    const redis = this.config.redis;
    const options: RedisOptions = {
      ...this.endpoint(redis),
      username: redis.username || urlCredential(redis.url, 'username') || undefined,
      password: this.password || undefined,
      connectionName: `redis-gateway:${role}`,
      lazyConnect: true,
      protocol: 2,
      // Fail fast, never hang, never write twice (ARCHITECTURE.md, RELIABILITY.md §1.2).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: role === 'command',
      commandTimeout: role === 'command' ? redis.commandTimeoutMs : undefined,
      socketTimeout: role === 'command' ? redis.socketTimeoutMs : undefined,
      connectTimeout: redis.connectTimeoutMs,
      keepAlive: redis.keepAliveMs,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => reconnectDelay(attempt, redis.retryMaxDelayMs),
      reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
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

  private watch(role: ConnectionRole, client: RedisClient): void {
    const { metrics } = this;
    client.on('ready', () => {
      this.logger.log({ role }, 'Redis connection ready');
      metrics.connections.set({ role }, 1);
      if (role === 'command') {
        metrics.redisUp.set(1);
      }
    });
    client.on('close', () => {
      metrics.connections.set({ role }, 0);
      if (role === 'command') {
        metrics.redisUp.set(0);
      }
      this.rejectUnfulfilled(client);
    });
    client.on('error', (error: Error) => {
      this.warning.warn('Redis connection error', { role, err: { message: error.message } });
    });
  }

  /**
   * ioredis 6.0.0 drops the commands that were in flight when a connection closed without ever
   * settling their promises when `autoResendUnfulfilledCommands` is off (ioredis #2193, fixed
   * after 6.0.0 by #2194). Settle them here, so a caller learns at once that the outcome is
   * unknown instead of waiting for the command timeout. The timeout remains the backstop.
   */
  private rejectUnfulfilled(client: RedisClient): void {
    const internal = client as unknown as {
      prevCommandQueue?: { command?: { reject?: (error: Error) => void } }[] | null;
    };
    const queue = internal.prevCommandQueue;
    if (!Array.isArray(queue) || queue.length === 0) {
      return;
    }
    internal.prevCommandQueue = null;
    for (const item of queue) {
      item.command?.reject?.(new ConnectionLostError());
    }
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
    for (const client of this.clients.values()) {
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

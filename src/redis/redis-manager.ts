import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { isIP } from 'node:net';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { AppConfig, type RedisConfig, type RedisMode } from '../config/app-config';
import { GatewayMetrics, type ConnectionRole } from '../observability/gateway-metrics';
import { BlockingPool } from './blocking-pool';
import { KeyScan, mastersInOrder, nodeAddress } from './key-scan';
import { slotGroups } from './keys';
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

/** A server of the topology, as /redis/status lists it. */
export interface RedisNode {
  address: string;
  role: 'master' | 'replica' | 'sentinel';
  /** Cluster masters: how many hash slots they serve, in how many contiguous ranges. */
  slots?: number;
  slotRanges?: number;
}

/**
 * How long past its BLOCK time a blocking command may take before its connection is presumed
 * dead (half-open) and closed: ioredis has no deadline of its own that also frees the connection.
 */
export const BLOCKING_GRACE_MS = 1000;

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
 * The checked increment of a counter key or of a hash field (for `defineScript`), shared by the
 * key-value and hash modules: ARGV increment, "int" or "float", and the field for a hash.
 */
export const INCR_CHECKED_SCRIPT = join(__dirname, 'scripts', 'incr-checked-1.lua');

/** One server's INFO: section name (lower case) → field → value. */
export type Info = Record<string, Record<string, string>>;

function parseInfo(text: string): Info {
  const sections: Info = {};
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
   * (RELIABILITY.md R-5, R-14).
   */
  readonly reads: RedisClient;
  /** Dedicated connections for blocking reads and stream tails (redis.blockingPoolSize). */
  readonly blocking: BlockingPool;
  /**
   * The one subscriber connection of this instance, shared by every pub/sub SSE client
   * (ARCHITECTURE.md). Its owner resubscribes after a reconnect (autoResubscribe is off).
   */
  readonly subscriber: RedisClient;

  private readonly logger = new Logger(RedisManager.name);
  private readonly warning = new ThrottledWarning(this.logger);
  private readonly clients: { role: ConnectionRole; client: RedisClient }[] = [];
  private password: string;
  private closing = false;

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
    this.subscriber = this.createClient('subscriber', 'subscriber');
    this.blocking = new BlockingPool({
      size: redis.blockingPoolSize,
      perOwner: config.quotas.blockingPerSubject,
      connectTimeoutMs: redis.connectTimeoutMs,
      create: () => this.buildClient('blocking', 'blocking'),
      onChange: (inUse, open) => {
        metrics.blockingInUse.set(inUse);
        metrics.connections.set({ role: 'blocking' }, open);
      },
    });
    metrics.blockingPoolSize.set(redis.blockingPoolSize);
    metrics.blockingInUse.set(0);
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
  exec<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    return this.execOn(kind === 'read' ? this.reads : this.command, operation, kind, run, isMiss);
  }

  /** `exec` on a given connection (a lock node of `createNodeClient`, say). */
  async execOn<T>(
    client: RedisClient,
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
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
   * Runs one blocking command on a connection of the blocking pool (503 when the pool is spent
   * or Redis is down, 429 past `owner`'s share of it). The command gets BLOCK + BLOCKING_GRACE_MS to answer, else its connection
   * is closed as half-open (504); when `signal` aborts (the HTTP client went away) the
   * connection is closed at once, which also ends the block inside Redis.
   */
  async blockingExec<T>(
    operation: string,
    kind: OperationKind,
    blockMs: number,
    run: (client: RedisClient) => Promise<T>,
    { signal, owner }: { signal?: AbortSignal; owner?: string } = {},
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let lease;
    try {
      lease = await this.blocking.lease(owner);
    } catch (error) {
      this.metrics.recordOperation(operation, 'error', seconds());
      throw error;
    }
    const { release } = lease;
    const abandon = () => release(false);
    signal?.addEventListener('abort', abandon, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        release(false);
        reject(new OperationTimeoutError());
      }, blockMs + BLOCKING_GRACE_MS);
    });
    const command = run(lease.client);
    command.catch(() => undefined);
    try {
      const result = await Promise.race([command, deadline]);
      release(true);
      this.metrics.recordOperation(operation, 'ok', seconds());
      return result;
    } catch (error) {
      // An error reply leaves the connection usable; anything else may have left it mid-command.
      release(error instanceof Error && error.name === 'ReplyError');
      this.metrics.recordOperation(operation, 'error', seconds());
      throw translateRedisError(error, kind);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abandon);
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
   * Runs a multi-key command whose reply holds one element per key (MGET): once for all keys,
   * or in cluster mode once per hash slot (a command must not span slots there, CROSSSLOT),
   * concurrently, the replies merged back into the order of `keys`. Atomic per slot only.
   */
  async eachSlot<T>(keys: string[], run: (keys: string[]) => Promise<T[]>): Promise<T[]> {
    const groups = this.mode === 'cluster' ? slotGroups(keys) : [];
    if (groups.length <= 1) {
      return run(keys);
    }
    const replies = await Promise.all(groups.map((group) => run(group.map((i) => keys[i]))));
    const merged = new Array<T>(keys.length);
    groups.forEach((group, n) => group.forEach((index, at) => (merged[index] = replies[n][at])));
    return merged;
  }

  /**
   * The connection to the master serving `key`'s hash slot (the client itself outside cluster
   * mode, or while the slot map does not name one). For commands without a key that must still
   * go to one fixed node per key: PUBLISH, whose order the cluster bus keeps only per node.
   */
  nodeOf(client: RedisClient, key: string): RedisClient {
    if (!(client instanceof Cluster)) {
      return client;
    }
    const owner = client.slots[calculateSlot(key)]?.[0];
    const node = client
      .nodes('master')
      .find(({ options }) => `${options.host}:${options.port}` === owner);
    return node ?? client;
  }

  /** `eachSlot` for a command that answers a count of keys (DEL, UNLINK, EXISTS): summed. */
  async countEachSlot(keys: string[], run: (keys: string[]) => Promise<number>): Promise<number> {
    const groups = this.mode === 'cluster' ? slotGroups(keys) : [];
    if (groups.length <= 1) {
      return run(keys);
    }
    const counts = await Promise.all(groups.map((group) => run(group.map((i) => keys[i]))));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /**
   * A keyspace-wide SCAN resumed from a cursor a previous page handed out (every master in
   * cluster mode, one opaque cursor); a 400 when `cursor` is not one of this topology.
   */
  keyScan(cursor: string): KeyScan {
    return KeyScan.from(cursor, this.mode === 'cluster');
  }

  /**
   * The servers behind the command connections, from what the client already knows (no round
   * trip): standalone, the server (`serverRole` is its INFO role); sentinel, the primary the
   * reads connection is on and the configured Sentinels; cluster, every node of the slot map,
   * masters with the slots they serve.
   */
  topology(serverRole: string | null): RedisNode[] {
    const role = serverRole === 'slave' ? 'replica' : 'master';
    const { reads } = this;
    if (reads instanceof Cluster) {
      const served = new Map<string, { slots: number; slotRanges: number }>();
      let previous: string | undefined;
      for (const owners of reads.slots) {
        const owner = owners?.[0];
        if (owner !== undefined) {
          const entry = served.get(owner) ?? { slots: 0, slotRanges: 0 };
          entry.slots += 1;
          entry.slotRanges += owner === previous ? 0 : 1;
          served.set(owner, entry);
        }
        previous = owner;
      }
      const masters = mastersInOrder(reads).map(({ address, node }) => ({
        address,
        role: 'master' as const,
        ...(served.get(`${node.options.host}:${node.options.port}`) ?? {
          slots: 0,
          slotRanges: 0,
        }),
      }));
      const replicas = reads
        .nodes('slave')
        .map((node) => ({ address: nodeAddress(node), role: 'replica' as const }))
        .sort((a, b) => (a.address < b.address ? -1 : 1));
      return [...masters, ...replicas];
    }
    if (this.mode === 'sentinel') {
      const socket = reads.stream;
      const host = socket?.remoteAddress ?? '';
      const address = `${host.includes(':') ? `[${host}]` : host}:${socket?.remotePort ?? ''}`;
      return [
        { address, role },
        ...this.config.redis.sentinels.map((sentinel) => ({
          address: sentinel,
          role: 'sentinel' as const,
        })),
      ];
    }
    return [{ address: nodeAddress(reads), role }];
  }

  /**
   * Loads a Lua script file named `<name>-<numberOfKeys>.lua` (`<name>-n.lua`: any number of
   * keys) onto both command connections (and onto `clients`, e.g. lock nodes); with `buffers`,
   * bulk replies come back as Buffers (binary-safe values).
   */
  defineScript(
    file: string,
    { buffers = false, clients = [] as RedisClient[] } = {},
  ): ScriptRunner {
    const match = /^(.+)-(\d+|n)\.lua$/.exec(basename(file));
    if (!match) {
      throw new Error(`Lua script file name must be <name>-<numberOfKeys>.lua: ${file}`);
    }
    const name = match[1].replace(/-(\w)/g, (_, char: string) => char.toUpperCase());
    const numberOfKeys = match[2] === 'n' ? undefined : Number(match[2]);
    const lua = readFileSync(file, 'utf8');
    for (const client of [this.command, this.reads, ...clients]) {
      client.defineCommand(name, { numberOfKeys, lua });
    }
    const method = buffers ? `${name}Buffer` : name;
    return (keys, args, client) => {
      if (numberOfKeys !== undefined && keys.length !== numberOfKeys) {
        throw new Error(`${name} takes ${numberOfKeys} keys`);
      }
      const script = client as unknown as Record<
        string,
        (...args: ScriptArg[]) => Promise<unknown>
      >;
      return numberOfKeys === undefined
        ? script[method](keys.length, ...keys, ...args)
        : script[method](...keys, ...args);
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

  /**
   * INFO, by section: of the server, or in cluster mode of every master that answers (at least
   * one must; a dead master is left out, and shows in the slot map of `topology`).
   */
  async info(): Promise<Info[]> {
    const texts = await this.exec('info', 'read', async (client) => {
      if (!(client instanceof Cluster)) {
        return [await client.info()];
      }
      const answers = await Promise.allSettled(client.nodes('master').map((node) => node.info()));
      const texts = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      if (texts.length === 0) {
        const failed = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected');
        throw failed ? failed.reason : notReady();
      }
      return texts;
    });
    return texts.map(parseInfo);
  }

  /**
   * A command connection to another, independent Redis server (a `locks.nodes` URL, with its
   * credentials and db inside): the same fail-fast settings as the command connection, not
   * counted in the connection gauges. Connected lazily; the caller connects and closes it.
   */
  createNodeClient(url: string, name: string): Redis {
    const node: RedisConfig = {
      ...this.config.redis,
      mode: 'standalone',
      url,
      db: 0,
      tls: { ...this.config.redis.tls, enabled: false },
    };
    const endpoint = this.endpoint(node);
    const client = new Redis({
      ...this.clientOptions('command', name),
      ...endpoint,
      tls: endpoint.tls,
      username: urlCredential(url, 'username') || undefined,
      password: urlCredential(url, 'password') || undefined,
      sentinels: undefined,
      name: undefined,
      reconnectOnError: readOnlyReconnect(node, endpoint.host),
    });
    client.on('error', (error: Error) => {
      this.warning.warn('Redis connection error', { connection: name, reason: error.message });
    });
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    if (this.config.redis.passwordFile) {
      unwatchFile(this.config.redis.passwordFile);
    }
    this.blocking.close();
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
    const client = this.buildClient(role, name);
    this.clients.push({ role, client });
    this.watch(role, name, client);
    return client;
  }

  /** A connection of this role; blocking ones are owned by the pool and never reconnect. */
  private buildClient(role: ConnectionRole, name: string): RedisClient {
    const redis = this.config.redis;
    const options = this.clientOptions(role, name);
    const reconnects = role !== 'blocking';
    const client =
      redis.mode === 'cluster'
        ? new Cluster(this.clusterNodes(), {
            // No auto-pipelining in cluster mode, or a slot migration fails requests (R-16):
            // ioredis re-sends an auto-pipelined batch on MOVED/ASK only when every command in
            // it got the same redirection and none that succeeded was a write, and a batch
            // mixes slots; on the node connections it would defer the ASKING that must precede
            // a redirected command, so the command bounces (MOVED, ASK, ...) until "Too many
            // Cluster redirections". Without it each command follows its own redirection.
            redisOptions: { ...options, enableAutoPipelining: false },
            enableOfflineQueue: false,
            enableAutoPipelining: false,
            // A slot whose master is down bounces between "Connection is closed" (retried after
            // retryDelayOnFailover, 100 ms) and MOVED back to it from any other node, until the
            // redirections run out: 16 by default, about 800 ms, most of a request's budget, and
            // then past it. A migration needs one or two (MOVED, ASK): 4 fail such a slot in
            // about 300 ms with 503 (R-16) and still ride out a resharding.
            maxRedirections: 4,
            clusterRetryStrategy: (attempt) =>
              reconnects ? reconnectDelay(attempt, redis.retryMaxDelayMs) : null,
            scaleReads: 'master',
            lazyConnect: true,
          } satisfies ClusterOptions)
        : new Redis(options);
    if (!reconnects) {
      client.on('error', (error: Error) => {
        this.warning.warn('Redis connection error', {
          role,
          connection: name,
          reason: error.message,
        });
      });
    }
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
      // Subscriptions are restored by their owner, which also tells its clients (Subscriptions).
      autoResubscribe: false,
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
      retryStrategy: (attempt) =>
        role === 'blocking' ? null : reconnectDelay(attempt, redis.retryMaxDelayMs),
      reconnectOnError: readOnlyReconnect(redis, endpoint.host),
    };
    if (redis.mode === 'sentinel') {
      options.sentinels = redis.sentinels.map(hostPort);
      options.name = redis.sentinelName;
      options.sentinelRetryStrategy = (attempt) => reconnectDelay(attempt, redis.retryMaxDelayMs);
      // Sentinel demotes a primary that is still up (SENTINEL FAILOVER, a healed partition) only
      // seconds after naming the new one; meanwhile a connection would go on writing to the old
      // one, which drops those acknowledged writes when it resyncs (R-15, measured). Sentinel's
      // +switch-master closes the connection at once, and it reconnects to the new primary.
      options.failoverDetector = true;
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
    if (this.mode === 'sentinel') {
      // ioredis 6.0.0 ends a Sentinel connection for good when a connect attempt is cut short:
      // the failover detector of its previous connection, not cleaned up when that one was
      // lost, fires on +switch-master while it resolves the new primary (measured, R-15).
      client.on('end', () => {
        const restart = () => {
          if (!this.closing && client.status === 'end') {
            client.connect().catch(() => undefined);
          }
        };
        setTimeout(restart, reconnectDelay(1, this.config.redis.retryMaxDelayMs)).unref();
      });
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

/**
 * A command by name with binary-safe (Buffer) replies. ioredis 6.0.0's own `callBuffer` sends
 * its second argument as the command name under auto-pipelining, so this calls the command's
 * `<name>Buffer` method instead.
 */
export function callBuffer(
  client: RedisClient,
  command: string,
  ...args: ScriptArg[]
): Promise<unknown> {
  const methods = client as unknown as Record<string, (...args: ScriptArg[]) => Promise<unknown>>;
  return methods[`${command.toLowerCase()}Buffer`].apply(client, args);
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

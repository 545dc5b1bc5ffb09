import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import { AppConfig, type RedisConfig, type RedisMode } from '../config/app-config';
import { GatewayMetrics, type ConnectionRole } from '../observability/gateway-metrics';
import { BlockingPool } from './blocking-pool';
import {
  clientOptions,
  clusterNodes,
  clusterOptions,
  endpoint,
  readOnlyReconnect,
  reconnectDelay,
  urlCredential,
} from './client-options';
import { withDeadline } from './deadline';
import type { RedisClient } from './types';

/** How often the idle subscriber connection is checked, and how long its PING may take. */
const SUBSCRIBER_CHECK_MS = 5000;
const SUBSCRIBER_PING_DEADLINE_MS = 2000;

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
 * Every connection the gateway makes to Redis, and the only place that makes them: the two
 * command connections (writes; reads), the one subscriber, the pool of blocking connections,
 * the connections to `locks.nodes`, and those the near-cache receives invalidations on. It
 * knows the topology, the credentials (a password file is re-read when it changes), TLS and the
 * fail-fast client settings; it keeps the connection gauges, checks the idle subscribers, and
 * closes everything on shutdown.
 */
@Injectable()
export class RedisConnections implements OnModuleInit, OnApplicationShutdown {
  readonly mode: RedisMode;
  /** The shared, auto-pipelined command connection for writes. */
  readonly command: RedisClient;
  /**
   * A second command connection, for reads. Redis runs one connection's commands strictly in
   * order, so a write it holds back (CLIENT PAUSE WRITE during a failover, a write stalled on a
   * reconnecting replica) would stall every read queued behind it on a shared connection
   * (R-5, R-14).
   */
  readonly reads: RedisClient;
  /** Dedicated connections for blocking reads and stream tails (redis.blockingPoolSize). */
  readonly blocking: BlockingPool;
  /**
   * The one subscriber connection of this instance, shared by every pub/sub SSE client. Its
   * user resubscribes after a reconnect (autoResubscribe is off).
   */
  readonly subscriber: RedisClient;
  /**
   * With the near-cache on (standalone and Sentinel): the connection Redis sends client-tracking
   * invalidations to, subscribed by the near-cache to `__redis__:invalidate`. RESP2, as every
   * connection here: ioredis 6 would speak RESP3 by default, which delivers invalidations as
   * pushes it drops. In cluster mode there is one per master instead (`nodeSubscriber`).
   */
  readonly invalidations?: Redis;

  private readonly logger = new Logger('Redis');
  private readonly warning = new ThrottledWarning(this.logger);
  private readonly watched: { role: ConnectionRole; client: RedisClient }[] = [];
  /** Connections to `locks.nodes`: not in the gauges, closed with the rest. */
  private readonly nodes: Redis[] = [];
  private password: string;
  private started = false;
  private closing = false;
  private subscriberCheck?: NodeJS.Timeout;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: GatewayMetrics,
  ) {
    const redis = config.redis;
    this.mode = redis.mode;
    this.password = redis.passwordFile
      ? this.readPasswordFile()
      : redis.password || urlCredential(redis.url, 'password');
    this.command = this.watchedClient('command', 'command');
    this.reads = this.watchedClient('command', 'reads');
    this.subscriber = this.watchedClient('subscriber', 'subscriber');
    if (config.nearCache.enabled && redis.mode !== 'cluster') {
      this.invalidations = this.watchedClient('subscriber', 'invalidations') as Redis;
    }
    this.blocking = new BlockingPool({
      size: redis.blockingPoolSize,
      perOwner: config.quotas.blockingPerSubject,
      connectTimeoutMs: redis.connectTimeoutMs,
      create: () => this.client('blocking', 'blocking'),
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
   * down, and becomes ready by itself when Redis answers.
   */
  onModuleInit(): void {
    this.started = true;
    for (const client of [...this.watched.map((entry) => entry.client), ...this.nodes]) {
      client.connect().catch(() => undefined);
    }
    this.subscriberCheck = setInterval(() => {
      for (const { role, client } of this.watched) {
        if (role === 'subscriber') {
          void this.checkSubscriber(client);
        }
      }
    }, SUBSCRIBER_CHECK_MS);
    this.subscriberCheck.unref();
  }

  /** Whether both command connections (reads and writes) can take a command now. */
  isReady(): boolean {
    return this.command.status === 'ready' && this.reads.status === 'ready';
  }

  /**
   * A subscriber connection to one node of the cluster (its `host:port` as the cluster client
   * knows it), with the cluster's credentials and TLS: what receives a master's client-tracking
   * invalidations, one per master. Reconnects, is counted and PINGed with the subscribers, and
   * is closed by `release` or on shutdown.
   */
  nodeSubscriber(host: string, port: number, name: string): Redis {
    const options = clientOptions(this.config.redis, 'subscriber', name, this.password);
    const client = new Redis({ ...options, host, port, db: 0 });
    this.watched.push({ role: 'subscriber', client });
    this.watch('subscriber', name, client);
    if (this.started && !this.closing) {
      client.connect().catch(() => undefined);
    }
    return client;
  }

  /** Closes a connection `nodeSubscriber` made, whose node left the cluster. */
  release(client: Redis): void {
    const index = this.watched.findIndex((entry) => entry.client === client);
    if (index >= 0) {
      const [{ role }] = this.watched.splice(index, 1);
      client.disconnect();
      this.count(role);
    }
  }

  /**
   * A command connection to another, independent Redis server (a `locks.nodes` URL, with its
   * credentials inside): the fail-fast settings of the command connection, db 0, not counted
   * in the connection gauges. Connected with the others, and closed on shutdown.
   */
  lockNode(url: string, name: string): Redis {
    const node: RedisConfig = {
      ...this.config.redis,
      mode: 'standalone',
      url,
      db: 0,
      tls: { ...this.config.redis.tls, enabled: false },
    };
    const target = endpoint(node);
    const client = new Redis({
      ...clientOptions(this.config.redis, 'command', name, ''),
      ...target,
      tls: target.tls,
      username: urlCredential(url, 'username') || undefined,
      password: urlCredential(url, 'password') || undefined,
      sentinels: undefined,
      name: undefined,
      reconnectOnError: readOnlyReconnect(node, target.host),
    });
    client.on('error', (error: Error) => {
      this.warning.warn('Redis connection error', { connection: name, reason: error.message });
    });
    this.nodes.push(client);
    if (this.started) {
      client.connect().catch(() => undefined);
    }
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    clearInterval(this.subscriberCheck);
    if (this.config.redis.passwordFile) {
      unwatchFile(this.config.redis.passwordFile);
    }
    this.blocking.close();
    const all = [...this.watched.map((entry) => entry.client), ...this.nodes];
    await Promise.all(
      all.map(async (client) => {
        if (client.status === 'wait' || client.status === 'end') {
          client.disconnect();
          return;
        }
        // A connection that is already down has nothing left to close gracefully.
        await withDeadline(client.quit(), 1000).catch(() => undefined);
        client.disconnect();
      }),
    );
  }

  private watchedClient(role: ConnectionRole, name: string): RedisClient {
    const client = this.client(role, name);
    this.watched.push({ role, client });
    this.watch(role, name, client);
    return client;
  }

  /** A connection of this role; blocking ones are owned by the pool and never reconnect. */
  private client(role: ConnectionRole, name: string): RedisClient {
    const redis = this.config.redis;
    const options = clientOptions(redis, role, name, this.password);
    const client =
      redis.mode === 'cluster'
        ? new Cluster(clusterNodes(redis), clusterOptions(redis, options, role !== 'blocking'))
        : new Redis(options);
    if (role === 'blocking') {
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

  /** The connection gauge of a role (and redis_up for the command connections). */
  private count(role: ConnectionRole): void {
    const ready = this.watched.filter((c) => c.role === role && c.client.status === 'ready');
    this.metrics.connections.set({ role }, ready.length);
    if (role === 'command') {
      this.metrics.redisUp.set(this.isReady() ? 1 : 0);
    }
  }

  private watch(role: ConnectionRole, name: string, client: RedisClient): void {
    const count = () => this.count(role);
    client.on('ready', () => {
      this.logger.log({ role, connection: name }, 'Redis connection ready');
      count();
    });
    client.on('close', count);
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

  /**
   * PINGs an idle subscriber, which no command timeout watches; one that does not answer in
   * time is dropped at once and reconnects.
   */
  private async checkSubscriber(client: RedisClient): Promise<void> {
    if (client.status !== 'ready') {
      return;
    }
    try {
      await withDeadline(client.ping(), SUBSCRIBER_PING_DEADLINE_MS);
    } catch (error) {
      if (client.status !== 'ready') {
        return; // It closed meanwhile and reconnects by itself.
      }
      this.logger.warn({ reason: (error as Error).message }, 'Subscriber unhealthy; reconnecting');
      // disconnect() closes gracefully and waits up to 2 s (ioredis disconnectTimeout) for the
      // FIN of a peer that a half-open path never delivers: the socket is destroyed instead.
      if (client instanceof Redis) {
        client.stream.destroy();
      } else {
        client.disconnect(true);
      }
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
    for (const { client } of this.watched) {
      if (client instanceof Cluster) {
        client.options.redisOptions = { ...client.options.redisOptions, password: this.password };
      } else {
        client.options.password = this.password;
      }
    }
    this.logger.log('Redis password reloaded from its file');
  }
}

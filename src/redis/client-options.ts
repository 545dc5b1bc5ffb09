import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/app-config';
import type { ConnectionRole } from '../observability/gateway-metrics';

/** At most one READONLY-driven reconnect per connection in this interval. */
const READONLY_RECONNECT_INTERVAL_MS = 2000;

export interface HostPort {
  host: string;
  port: number;
}

export function hostPort(entry: string): HostPort {
  const index = entry.lastIndexOf(':');
  return {
    host: entry.slice(0, index).replace(/^\[|\]$/g, ''),
    port: Number(entry.slice(index + 1)),
  };
}

export function urlCredential(url: string, part: 'username' | 'password'): string {
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
export function readOnlyReconnect(
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

/** Host, port, db and TLS from `redis.url` when given, else from host and port. */
export function endpoint(redis: RedisConfig): RedisOptions {
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

/** The nodes a cluster client starts from: `redis.clusterNodes`, else the host of `redis.url`. */
export function clusterNodes({ clusterNodes: nodes, url }: RedisConfig): HostPort[] {
  if (nodes.length > 0) {
    return nodes.map(hostPort);
  }
  const parsed = new URL(url);
  return [{ host: parsed.hostname, port: Number(parsed.port || 6379) }];
}

/**
 * The settings of one connection of a role: fail fast, never hang, never write twice. Every
 * command connection has a deadline (commandTimeout) and a socket timeout above it, so a
 * half-open connection is noticed; no offline queue, and nothing re-sent after a reconnect.
 */
export function clientOptions(
  redis: RedisConfig,
  role: ConnectionRole,
  name: string,
  password: string,
): RedisOptions {
  const target = endpoint(redis);
  const options: RedisOptions = {
    ...target,
    username: redis.username || urlCredential(redis.url, 'username') || undefined,
    password: password || undefined,
    connectionName: `redis-gateway:${name}`,
    lazyConnect: true,
    protocol: 2,
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
    reconnectOnError: readOnlyReconnect(redis, target.host),
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

/** The settings of a cluster client whose node connections use `nodeOptions`. */
export function clusterOptions(
  redis: RedisConfig,
  nodeOptions: RedisOptions,
  reconnects: boolean,
): ClusterOptions {
  return {
    // No auto-pipelining in cluster mode, or a slot migration fails requests: ioredis
    // re-sends an auto-pipelined batch on MOVED/ASK only when every command in it got the same
    // redirection and none that succeeded was a write, and a batch mixes slots; on the node
    // connections it would defer the ASKING that must precede a redirected command, so the
    // command bounces (MOVED, ASK, ...) until "Too many Cluster redirections". Without it each
    // command follows its own redirection.
    redisOptions: { ...nodeOptions, enableAutoPipelining: false },
    enableOfflineQueue: false,
    enableAutoPipelining: false,
    // A slot whose master is down bounces between "Connection is closed" (retried after
    // retryDelayOnFailover, 100 ms) and MOVED back to it from any other node, until the
    // redirections run out: 16 by default, about 800 ms, most of a request's budget, and then
    // past it. A migration needs one or two (MOVED, ASK): 4 fail such a slot in about 300 ms
    // with 503 and still ride out a resharding.
    maxRedirections: 4,
    clusterRetryStrategy: (attempt) =>
      reconnects ? reconnectDelay(attempt, redis.retryMaxDelayMs) : null,
    scaleReads: 'master',
    lazyConnect: true,
  };
}

import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import { globMatch } from '../common/glob';
import { AppConfig } from '../config/app-config';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { RedisConnections } from '../redis/connections';
import {
  NearCacheStore,
  type CachedValue,
  type ReadTicket,
  type ReadValue,
} from './near-cache-store';
import { ClusterTracking } from './cluster-tracking';
import { TrackingLink, type Tracking, type TrackingListener } from './tracking';

/** What the `X-Cache` header says of a read: answered from memory, or from Redis. */
export type CacheOutcome = 'HIT' | 'MISS';

/** A lookup: the cached value, or (when the read may be cached) the ticket of the read. */
export type Lookup =
  { hit: CachedValue; ticket?: undefined } | { hit?: undefined; ticket?: ReadTicket };

export interface NearCacheState {
  enabled: boolean;
  trackingArmed: boolean;
  entries: number;
  bytes: number;
}

/**
 * The near-cache (README, "Near-cache"): hot string values of this instance in memory, kept
 * exact by Redis client tracking (TrackingLink; in cluster mode ClusterTracking, one link per
 * master). Consulted only by services, after a name has been authorised and turned into its
 * Redis key, so authorisation never depends on it; keyed by the Redis key. While tracking is
 * not armed it is bypassed: every read goes to Redis.
 */
@Injectable()
export class NearCache implements OnModuleInit, OnApplicationShutdown {
  readonly enabled: boolean;
  private readonly store: NearCacheStore;
  private readonly patterns: string[];
  private readonly tracking?: Tracking;
  private readonly logger = new Logger('NearCache');

  constructor(
    config: AppConfig,
    connections: RedisConnections,
    private readonly metrics: GatewayMetrics,
  ) {
    const { nearCache, redis } = config;
    this.enabled = nearCache.enabled;
    this.patterns = nearCache.keyPatterns;
    this.store = new NearCacheStore(nearCache.maxBytes, nearCache.maxEntryBytes, {
      evicted: (count) => metrics.nearCacheEvictions.inc(count),
      invalidated: (count) => metrics.nearCacheInvalidations.inc(count),
      bytes: (total) => metrics.nearCacheBytes.set(total),
    });
    metrics.nearCacheBytes.set(0);
    if (this.enabled) {
      this.tracking = this.trackingFor(connections, redis.keyPrefix, redis.commandTimeoutMs);
    }
  }

  /**
   * The tracking of the topology: one link on the one server (standalone, the Sentinels'
   * primary), or one per master of a cluster; none when reads may go to cluster replicas,
   * which would need tracking of their own.
   */
  private trackingFor(
    connections: RedisConnections,
    prefix: string,
    timeoutMs: number,
  ): Tracking | undefined {
    const listener: TrackingListener = {
      invalidate: (keys) => keys.forEach((key) => this.store.invalidate(key)),
      flush: (reason, counted) => this.flush(reason, counted),
    };
    const { reads, invalidations } = connections;
    if (reads instanceof Cluster && reads.options.scaleReads === 'master') {
      return new ClusterTracking(reads, connections, prefix, timeoutMs, listener, this.logger);
    }
    if (reads instanceof Redis && invalidations) {
      return new TrackingLink(reads, invalidations, prefix, timeoutMs, listener, this.logger);
    }
    this.logger.warn('The near-cache cannot track this topology; every read goes to Redis');
    return undefined;
  }

  onModuleInit(): void {
    this.tracking?.start();
  }

  onApplicationShutdown(): void {
    this.tracking?.stop();
  }

  /** Whether reads are answered from memory now (on, and tracking armed). */
  get active(): boolean {
    return this.tracking?.armed ?? false;
  }

  /**
   * Looks a key up: its cached value (a hit), or a miss, with a ticket when the value Redis
   * answers may be kept (the name matches nearCache.keyPatterns and tracking is armed). Counts
   * the hit or miss; call only when `enabled`.
   */
  lookup(name: string, key: string): Lookup {
    if (!this.active || !this.covers(name)) {
      this.metrics.nearCacheMisses.inc();
      return {};
    }
    const hit = this.store.get(key);
    if (hit) {
      this.metrics.nearCacheHits.inc();
      return { hit };
    }
    this.metrics.nearCacheMisses.inc();
    return { ticket: this.store.begin(key) };
  }

  /**
   * The read of a lookup's ticket ended: with Redis's answer, or without (it failed). Kept only
   * if tracking is still armed: a cluster can learn of a new master while a read is in flight
   * (a MOVED to a promoted replica) without any event that flushes.
   */
  settle(ticket: ReadTicket | undefined, value?: ReadValue): void {
    if (ticket) {
      this.store.end(ticket, this.active ? value : undefined);
    }
  }

  /**
   * A write to these keys through this instance: their entries go before it is sent and again
   * when it has settled, before its answer, so a read of this instance that follows sees it
   * (read-your-writes), and a read in flight meanwhile is not cached. Redis's invalidation,
   * which comes a little later on another connection, removes it for the other instances.
   */
  async writing<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    if (!this.enabled) {
      return work();
    }
    keys.forEach((key) => this.store.invalidate(key));
    try {
      return await work();
    } finally {
      keys.forEach((key) => this.store.invalidate(key));
    }
  }

  state(): NearCacheState {
    return {
      enabled: this.enabled,
      trackingArmed: this.active,
      entries: this.store.entryCount,
      bytes: this.store.bytes,
    };
  }

  private covers(name: string): boolean {
    return this.patterns.some((pattern) => globMatch(pattern, name));
  }

  private flush(reason: string, counted: boolean): void {
    const had = this.store.entryCount;
    this.store.flush();
    if (counted || had > 0) {
      this.metrics.nearCacheFlushes.inc();
    }
    if (had > 0) {
      this.logger.log({ reason, entries: had }, 'Near-cache flushed');
    }
  }
}

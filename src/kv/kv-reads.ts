import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { NearCache, type CacheOutcome, type Lookup } from '../near-cache/near-cache';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { SlotRouter } from '../redis/cluster';
import { RedisExecutor } from '../redis/executor';
import { RedisScripts, type ScriptRunner } from '../redis/scripts';
import type { RedisClient } from '../redis/types';

/** TTL's seconds from PTTL's milliseconds, rounded as Redis's TTL rounds them. */
export function ttlOf(pttl: number): number {
  return pttl < 0 ? pttl : Math.floor((pttl + 500) / 1000);
}

/** What one read answers: the value and TTL, and, with the near-cache on, where it came from. */
export interface ReadBytes {
  bytes: Buffer;
  ttl: number;
  cache?: CacheOutcome;
}

export interface ReadMany {
  /** By position of the keys asked for; null where a key does not exist (or is no string). */
  values: (Buffer | null)[];
  /** HIT when every key was answered from memory. */
  cache?: CacheOutcome;
}

interface Bounded {
  values: (Buffer | null)[];
  pttls: number[];
}

/**
 * The key-value reads of strings (one key; many), through the near-cache when it is on. The
 * keys here are authorised Redis keys; the names are the caller's, for nearCache.keyPatterns.
 */
@Injectable()
export class KvReads {
  private readonly getWithPttl: ScriptRunner;
  private readonly mgetBounded: ScriptRunner;
  private readonly prefixBytes: number;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly router: SlotRouter,
    private readonly near: NearCache,
    private readonly metrics: GatewayMetrics,
    private readonly config: AppConfig,
    scripts: RedisScripts,
  ) {
    this.prefixBytes = Buffer.byteLength(config.redis.keyPrefix);
    this.getWithPttl = scripts.load(join(__dirname, 'scripts', 'get-with-pttl-1.lua'), {
      buffers: true,
    });
    this.mgetBounded = scripts.load(join(__dirname, 'scripts', 'mget-bounded-n.lua'), {
      buffers: true,
    });
  }

  /** The stored bytes and TTL, read together atomically (a read-only script, see its header). */
  async one(name: string, key: string): Promise<ReadBytes> {
    const lookup: Lookup | undefined = this.near.enabled ? this.near.lookup(name, key) : undefined;
    if (lookup?.hit) {
      this.countLookup(1, 0);
      const remaining = lookup.hit.expiresAt - performance.now();
      return {
        bytes: lookup.hit.bytes,
        ttl: ttlOf(remaining === Infinity ? -1 : remaining),
        cache: 'HIT',
      };
    }
    const { maxResponseBytes } = this.config.limits;
    let reply: [Buffer | null, number, number?];
    try {
      reply = await this.redis.run(
        'kv.get',
        'read',
        (client) =>
          this.getWithPttl([key], [maxResponseBytes], client) as Promise<
            [Buffer | null, number, number?]
          >,
        ([value, , size]) => value === null && size === undefined,
      );
    } catch (error) {
      this.near.settle(lookup?.ticket);
      throw error;
    }
    const [bytes, pttl, oversize] = reply;
    this.near.settle(lookup?.ticket, oversize === undefined ? { bytes, pttl } : undefined);
    if (oversize !== undefined) {
      throw AppError.responseTooLarge(maxResponseBytes);
    }
    this.countLookup(bytes !== null ? 1 : 0, bytes === null ? 1 : 0);
    if (bytes === null) {
      throw AppError.notFound('The key');
    }
    return { bytes, ttl: ttlOf(pttl), cache: lookup && 'MISS' };
  }

  /**
   * The values of many distinct keys. Nothing is read when the values together are larger than
   * limits.maxResponseBytes (413); those answered from memory count towards it too.
   */
  async many(names: readonly string[], keys: readonly string[]): Promise<ReadMany> {
    const read = await this.readMany(names, keys);
    const found = read.values.filter((value) => value !== null).length;
    this.countLookup(found, keys.length - found);
    return read;
  }

  private async readMany(names: readonly string[], keys: readonly string[]): Promise<ReadMany> {
    if (!this.near.enabled) {
      const { values } = await this.redis.run('kv.mget', 'read', (client) =>
        this.readBounded(client, keys, 0, false),
      );
      return { values };
    }
    const lookups = names.map((name, index) => this.near.lookup(name, keys[index]));
    const values = lookups.map((lookup) => lookup.hit?.bytes ?? null);
    const missing = lookups.flatMap((lookup, index) => (lookup.hit ? [] : [index]));
    if (missing.length === 0) {
      return { values, cache: 'HIT' };
    }
    const reserved = lookups.reduce(
      (sum, lookup, index) =>
        lookup.hit ? sum + lookup.hit.bytes.length + Buffer.byteLength(names[index]) : sum,
      0,
    );
    let read: Bounded;
    try {
      read = await this.redis.run('kv.mget', 'read', (client) =>
        this.readBounded(
          client,
          missing.map((index) => keys[index]),
          reserved,
          true,
        ),
      );
    } catch (error) {
      missing.forEach((index) => this.near.settle(lookups[index].ticket));
      throw error;
    }
    missing.forEach((index, at) => {
      values[index] = read.values[at];
      this.near.settle(lookups[index].ticket, { bytes: read.values[at], pttl: read.pttls[at] });
    });
    return { values, cache: 'MISS' };
  }

  /**
   * MGET within limits.maxResponseBytes less `reserved` (the names count too). Across hash slots
   * the values are measured first, and each slot's read gets its own measured share plus an
   * even part of what is left, so the shares never add up to more than the bound even if values
   * grow meanwhile. With `withPttl` each key's PTTL is read with its value.
   */
  private async readBounded(
    client: RedisClient,
    keys: readonly string[],
    reserved: number,
    withPttl: boolean,
  ): Promise<Bounded> {
    const { maxResponseBytes } = this.config.limits;
    const names = keys.reduce((sum, key) => sum + Buffer.byteLength(key) - this.prefixBytes, 0);
    const budget = maxResponseBytes - names - reserved;
    const args = withPttl ? ['pttl'] : [];
    const read = async (group: string[], share: number): Promise<Bounded> => {
      if (share < 0) {
        throw AppError.responseTooLarge(maxResponseBytes);
      }
      const reply = (await this.mgetBounded(group, [share, ...args], client)) as
        (Buffer | null | number)[] | number;
      if (typeof reply === 'number') {
        throw AppError.responseTooLarge(maxResponseBytes);
      }
      return {
        values: reply.slice(0, group.length) as (Buffer | null)[],
        pttls: withPttl ? (reply.slice(group.length) as number[]) : [],
      };
    };
    const groups = this.router.groups([...keys]);
    if (groups.length <= 1) {
      return read([...keys], budget);
    }
    const slotKeys = groups.map((group) => group.map((index) => keys[index]));
    const sizes = (await Promise.all(
      slotKeys.map((group) => this.mgetBounded(group, [-1], client)),
    )) as number[];
    const total = sizes.reduce((sum, size) => sum + size, 0);
    if (total > budget) {
      throw AppError.responseTooLarge(maxResponseBytes);
    }
    const spare = Math.floor((budget - total) / groups.length);
    const replies = await Promise.all(slotKeys.map((group, n) => read(group, sizes[n] + spare)));
    const merged: Bounded = {
      values: new Array<Buffer | null>(keys.length),
      pttls: new Array<number>(keys.length),
    };
    groups.forEach((group, n) =>
      group.forEach((index, at) => {
        merged.values[index] = replies[n].values[at];
        merged.pttls[index] = replies[n].pttls[at];
      }),
    );
    return merged;
  }

  private countLookup(hits: number, misses: number): void {
    this.metrics.cacheHits.inc(hits);
    this.metrics.cacheMisses.inc(misses);
  }
}

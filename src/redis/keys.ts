import { Injectable } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { escapeGlob } from '../common/glob';
import { prefixTag } from '../common/hash-tags';
import { AppConfig } from '../config/app-config';
import { slotTable } from './cluster';

/** Names starting with this belong to the gateway itself (locks, counters, tickets, limits). */
export const RESERVED_NAMESPACE = '__gw:';

/**
 * The translation between the names callers use and the keys Redis stores: the configured
 * key prefix, and the gateway's own namespace under it. It knows names and prefixes only;
 * whether a caller may use a name is auth's KeyAccess.
 */
@Injectable()
export class Keyspace {
  readonly prefix: string;

  constructor(config: AppConfig) {
    this.prefix = config.redis.keyPrefix;
  }

  /** The Redis key of a name (the name must have been checked and authorised). */
  toRedis(name: string): string {
    return this.prefix + name;
  }

  /** The name of a Redis key, or null when the key is outside the prefix. */
  fromRedis(redisKey: string): string | null {
    return redisKey.startsWith(this.prefix) ? redisKey.slice(this.prefix.length) : null;
  }

  /** Whether a name is in the gateway's own namespace, which no caller may use. */
  isReserved(name: string): boolean {
    return name.startsWith(RESERVED_NAMESPACE);
  }

  /** A key of the gateway's own namespace: `<prefix>__gw:<suffix>`. */
  reservedKey(suffix: string): string {
    return `${this.prefix}${RESERVED_NAMESPACE}${suffix}`;
  }

  /**
   * A lock and its fencing counter: both under the hash tag `{lock:<name>}`, so in cluster mode
   * they live in one slot whatever braces the name holds (the tag is never empty).
   */
  lockKeys(name: string): { lock: string; fence: string } {
    const lock = this.reservedKey(`{lock:${name}}`);
    return { lock, fence: `${lock}:fence` };
  }

  /**
   * A key of the gateway's own namespace, `<prefix>__gw:<kind>:{<tag>}:<id>`, in the hash slot
   * of `key`, so one script can write both in cluster mode (CROSSSLOT otherwise). After a prefix
   * that leaves a `{` open it is `<prefix>__gw:<kind>:<tag>}:<id>`, the tag chosen with the
   * prefix's text in front; a prefix of kind `empty` pairs no keys (refused in cluster mode).
   */
  reservedKeyInSlotOf(key: string, kind: string, id: string): string {
    const base = this.reservedKey(`${kind}:`);
    const slot = calculateSlot(key);
    if (prefixTag(this.prefix) === 'open') {
      const preamble =
        this.prefix.slice(this.prefix.indexOf('{') + 1) + base.slice(this.prefix.length);
      return `${base}${slotTable(preamble)[slot]}}:${id}`;
    }
    return `${base}{${slotTable('')[slot]}}:${id}`;
  }

  /** A SCAN MATCH pattern for every key whose name starts with `namePrefix`, literally. */
  matchPattern(namePrefix: string): string {
    return `${escapeGlob(this.prefix + namePrefix)}*`;
  }

  /** The Redis pattern of a caller's pattern subscription: the same pattern inside the prefix. */
  toRedisPattern(pattern: string): string {
    return escapeGlob(this.prefix) + pattern;
  }
}

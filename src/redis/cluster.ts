import { Injectable } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { AppConfig } from '../config/app-config';
import { KeyScan } from './key-scan';
import type { RedisClient } from './types';

const SLOTS = 16384;
const slotTables = new Map<string, string[]>();

/**
 * For each hash slot, a short base-36 text T with `calculateSlot(preamble + T)` in that slot
 * (a preamble holds no `}`). Built once per preamble, on first use (a few milliseconds).
 */
export function slotTable(preamble: string): string[] {
  let table = slotTables.get(preamble);
  if (!table) {
    table = new Array<string>(SLOTS);
    let found = 0;
    for (let index = 0; found < SLOTS; index += 1) {
      const text = index.toString(36);
      const slot = calculateSlot(preamble + text);
      if (table[slot] === undefined) {
        table[slot] = text;
        found += 1;
      }
    }
    slotTables.set(preamble, table);
  }
  return table;
}

/**
 * The positions of `keys` grouped by Redis Cluster hash slot, groups in the order of their first
 * key: a multi-key command may only span one slot there (CROSSSLOT otherwise).
 */
export function slotGroups(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, index) => {
    const slot = calculateSlot(key);
    const group = groups.get(slot);
    if (group) {
      group.push(index);
    } else {
      groups.set(slot, [index]);
    }
  });
  return [...groups.values()];
}

/**
 * Where multi-key work goes in the topology: in cluster mode split by hash slot and merged back,
 * a keyless command of one key's node, and keyspace listings over every master; elsewhere the
 * one server.
 */
@Injectable()
export class SlotRouter {
  private readonly cluster: boolean;

  constructor(config: AppConfig) {
    this.cluster = config.redis.mode === 'cluster';
  }

  /** The positions of `keys` by hash slot in cluster mode; one group of all of them elsewhere. */
  groups(keys: readonly string[]): number[][] {
    return this.cluster ? slotGroups(keys) : [keys.map((_, index) => index)];
  }

  /**
   * A multi-key command whose reply holds one element per key (MGET): once for all keys, or in
   * cluster mode once per hash slot, concurrently, the replies merged back into the order of
   * `keys`. Atomic per slot only.
   */
  async eachSlot<T>(keys: string[], run: (keys: string[]) => Promise<T[]>): Promise<T[]> {
    const groups = this.groups(keys);
    if (groups.length <= 1) {
      return run(keys);
    }
    const replies = await Promise.all(groups.map((group) => run(group.map((i) => keys[i]))));
    const merged = new Array<T>(keys.length);
    groups.forEach((group, n) => group.forEach((index, at) => (merged[index] = replies[n][at])));
    return merged;
  }

  /** `eachSlot` for a command that answers a count of keys (DEL, UNLINK, EXISTS): summed. */
  async countEachSlot(keys: string[], run: (keys: string[]) => Promise<number>): Promise<number> {
    const groups = this.groups(keys);
    if (groups.length <= 1) {
      return run(keys);
    }
    const counts = await Promise.all(groups.map((group) => run(group.map((i) => keys[i]))));
    return counts.reduce((sum, count) => sum + count, 0);
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

  /**
   * A keyspace-wide SCAN resumed from a cursor a previous page handed out (every master in
   * cluster mode, one opaque cursor); a 400 when `cursor` is not one of this topology.
   */
  scan(cursor: string): KeyScan {
    return KeyScan.from(cursor, this.cluster);
  }
}

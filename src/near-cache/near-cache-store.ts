import { performance } from 'node:perf_hooks';

/** What an entry costs besides its value and key: the Map slot, the object, the Buffer header. */
export const ENTRY_OVERHEAD_BYTES = 96;

/** A cached value and when it ends (its key's own expiry, on the performance.now() clock). */
export interface CachedValue {
  readonly bytes: Buffer;
  /** Infinity for a key without an expiry. */
  readonly expiresAt: number;
}

interface Entry extends CachedValue {
  readonly size: number;
}

/**
 * A read of one key from Redis that may end in the cache: where the invalidation sequence stood
 * when it was sent, and when it was sent (its value's expiry counts from then, never later).
 */
export interface ReadTicket {
  readonly key: string;
  readonly seq: number;
  readonly sentAt: number;
}

/** A read's outcome as Redis answered it: the value and its PTTL (-1: no expiry, -2: none). */
export interface ReadValue {
  bytes: Buffer | null;
  pttl: number;
}

export interface StoreEvents {
  evicted(count: number): void;
  invalidated(count: number): void;
  bytes(total: number): void;
}

/**
 * The near-cache's memory: an LRU of values within a byte bound, and the bookkeeping that keeps
 * a read from caching what an invalidation already replaced. Every invalidation (one key, or a
 * flush of all) advances a sequence number; a read remembers the number when it is sent, and
 * its value is kept only if neither its key nor the whole cache was invalidated since. Keys
 * being read have a slot that records their last invalidation; no record is kept of other keys.
 */
export class NearCacheStore {
  /** In least-recently-used order (a Map iterates in insertion order; a hit re-inserts). */
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, { readers: number; invalidatedAt: number }>();
  private total = 0;
  private seq = 0;
  private flushedAt = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxEntryBytes: number,
    private readonly events: StoreEvents,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get entryCount(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.total;
  }

  /** Keys with a read in flight (for tests: nothing is left behind). */
  get readsInFlight(): number {
    return this.reading.size;
  }

  /** The live value of a key, now the most recently used; one past its expiry is removed. */
  get(key: string): CachedValue | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      return undefined;
    }
    if (entry.expiresAt <= this.now()) {
      this.remove(key, entry);
      this.events.evicted(1);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  /** A read of `key` is about to be sent to Redis. */
  begin(key: string): ReadTicket {
    const slot = this.reading.get(key);
    if (slot) {
      slot.readers += 1;
    } else {
      this.reading.set(key, { readers: 1, invalidatedAt: 0 });
    }
    return { key, seq: this.seq, sentAt: this.now() };
  }

  /**
   * A read has ended (its value, or nothing when it failed): the value is cached unless its key
   * or the whole cache was invalidated while it was in flight. Says whether it was cached.
   */
  end(ticket: ReadTicket, value?: ReadValue): boolean {
    const slot = this.reading.get(ticket.key);
    if (slot === undefined) {
      return false;
    }
    const fresh = slot.invalidatedAt <= ticket.seq && this.flushedAt <= ticket.seq;
    slot.readers -= 1;
    if (slot.readers === 0) {
      this.reading.delete(ticket.key);
    }
    if (!fresh || value === undefined || value.bytes === null) {
      return false;
    }
    return this.put(ticket.key, value.bytes, value.pttl, ticket.sentAt);
  }

  /** The key changed (Redis said so, or this instance wrote it): its entry and reads are void. */
  invalidate(key: string): void {
    this.seq += 1;
    const slot = this.reading.get(key);
    if (slot) {
      slot.invalidatedAt = this.seq;
    }
    const entry = this.entries.get(key);
    if (entry) {
      this.remove(key, entry);
      this.events.invalidated(1);
    }
  }

  /** Anything may have changed: every entry goes, and no read in flight is cached. */
  flush(): void {
    this.seq += 1;
    this.flushedAt = this.seq;
    this.entries.clear();
    this.total = 0;
    this.events.bytes(0);
  }

  private put(key: string, bytes: Buffer, pttl: number, sentAt: number): boolean {
    const size = Buffer.byteLength(key) + bytes.length + ENTRY_OVERHEAD_BYTES;
    if (pttl === -2 || pttl === 0 || bytes.length > this.maxEntryBytes || size > this.maxBytes) {
      return false;
    }
    const previous = this.entries.get(key);
    if (previous) {
      this.remove(key, previous);
    }
    let evicted = 0;
    for (const [oldest, entry] of this.entries) {
      if (this.total + size <= this.maxBytes) {
        break;
      }
      this.remove(oldest, entry);
      evicted += 1;
    }
    if (evicted > 0) {
      this.events.evicted(evicted);
    }
    // The expiry counts from when the read was sent: Redis read the PTTL later, so the entry
    // ends no later than its key does.
    this.entries.set(key, { bytes, size, expiresAt: pttl < 0 ? Infinity : sentAt + pttl });
    this.total += size;
    this.events.bytes(this.total);
    return true;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.total -= entry.size;
    this.events.bytes(this.total);
  }
}

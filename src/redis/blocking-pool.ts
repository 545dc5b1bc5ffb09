import { AppError } from '../errors/app-error';
import { withDeadline } from './deadline';
import { notReady } from './redis-errors';
import type { RedisClient } from './types';

/** One connection of the pool, lent to one blocked read or one stream tail. */
export interface BlockingLease {
  readonly client: RedisClient;
  /**
   * Gives the connection back. `reusable` only when no command is left in flight on it: a
   * connection still blocked in Redis is closed instead, which also ends the block on the
   * server at once.
   */
  readonly release: (reusable: boolean) => void;
}

export interface BlockingPoolOptions {
  size: number;
  /** Connections one owner (a token subject) may hold at once; 0: no share per owner. */
  perOwner: number;
  connectTimeoutMs: number;
  create: () => RedisClient;
  /** Called whenever the count of lent or open connections changes. */
  onChange: (inUse: number, open: number) => void;
}

/**
 * A bounded pool of dedicated connections for blocking commands (XREAD BLOCK, XREADGROUP
 * BLOCK), so a blocked read never stalls the shared command connections.
 * Connections are made on demand and kept while idle; past `size` lent at once a lease fails
 * at once with 503, it never queues.
 */
export class BlockingPool {
  private readonly idle: RedisClient[] = [];
  private readonly open = new Set<RedisClient>();
  private inUse = 0;
  private closed = false;
  /** Shares held per owner. */
  private readonly shares = new Map<string, number>();

  constructor(private readonly options: BlockingPoolOptions) {}

  get size(): number {
    return this.options.size;
  }

  get leased(): number {
    return this.inUse;
  }

  /**
   * Takes one of `owner`'s shares of the pool (429 QUOTA_EXCEEDED past `perOwner`, so one
   * subject cannot hold every connection while others wait); returns its release, which may be
   * called more than once. A stream tail takes a share per tailed stream, though its clients
   * share one connection.
   */
  share(owner: string): () => void {
    const { perOwner } = this.options;
    if (perOwner === 0) {
      return () => undefined;
    }
    const held = this.shares.get(owner) ?? 0;
    if (held >= perOwner) {
      throw new AppError(
        'QUOTA_EXCEEDED',
        `This subject holds its share of ${perOwner} blocking reads and stream tails (quotas.blockingPerSubject).`,
        { reason: 'blocking' },
      );
    }
    this.shares.set(owner, held + 1);
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      const left = (this.shares.get(owner) ?? 1) - 1;
      if (left > 0) {
        this.shares.set(owner, left);
      } else {
        this.shares.delete(owner);
      }
    };
  }

  /** A connection, charged to `owner`'s share when given (see `share`). */
  async lease(owner?: string): Promise<BlockingLease> {
    const unshare = owner === undefined ? undefined : this.share(owner);
    try {
      const lease = await this.connection();
      return {
        client: lease.client,
        release: (reusable) => {
          unshare?.();
          lease.release(reusable);
        },
      };
    } catch (error) {
      unshare?.();
      throw error;
    }
  }

  private async connection(): Promise<BlockingLease> {
    if (this.closed) {
      throw notReady();
    }
    if (this.inUse >= this.options.size) {
      throw new AppError(
        'BLOCKING_POOL_EXHAUSTED',
        'Every connection for blocking reads and stream tails is in use; retry shortly.',
      );
    }
    this.inUse += 1;
    let client: RedisClient | undefined;
    try {
      client = this.takeIdle() ?? (await this.connect());
    } catch (error) {
      this.inUse -= 1;
      this.report();
      throw error;
    }
    this.report();
    let released = false;
    return {
      client,
      release: (reusable) => {
        if (released) {
          return;
        }
        released = true;
        this.inUse -= 1;
        if (reusable && !this.closed && client.status === 'ready') {
          this.idle.push(client);
        } else {
          this.discard(client);
        }
        this.report();
      },
    };
  }

  close(): void {
    this.closed = true;
    for (const client of [...this.open]) {
      this.discard(client);
    }
    this.idle.length = 0;
    this.report();
  }

  private takeIdle(): RedisClient | undefined {
    for (let client = this.idle.pop(); client; client = this.idle.pop()) {
      if (client.status === 'ready') {
        return client;
      }
      this.discard(client);
    }
    return undefined;
  }

  private async connect(): Promise<RedisClient> {
    const client = this.options.create();
    this.open.add(client);
    // A pooled connection that drops is not reconnected: the next lease makes a new one.
    client.once('end', () => this.forget(client));
    try {
      await withDeadline(client.connect(), this.options.connectTimeoutMs);
      return client;
    } catch {
      this.discard(client);
      throw notReady();
    }
  }

  private discard(client: RedisClient): void {
    client.disconnect();
    this.forget(client);
  }

  private forget(client: RedisClient): void {
    this.open.delete(client);
    const index = this.idle.indexOf(client);
    if (index >= 0) {
      this.idle.splice(index, 1);
    }
    this.report();
  }

  private report(): void {
    this.options.onChange(this.inUse, this.open.size);
  }
}

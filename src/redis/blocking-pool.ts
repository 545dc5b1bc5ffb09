import { AppError } from '../errors/app-error';
import { notReady } from './redis-errors';
import type { RedisClient } from './redis-manager';

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
  connectTimeoutMs: number;
  create: () => RedisClient;
  /** Called whenever the count of lent or open connections changes. */
  onChange: (inUse: number, open: number) => void;
}

/**
 * A bounded pool of dedicated connections for blocking commands (XREAD BLOCK, XREADGROUP
 * BLOCK), so a blocked read never stalls the shared command connections (ARCHITECTURE.md).
 * Connections are made on demand and kept while idle; past `size` lent at once a lease fails
 * at once with 503, it never queues.
 */
export class BlockingPool {
  private readonly idle: RedisClient[] = [];
  private readonly open = new Set<RedisClient>();
  private inUse = 0;
  private closed = false;

  constructor(private readonly options: BlockingPoolOptions) {}

  get size(): number {
    return this.options.size;
  }

  get leased(): number {
    return this.inUse;
  }

  async lease(): Promise<BlockingLease> {
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
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(notReady()), this.options.connectTimeoutMs);
        }),
      ]);
      return client;
    } catch {
      this.discard(client);
      throw notReady();
    } finally {
      clearTimeout(timer);
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

import type { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { withDeadline } from '../redis/deadline';
import { parseInfo } from '../redis/info';

/** The channel Redis publishes client-tracking invalidations on (RESP2 redirection). */
export const INVALIDATE_CHANNEL = '__redis__:invalidate';

/** How often an unarmed link tries again (a failed arm, two connections on different servers). */
const RETRY_MS = 500;

export interface TrackingListener {
  /** These Redis keys changed. */
  invalidate(keys: string[]): void;
  /**
   * Anything may have changed (why, for the log). `counted` when the cache was in use: a
   * connection that keeps failing to reconnect flushes an unarmed, empty cache each time.
   */
  flush(reason: string, counted: boolean): void;
}

/** Client tracking as the near-cache sees it: armed or not, for one server or a whole cluster. */
export interface Tracking {
  /** Whether Redis would tell of every change now: only then may reads be cached. */
  readonly armed: boolean;
  start(): void;
  stop(): void;
}

/**
 * Redis client tracking for one server, in broadcast mode over the key prefix: the connection
 * that serves reads is told `CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <prefix>`, and
 * Redis publishes every change of a key under the prefix, by anyone, to the invalidation
 * connection `<id>` (subscribed to `__redis__:invalidate`). Broadcast mode needs no record of
 * which keys were read, and which connection reads does not matter, only that the tracking and
 * the invalidations are on the same server (checked by its run_id).
 *
 * Armed only while both connections are up and the tracking command has been answered. A close
 * of either connection, or a null invalidation (FLUSHALL, FLUSHDB), tells the listener to flush:
 * Redis forgets a connection's tracking when it closes, and nothing tells a RESP2 client that
 * its redirection broke. It arms again by itself when both are back.
 */
export class TrackingLink implements Tracking {
  private armedNow = false;
  private arming = false;
  /** Bumped when the invalidation connection closes, and when the reads connection does. */
  private invalidationsEpoch = 0;
  private readsEpoch = 0;
  /** The invalidation connection's client id and server, once it is subscribed. */
  private redirect?: { id: number; runId: string };
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private readonly handlers: [Redis, string, (...args: unknown[]) => void][] = [];

  constructor(
    private readonly reads: Redis,
    private readonly invalidations: Redis,
    private readonly prefix: string,
    private readonly timeoutMs: number,
    private readonly listener: TrackingListener,
    private readonly logger: Logger,
  ) {}

  get armed(): boolean {
    return this.armedNow;
  }

  start(): void {
    this.listen(this.invalidations, 'messageBuffer', (channel: Buffer, message: unknown) =>
      this.message(channel, message),
    );
    this.listen(this.invalidations, 'ready', () => void this.subscribe());
    this.listen(this.invalidations, 'close', () => {
      this.invalidationsEpoch += 1;
      this.redirect = undefined;
      this.lost('invalidation connection closed');
    });
    this.listen(this.reads, 'ready', () => void this.arm());
    this.listen(this.reads, 'close', () => {
      this.readsEpoch += 1;
      this.lost('reads connection closed');
    });
    this.retry = setInterval(() => {
      if (!this.armedNow) {
        if (this.redirect === undefined && this.invalidations.status === 'ready') {
          void this.subscribe();
        } else {
          void this.arm();
        }
      }
    }, RETRY_MS);
    this.retry.unref();
    if (this.invalidations.status === 'ready') {
      void this.subscribe();
    }
  }

  /**
   * Disarms for good and lets go of both connections: a cluster drops the link of a master
   * that left, whose connections live on elsewhere or are closed by their owner.
   */
  stop(): void {
    this.stopped = true;
    clearInterval(this.retry);
    this.armedNow = false;
    for (const [emitter, event, handler] of this.handlers) {
      emitter.off(event, handler);
    }
    this.handlers.length = 0;
  }

  private listen(emitter: Redis, event: string, handler: (...args: never[]) => void): void {
    const listener = handler as (...args: unknown[]) => void;
    emitter.on(event, listener);
    this.handlers.push([emitter, event, listener]);
  }

  private lost(reason: string): void {
    if (this.stopped) {
      return;
    }
    const wasArmed = this.armedNow;
    this.armedNow = false;
    this.listener.flush(reason, wasArmed);
    if (wasArmed) {
      this.logger.warn({ reason }, 'Near-cache flushed; reads go to Redis until tracking is armed');
    }
  }

  private message(channel: Buffer, message: unknown): void {
    if (this.stopped || channel.toString() !== INVALIDATE_CHANNEL) {
      return;
    }
    if (Array.isArray(message)) {
      this.listener.invalidate(message.map((key: Buffer) => key.toString()));
    } else {
      // A null invalidation: the server flushed a database (or all of them).
      this.listener.flush('flushed by Redis (FLUSHALL or FLUSHDB)', true);
    }
  }

  /** Subscribes the (fresh) invalidation connection and learns its client id and server. */
  private async subscribe(): Promise<void> {
    const epoch = this.invalidationsEpoch;
    const client = this.invalidations;
    if (client.condition?.subscriber) {
      return; // subscribed already, or subscribing: ready is followed by one subscribe only
    }
    try {
      const [id, info] = await withDeadline(
        Promise.all([client.client('ID'), client.info('server')]),
        this.timeoutMs,
      );
      await withDeadline(client.subscribe(INVALIDATE_CHANNEL), this.timeoutMs);
      if (epoch !== this.invalidationsEpoch) {
        return;
      }
      this.redirect = { id: Number(id), runId: runIdOf(info) };
      await this.arm();
    } catch (error) {
      this.logger.warn({ reason: (error as Error).message }, 'Near-cache subscribe failed');
    }
  }

  /** Turns tracking on (again) on the reads connection, redirected to the invalidations. */
  private async arm(): Promise<void> {
    const redirect = this.redirect;
    if (this.armedNow || this.arming || this.stopped || redirect === undefined) {
      return;
    }
    if (this.reads.status !== 'ready') {
      return;
    }
    const epochs = [this.invalidationsEpoch, this.readsEpoch];
    this.arming = true;
    try {
      const info = await withDeadline(this.reads.info('server'), this.timeoutMs);
      if (runIdOf(info) !== redirect.runId) {
        return; // a failover moved one connection only (so far): the retry looks again
      }
      const prefix = this.prefix === '' ? [] : ['PREFIX', this.prefix];
      // Off first: on again with another redirection or prefix is refused while it is on.
      await withDeadline(
        Promise.all([
          this.reads.call('CLIENT', 'TRACKING', 'off'),
          this.reads.call('CLIENT', 'TRACKING', 'on', 'REDIRECT', redirect.id, 'BCAST', ...prefix),
        ]),
        this.timeoutMs,
      );
      if (this.stopped || epochs[0] !== this.invalidationsEpoch || epochs[1] !== this.readsEpoch) {
        return; // a connection closed meanwhile (what it armed is gone), or the link was dropped
      }
      // Anything cached before was flushed when tracking was lost, and no read sent before
      // now is cached (the flush voided it), so the cache starts empty and exact.
      this.armedNow = true;
      const { host, port } = this.reads.options;
      this.logger.log(
        { redirect: redirect.id, server: `${host}:${port}` },
        'Near-cache tracking armed',
      );
    } catch (error) {
      this.logger.warn({ reason: (error as Error).message }, 'Near-cache tracking not armed');
    } finally {
      this.arming = false;
    }
  }
}

function runIdOf(info: string): string {
  return parseInfo(info).server?.run_id ?? '';
}

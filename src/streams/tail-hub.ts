import { AppError } from '../errors/app-error';
import type { BlockingLease } from '../redis/blocking-pool';
import type { SseStream } from '../sse/sse-stream';
import type { Encoding } from '../common/value-codec';
import { entrySize, type RawEntry } from './entries';

const MAX_RETRY_DELAY_MS = 1000;

export type XreadReply = [key: Buffer, entries: RawEntry[]][] | null;

/** What a hub needs of the tails that own it. */
export interface TailHost {
  readonly maxBufferBytes: number;
  lease(): Promise<BlockingLease>;
  /** One XREAD BLOCK after `position`, on the hub's connection. */
  read(lease: BlockingLease, key: string, position: string): Promise<XreadReply>;
  send(client: TailClient, entries: RawEntry[]): void;
  forget(hub: TailHub): void;
}

export interface TailClient {
  readonly stream: SseStream;
  readonly encoding: Encoding | undefined;
  /** The id of the last entry sent, or the position the client starts after. */
  lastId: string;
  /** Entries the hub read while the client was still catching up; null once it is live. */
  held: RawEntry[] | null;
  heldBytes: number;
}

/**
 * One XREAD BLOCK loop per tailed stream, on one connection of the blocking pool, shared by
 * every SSE client that tails that stream: a thousand clients on one stream cost one Redis
 * connection, and a tail never blocks the shared command connection.
 */
export class TailHub {
  readonly clients = new Set<TailClient>();
  /** The id the next XREAD reads after; unknown until the first client has caught up. */
  position: string | undefined;
  stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly key: string,
    private lease: BlockingLease | undefined,
    private readonly tails: TailHost,
  ) {}

  start(): void {
    void this.loop();
  }

  remove(client: TailClient): void {
    this.clients.delete(client);
    if (this.clients.size === 0) {
      this.stop();
    }
  }

  /** Sets where reading starts, once, from the first client to finish catching up. */
  begin(position: string): void {
    if (this.position === undefined) {
      this.position = position;
      this.wake?.();
    }
  }

  stop(): void {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    // The connection may be blocked inside Redis: closing it ends the block there at once.
    this.lease?.release(false);
    this.lease = undefined;
    this.wake?.();
    this.tails.forget(this);
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (this.position === undefined) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      try {
        this.lease ??= await this.tails.lease();
        if (this.stopped) {
          this.lease.release(false);
          return;
        }
        const reply = await this.tails.read(this.lease, this.key, this.position);
        failures = 0;
        if (reply && !this.stopped) {
          this.deliver(reply[0][1]);
        }
      } catch (error) {
        if (this.stopped) {
          return;
        }
        this.lease?.release(false);
        this.lease = undefined;
        if (error instanceof AppError && error.code === 'WRONG_TYPE') {
          this.endAll('WRONG_TYPE');
          return;
        }
        // Redis is down or restarting: clients keep their streams (heartbeats go on) and the
        // tail resumes from its position when Redis is back; nothing is lost.
        failures += 1;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(50 * 2 ** failures, MAX_RETRY_DELAY_MS)),
        );
      }
    }
  }

  private deliver(entries: RawEntry[]): void {
    if (entries.length === 0) {
      return;
    }
    this.position = entries[entries.length - 1][0].toString();
    for (const client of this.clients) {
      if (client.held) {
        client.held.push(...entries);
        client.heldBytes += entries.reduce((sum, entry) => sum + entrySize(entry), 0);
        if (client.heldBytes > this.tails.maxBufferBytes) {
          client.stream.end({ error: 'SLOW_CONSUMER' });
        }
        continue;
      }
      this.tails.send(client, entries);
    }
  }

  private endAll(code: 'WRONG_TYPE'): void {
    for (const client of [...this.clients]) {
      client.stream.end({ error: code });
    }
  }
}

import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import type { Encoding, ValueCodec } from '../common/value-codec';
import { AppError } from '../errors/app-error';
import type { BlockingLease } from '../redis/blocking-pool';
import { Keyspace } from '../redis/keys';
import { BLOCKING_GRACE_MS, RedisManager, callBuffer, unwrapExec } from '../redis/redis-manager';
import { OperationTimeoutError } from '../redis/redis-errors';
import { SseRegistry } from '../sse/sse-registry';
import type { SseStream } from '../sse/sse-stream';
import { compareIds, entrySize, RESUMABLE_ID, toEntry, type RawEntry } from './entries';
import { StreamsService } from './streams.service';

/** How long one XREAD of a tail blocks; a tail is re-armed after each. */
const TAIL_BLOCK_MS = 5000;
/** Entries per XREAD or catch-up page. */
const PAGE = 100;
const MAX_RETRY_DELAY_MS = 1000;

type XreadReply = [key: Buffer, entries: RawEntry[]][] | null;

interface TailClient {
  readonly stream: SseStream;
  readonly encoding: Encoding | undefined;
  /** The id of the last entry sent, or the position the client starts after. */
  lastId: string;
  /** Entries the hub read while the client was still catching up; null once it is live. */
  held: RawEntry[] | null;
  heldBytes: number;
}

export interface TailOptions {
  from?: string;
  lastEventId?: string;
  encoding?: Encoding;
}

/**
 * One XREAD BLOCK loop per tailed stream, on one connection of the blocking pool, shared by
 * every SSE client that tails that stream: a thousand clients on one stream cost one Redis
 * connection, and a tail never blocks the shared command connection.
 */
class TailHub {
  readonly clients = new Set<TailClient>();
  /** The id the next XREAD reads after; unknown until the first client has caught up. */
  position: string | undefined;
  stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly key: string,
    private lease: BlockingLease | undefined,
    private readonly tails: StreamTails,
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
        const reply = await this.read(this.lease, this.position);
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
        if (error instanceof Error && error.message.startsWith('WRONGTYPE')) {
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

  /** One XREAD BLOCK, with a deadline that closes a connection that went half-open. */
  private read(lease: BlockingLease, position: string): Promise<XreadReply> {
    let timer: NodeJS.Timeout | undefined;
    const command = callBuffer(
      lease.client,
      'XREAD',
      'COUNT',
      PAGE,
      'BLOCK',
      TAIL_BLOCK_MS,
      'STREAMS',
      this.key,
      position,
    ) as Promise<XreadReply>;
    command.catch(() => undefined);
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new OperationTimeoutError()),
        TAIL_BLOCK_MS + BLOCKING_GRACE_MS,
      );
    });
    return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
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

/**
 * SSE tails of streams (`GET /redis/streams/{key}/events`). Each event's `id:` is the entry id,
 * so a client that reconnects with `Last-Event-ID` resumes right after the last entry it got:
 * it first catches up with XRANGE on the read connection, then joins the stream's shared
 * XREAD loop; entries the loop reads meanwhile are held and sent after, by id, so none is lost
 * or repeated.
 */
@Injectable()
export class StreamTails implements OnModuleDestroy {
  private readonly logger = new Logger(StreamTails.name);
  private readonly hubs = new Map<string, TailHub>();
  private readonly creating = new Map<string, Promise<TailHub>>();
  private readonly shares = new Map<string, { clients: number; release: () => void }>();
  readonly maxBufferBytes: number;
  private readonly codec: ValueCodec;

  constructor(
    private readonly redis: RedisManager,
    private readonly keyspace: Keyspace,
    private readonly registry: SseRegistry,
    private readonly streams: StreamsService,
    config: AppConfig,
  ) {
    this.maxBufferBytes = config.sse.maxBufferBytes;
    this.codec = streams.codec;
  }

  /** Open tails (streams with at least one client). */
  get size(): number {
    return this.hubs.size;
  }

  async open(
    principal: Principal,
    name: string,
    options: TailOptions,
    reply: FastifyReply,
  ): Promise<void> {
    const key = this.keyspace.key(principal, name);
    this.registry.admit(principal);
    const unshare = this.takeShare(principal.sub, key);
    let stream: SseStream;
    let client: TailClient;
    let gap: boolean;
    let hub: TailHub;
    try {
      // A Last-Event-ID that is not an entry id (EventSource sends whatever id it last saw) is
      // ignored, and the client is told with `event: gap` that it may have missed entries.
      const resume =
        options.lastEventId !== undefined && RESUMABLE_ID.test(options.lastEventId)
          ? options.lastEventId
          : undefined;
      gap = options.lastEventId !== undefined && resume === undefined;
      const start = resume ?? (await this.startPosition(key, options.from ?? '$'));
      hub = await this.hubFor(key);
      try {
        stream = this.registry.open(reply, principal, 'stream');
      } catch (error) {
        if (hub.clients.size === 0) {
          hub.stop();
        }
        throw error;
      }
      client = {
        stream,
        encoding: options.encoding,
        lastId: start,
        held: [],
        heldBytes: 0,
      };
    } catch (error) {
      unshare();
      throw error;
    }
    hub.clients.add(client);
    stream.onEnd(() => {
      hub.remove(client);
      unshare();
    });
    if (gap) {
      stream.send({ event: 'gap', data: JSON.stringify({ reason: 'unknown Last-Event-ID' }) });
    }
    try {
      await this.catchUp(key, client);
    } catch (error) {
      this.logger.warn({ reason: (error as Error).message }, 'Stream tail catch-up failed');
      stream.end({ error: 'REDIS_UNAVAILABLE' });
      return;
    }
    const held = client.held ?? [];
    client.held = null;
    this.send(client, held);
    hub.begin(client.lastId);
  }

  /**
   * One share of the blocking pool per subject and tailed stream, however many of the
   * subject's clients tail it (they share one connection); released with its last client.
   */
  private takeShare(sub: string, key: string): () => void {
    const id = `${sub}\0${key}`;
    let entry = this.shares.get(id);
    if (!entry) {
      entry = { clients: 0, release: this.redis.blocking.share(sub) };
      this.shares.set(id, entry);
    }
    const taken = entry;
    taken.clients += 1;
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      taken.clients -= 1;
      if (taken.clients === 0) {
        taken.release();
        this.shares.delete(id);
      }
    };
  }

  /** Writes the entries after the client's last id, in order. */
  send(client: TailClient, entries: RawEntry[]): void {
    for (const entry of entries) {
      const id = entry[0].toString();
      if (compareIds(id, client.lastId) <= 0) {
        continue;
      }
      if (!client.stream.send(this.event(entry, client.encoding))) {
        return;
      }
      client.lastId = id;
    }
  }

  lease(): Promise<BlockingLease> {
    return this.redis.blocking.lease();
  }

  forget(hub: TailHub): void {
    if (this.hubs.get(hub.key) === hub) {
      this.hubs.delete(hub.key);
    }
  }

  onModuleDestroy(): void {
    for (const hub of [...this.hubs.values()]) {
      hub.stop();
    }
  }

  /** `$`: after the stream's last entry now; `0`: from the start; else after that id. */
  private async startPosition(key: string, from: string): Promise<string> {
    const [type, last] = await this.redis.exec('streams.tail_start', 'read', async (client) =>
      unwrapExec(await client.multi().type(key).xrevrange(key, '+', '-', 'COUNT', 1).exec()),
    );
    if (type !== 'stream' && type !== 'none') {
      throw new AppError('WRONG_TYPE', 'The key holds a value of another type.');
    }
    if (from === '$') {
      return (last as [string, string[]][])[0]?.[0] ?? '0-0';
    }
    return from === '0' ? '0-0' : from;
  }

  /**
   * The stream's running hub, or a new one on a connection of the blocking pool (503 when
   * spent). Concurrent opens of one stream wait for the same new hub: one lease per stream.
   */
  private async hubFor(key: string): Promise<TailHub> {
    for (;;) {
      const existing = this.hubs.get(key);
      if (existing && !existing.stopped) {
        return existing;
      }
      let creating = this.creating.get(key);
      if (!creating) {
        creating = this.lease()
          .then((lease) => {
            const hub = new TailHub(key, lease, this);
            this.hubs.set(key, hub);
            hub.start();
            return hub;
          })
          .finally(() => this.creating.delete(key));
        this.creating.set(key, creating);
      }
      const hub = await creating;
      // A hub whose last client left while this open waited has stopped: make a new one.
      if (!hub.stopped) {
        return hub;
      }
    }
  }

  /**
   * Sends every entry after the client's position, page by page, at the client's pace (history
   * is in Redis, so a slow reader here only reads slowly; it is not a slow consumer).
   */
  private async catchUp(key: string, client: TailClient): Promise<void> {
    for (;;) {
      // Pages of at most PAGE entries and about one client buffer of bytes.
      const [, truncated, page] = (await this.redis.exec('streams.tail_range', 'read', (redis) =>
        this.streams.rangeBounded(
          [key],
          [`(${client.lastId}`, '+', PAGE, '0', this.maxBufferBytes, '1'],
          redis,
        ),
      )) as [number, number, RawEntry[]];
      for (const entry of page) {
        await client.stream.drained();
        this.send(client, [entry]);
      }
      if ((page.length < PAGE && truncated === 0) || page.length === 0 || !client.stream.open) {
        return;
      }
    }
  }

  /**
   * `id:` is the entry id; `data` is `{id, fields}`, names as text and values in the asked
   * encoding, as the HTTP routes answer. Text that is not valid UTF-8 cannot be JSON: such an
   * entry is sent with names and values in base64 and says so (`"encoding": "base64"`).
   */
  private event(entry: RawEntry, encoding: Encoding | undefined) {
    const id = entry[0].toString();
    let data: string;
    try {
      data = JSON.stringify(toEntry(entry, this.codec, encoding, 'utf8'));
    } catch {
      data = JSON.stringify({ ...toEntry(entry, this.codec, 'base64'), encoding: 'base64' });
    }
    return { id, event: 'entry', data };
  }
}

import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { ValueCodec, type Encoding } from '../common/value-codec';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import type { BlockingLease } from '../redis/blocking-pool';
import { RedisConnections } from '../redis/connections';
import { RedisExecutor } from '../redis/executor';
import { callBuffer, transactionReplies } from '../redis/scripts';
import { SseRegistry } from '../sse/sse-registry';
import type { SseStream } from '../sse/sse-stream';
import { compareIds, RESUMABLE_ID, toEntry, type RawEntry } from './entries';
import { StreamsService } from './streams.service';
import { TailHub, type TailClient, type TailHost, type XreadReply } from './tail-hub';

/** Entries per XREAD or catch-up page. */
const PAGE = 100;
/** How long one XREAD of a tail blocks. */
const TAIL_BLOCK_MS = 5000;

export interface TailOptions {
  from?: string;
  lastEventId?: string;
  encoding?: Encoding;
}

/**
 * SSE tails of streams (`GET /redis/streams/{key}/events`). Each event's `id:` is the entry id,
 * so a client that reconnects with `Last-Event-ID` resumes right after the last entry it got:
 * it first catches up with XRANGE on the read connection, then joins the stream's shared
 * XREAD loop; entries the loop reads meanwhile are held and sent after, by id, so none is lost
 * or repeated.
 */
@Injectable()
export class StreamTails implements TailHost, OnModuleDestroy {
  private readonly logger = new Logger(StreamTails.name);
  private readonly hubs = new Map<string, TailHub>();
  private readonly creating = new Map<string, Promise<TailHub>>();
  private readonly shares = new Map<string, { clients: number; release: () => void }>();
  readonly maxBufferBytes: number;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly connections: RedisConnections,
    private readonly access: KeyAccess,
    private readonly registry: SseRegistry,
    private readonly streams: StreamsService,
    private readonly codec: ValueCodec,
    config: AppConfig,
  ) {
    this.maxBufferBytes = config.sse.maxBufferBytes;
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
    const key = this.access.redisKey(principal, name);
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
      entry = { clients: 0, release: this.connections.blocking.share(sub) };
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
    return this.connections.blocking.lease();
  }

  /** One XREAD BLOCK of a hub, on its leased connection; re-armed by the hub after each. */
  read(lease: BlockingLease, key: string, position: string): Promise<XreadReply> {
    const args = ['COUNT', PAGE, 'BLOCK', TAIL_BLOCK_MS, 'STREAMS', key, position];
    return this.redis.runBlockingOn(
      lease,
      'streams.tail_read',
      TAIL_BLOCK_MS,
      (client) => callBuffer(client, 'XREAD', ...args) as Promise<XreadReply>,
    );
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
    const [type, last] = await this.redis.run('streams.tail_start', 'read', async (client) =>
      transactionReplies(
        await client.multi().type(key).xrevrange(key, '+', '-', 'COUNT', 1).exec(),
      ),
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
      const [, truncated, page] = (await this.redis.run('streams.tail_range', 'read', (redis) =>
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

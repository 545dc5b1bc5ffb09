import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { Names } from '../common/names';
import { ValueCodec } from '../common/value-codec';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { RedisExecutor } from '../redis/executor';
import { RedisScripts, callBuffer, transactionReplies, type ScriptRunner } from '../redis/scripts';
import type { ScriptArg } from '../redis/types';
import type {
  AckDto,
  ClaimDto,
  CreateGroupDto,
  GroupReadDto,
  PendingQuery,
} from './dto/streams-requests.dto';
import type {
  AcknowledgedDto,
  ClaimedDto,
  GroupCreatedDto,
  GroupEntriesDto,
  GroupsDto,
  PendingDto,
} from './dto/streams-responses.dto';
import { entrySize, pairs, toEntries, type RawEntry } from './entries';
import { DEFAULT_RANGE_COUNT } from './streams.service';

const DEFAULT_READ_COUNT = 10;

type XreadReply = [key: Buffer, entries: RawEntry[]][] | null;

/**
 * Consumer groups of streams: create, list and delete them, read as a consumer (blocking on the
 * blocking pool when asked), acknowledge, list what is pending, and claim it.
 */
@Injectable()
export class GroupsService {
  /** XREADGROUP and XAUTOCLAIM within a byte budget (group-bounded-1.lua). */
  private readonly groupBounded: ScriptRunner;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly access: KeyAccess,
    private readonly names: Names,
    private readonly codec: ValueCodec,
    private readonly config: AppConfig,
    scripts: RedisScripts,
  ) {
    this.groupBounded = scripts.load(join(__dirname, 'scripts', 'group-bounded-1.lua'), {
      buffers: true,
    });
  }

  async createGroup(
    principal: Principal,
    name: string,
    body: CreateGroupDto,
  ): Promise<GroupCreatedDto> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({ group: body.group });
    const args = ['CREATE', key, body.group, body.from ?? '$'];
    if (body.mkStream ?? true) {
      args.push('MKSTREAM');
    }
    await this.redis.run('streams.create_group', 'write', (client) =>
      client.call('XGROUP', ...args),
    );
    return { key: name, group: body.group };
  }

  async groups(principal: Principal, name: string): Promise<GroupsDto> {
    const key = this.access.redisKey(principal, name);
    const reply = await this.redis.run('streams.groups', 'read', (client) =>
      client.call('XINFO', 'GROUPS', key),
    );
    const groups = (reply as unknown[][]).map((flat) => {
      const group = pairs(flat);
      return {
        name: String(group.name),
        consumers: Number(group.consumers),
        pending: Number(group.pending),
        lastDeliveredId: String(group['last-delivered-id']),
        lag: group.lag === null || group.lag === undefined ? null : Number(group.lag),
      };
    });
    return { key: name, groups };
  }

  async deleteGroup(principal: Principal, name: string, group: string): Promise<void> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({ group });
    const destroyed = await this.redis.run('streams.delete_group', 'write', (client) =>
      client.call('XGROUP', 'DESTROY', key, group),
    );
    if (destroyed === 0) {
      throw AppError.notFound('The consumer group');
    }
  }

  /**
   * XREADGROUP `>`: new entries for this consumer, at most `count` and at most
   * limits.maxResponseBytes of them (a shorter page when the next entry would not fit; 413
   * when the first alone is larger). With `blockMs` and nothing to read yet, it waits for one
   * entry on a connection of the blocking pool (never the shared one; `signal` ends the wait
   * when the caller leaves), then reads what else fits without waiting.
   */
  async read(
    principal: Principal,
    name: string,
    group: string,
    body: GroupReadDto,
    signal?: AbortSignal,
  ): Promise<GroupEntriesDto> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({ group, consumer: body.consumer });
    const count = this.names.count(body.count, DEFAULT_READ_COUNT);
    const blockMs = Math.min(body.blockMs ?? 0, this.config.limits.maxBlockMs);
    const { maxResponseBytes } = this.config.limits;
    const noAck = body.noAck ? '1' : '0';
    // It runs on the writes connection (XREADGROUP changes the pending list), but a lost reply
    // is answered like a read's (503, or 504 REDIS_TIMEOUT), not OUTCOME_UNKNOWN: what it may
    // have delivered stays pending and comes back through pending and claim, so a plain retry
    // is always right (docs/testing.md, X-2 and X-5).
    const readNow = (limit: number, budget: number) =>
      this.redis.run('streams.read', 'retriable-write', async (client) => {
        const reply = (await this.groupBounded(
          [key],
          ['read', group, body.consumer, limit, budget, noAck],
          client,
        )) as XreadReply | number;
        if (typeof reply === 'number') {
          throw AppError.responseTooLarge(maxResponseBytes);
        }
        return reply?.[0]?.[1] ?? [];
      });
    let entries = await readNow(count, maxResponseBytes);
    if (entries.length === 0 && blockMs > 0) {
      const args: ScriptArg[] = ['GROUP', group, body.consumer, 'COUNT', 1, 'BLOCK', blockMs];
      if (body.noAck) {
        args.push('NOACK');
      }
      args.push('STREAMS', key, '>');
      const reply = await this.redis.runBlocking(
        'streams.read',
        'retriable-write',
        blockMs,
        (client) => callBuffer(client, 'XREADGROUP', ...args) as Promise<XreadReply>,
        { signal, owner: principal.sub },
      );
      entries = reply?.[0]?.[1] ?? [];
      const left = maxResponseBytes - entries.reduce((sum, entry) => sum + entrySize(entry), 0);
      if (entries.length > 0 && count > 1 && left > 0) {
        // What arrived with the first entry; the first is delivered either way, so a failure
        // here answers it alone.
        entries = [...entries, ...(await readNow(count - 1, left).catch(() => []))];
      }
    }
    return { entries: toEntries(entries, this.codec, body.encoding) };
  }

  async ack(
    principal: Principal,
    name: string,
    group: string,
    body: AckDto,
  ): Promise<AcknowledgedDto> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({ group });
    if (body.ids.length === 0) {
      throw AppError.validation([{ field: 'ids', message: 'must hold at least one id' }]);
    }
    this.names.checkBatch(body.ids.length, 'ids');
    // XPENDING first: XACK alone answers 0 for a group that does not exist, which would hide
    // a typo in the group name; XPENDING fails with NOGROUP (404).
    const [, acknowledged] = await this.redis.run('streams.ack', 'write', async (client) =>
      transactionReplies(
        await client
          .multi()
          .call('XPENDING', key, group)
          .call('XACK', key, group, ...body.ids)
          .exec(),
      ),
    );
    return { acknowledged: Number(acknowledged) };
  }

  async pending(
    principal: Principal,
    name: string,
    group: string,
    query: PendingQuery,
  ): Promise<PendingDto> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({
      group,
      ...(query.consumer === undefined ? {} : { consumer: query.consumer }),
    });
    const count = this.names.count(query.count, DEFAULT_RANGE_COUNT);
    const detail: ScriptArg[] = [key, group];
    if (query.minIdleMs !== undefined) {
      detail.push('IDLE', query.minIdleMs);
    }
    detail.push('-', '+', count);
    if (query.consumer !== undefined) {
      detail.push(query.consumer);
    }
    const [summary, entries] = (await this.redis.run('streams.pending', 'read', async (client) =>
      transactionReplies(
        await client
          .multi()
          .call('XPENDING', key, group)
          .call('XPENDING', ...detail)
          .exec(),
      ),
    )) as [
      [number, string | null, string | null, [string, string][] | null],
      [string, string, number, number][],
    ];
    return {
      count: Number(summary[0]),
      minId: summary[1],
      maxId: summary[2],
      consumers: (summary[3] ?? []).map(([consumer, pending]) => ({
        name: consumer,
        pending: Number(pending),
      })),
      pending: entries.map(([id, consumer, idleMs, deliveries]) => ({
        id,
        consumer,
        idleMs: Number(idleMs),
        deliveries: Number(deliveries),
      })),
    };
  }

  /** XAUTOCLAIM: take over entries another consumer left pending for at least `minIdleMs`. */
  async claim(
    principal: Principal,
    name: string,
    group: string,
    body: ClaimDto,
  ): Promise<ClaimedDto> {
    const key = this.access.redisKey(principal, name);
    this.checkNames({ group, consumer: body.consumer });
    const count = this.names.count(body.count, DEFAULT_RANGE_COUNT);
    const { maxResponseBytes } = this.config.limits;
    const reply = (await this.redis.run('streams.claim', 'write', (client) =>
      this.groupBounded(
        [key],
        [
          'claim',
          group,
          body.consumer,
          count,
          maxResponseBytes,
          body.minIdleMs,
          body.start ?? '0-0',
        ],
        client,
      ),
    )) as [Buffer, RawEntry[], Buffer[] | undefined] | number;
    if (typeof reply === 'number') {
      throw AppError.responseTooLarge(maxResponseBytes);
    }
    return {
      entries: toEntries(reply[1], this.codec, body.encoding),
      nextStart: reply[0].toString(),
      deletedIds: (reply[2] ?? []).map(String),
    };
  }

  /** Group and consumer names follow the rules for names; they are not keys. */
  private checkNames(names: Record<string, string>): void {
    this.names.check(Object.entries(names));
  }
}

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { ValueCodec } from '../common/value-codec';
import { AppError, type FieldError } from '../errors/app-error';
import { Keyspace } from '../redis/keys';
import {
  RedisManager,
  callBuffer,
  unwrapExec,
  type ScriptArg,
  type ScriptRunner,
} from '../redis/redis-manager';
import type {
  AckDto,
  AddEntryDto,
  ClaimDto,
  CreateGroupDto,
  GroupReadDto,
  PendingQuery,
  RangeQuery,
  TrimDto,
} from './dto/streams-requests.dto';
import type {
  AcknowledgedDto,
  ClaimedDto,
  EntriesDto,
  EntryIdDto,
  GroupCreatedDto,
  GroupEntriesDto,
  GroupsDto,
  PendingDto,
  StreamInfoDto,
  TrimmedDto,
} from './dto/streams-responses.dto';
import { entrySize, pairs, toEntries, type RawEntry } from './entries';

const DEFAULT_RANGE_COUNT = 100;
const DEFAULT_READ_COUNT = 10;
/** Idempotency-Key: printable ASCII, as common practice (IETF draft) has it. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

type XreadReply = [key: Buffer, entries: RawEntry[]][] | null;

/** The stream API of API.md: entries, ranges, trimming and consumer groups. */
@Injectable()
export class StreamsService {
  readonly codec: ValueCodec;
  private readonly addIdempotent: ScriptRunner;
  /** XRANGE within a byte budget (also the catch-up of stream tails). */
  readonly rangeBounded: ScriptRunner;
  private readonly readGroupBounded: ScriptRunner;
  private readonly claimBounded: ScriptRunner;

  constructor(
    private readonly redis: RedisManager,
    private readonly keyspace: Keyspace,
    private readonly config: AppConfig,
  ) {
    this.codec = new ValueCodec(config.limits.maxValueBytes);
    this.addIdempotent = redis.defineScript(join(__dirname, 'scripts', 'xadd-idempotent-2.lua'));
    const bounded = (file: string) =>
      redis.defineScript(join(__dirname, 'scripts', file), { buffers: true });
    this.rangeBounded = bounded('xrange-bounded-1.lua');
    this.readGroupBounded = bounded('xreadgroup-bounded-1.lua');
    this.claimBounded = bounded('xautoclaim-bounded-1.lua');
  }

  async add(
    principal: Principal,
    name: string,
    body: AddEntryDto,
    idempotencyKey: string | undefined,
  ): Promise<EntryIdDto> {
    const key = this.keyspace.key(principal, name);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw AppError.validation([
        { field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters' },
      ]);
    }
    const args = this.addArguments(body);
    const id = await this.redis.exec('streams.add', 'write', (client) =>
      idempotencyKey === undefined
        ? (client.call('XADD', key, ...args) as Promise<string>)
        : (this.addIdempotent(
            [key, this.idempotencyRecord(principal, key, idempotencyKey)],
            [this.config.streams.idempotencyWindowS, fingerprint(args), ...args],
            client,
          ) as Promise<string>),
    );
    return { key: name, id };
  }

  async range(principal: Principal, name: string, query: RangeQuery): Promise<EntriesDto> {
    const key = this.keyspace.key(principal, name);
    const count = this.count(query.count, DEFAULT_RANGE_COUNT, 'count');
    const start = query.start ?? '-';
    const end = query.end ?? '+';
    checkBounds(start, end);
    const { maxResponseBytes } = this.config.limits;
    const [exists, truncated, raw] = (await this.redis.exec('streams.range', 'read', (client) =>
      this.rangeBounded(
        [key],
        [start, end, count, query.reverse ? '1' : '0', maxResponseBytes, '0'],
        client,
      ),
    )) as [number, number, RawEntry[]];
    if (exists === 0) {
      throw AppError.notFound('The stream');
    }
    if (truncated === 1) {
      throw AppError.responseTooLarge(maxResponseBytes);
    }
    return { key: name, entries: toEntries(raw, this.codec, query.encoding) };
  }

  async info(principal: Principal, name: string): Promise<StreamInfoDto> {
    const key = this.keyspace.key(principal, name);
    const reply = await this.redis.exec('streams.info', 'read', (client) =>
      client.call('XINFO', 'STREAM', key),
    );
    const info = pairs(reply as unknown[]);
    const first = info['first-entry'] as [string, unknown] | null;
    const last = info['last-entry'] as [string, unknown] | null;
    return {
      key: name,
      length: Number(info.length),
      firstId: first?.[0] ?? null,
      lastId: last?.[0] ?? null,
      groups: Number(info.groups),
    };
  }

  async deleteEntry(principal: Principal, name: string, id: string): Promise<void> {
    const key = this.keyspace.key(principal, name);
    if (!/^\d{1,20}(-\d{1,20})?$/.test(id)) {
      throw AppError.validation([{ field: 'id', message: 'must be a stream entry id' }]);
    }
    const deleted = await this.redis.exec('streams.delete_entry', 'write', (client) =>
      client.xdel(key, id),
    );
    if (deleted === 0) {
      throw AppError.notFound('The entry');
    }
  }

  async trim(principal: Principal, name: string, body: TrimDto): Promise<TrimmedDto> {
    const key = this.keyspace.key(principal, name);
    if (body.maxLen === undefined && body.minId === undefined) {
      throw AppError.validation([{ field: 'maxLen', message: 'give maxLen or minId' }]);
    }
    const strategy =
      body.maxLen === undefined ? ['MINID', body.minId as string] : ['MAXLEN', body.maxLen];
    const [exists, trimmed] = await this.redis.exec('streams.trim', 'write', async (client) =>
      unwrapExec(
        await client
          .multi()
          .exists(key)
          .call('XTRIM', key, strategy[0], body.approximate ? '~' : '=', strategy[1])
          .exec(),
      ),
    );
    if (exists === 0) {
      throw AppError.notFound('The stream');
    }
    return { key: name, trimmed: Number(trimmed) };
  }

  async createGroup(
    principal: Principal,
    name: string,
    body: CreateGroupDto,
  ): Promise<GroupCreatedDto> {
    const key = this.keyspace.key(principal, name);
    this.checkNames({ group: body.group });
    const args = ['CREATE', key, body.group, body.from ?? '$'];
    if (body.mkStream ?? true) {
      args.push('MKSTREAM');
    }
    await this.redis.exec('streams.create_group', 'write', (client) =>
      client.call('XGROUP', ...args),
    );
    return { key: name, group: body.group };
  }

  async groups(principal: Principal, name: string): Promise<GroupsDto> {
    const key = this.keyspace.key(principal, name);
    const reply = await this.redis.exec('streams.groups', 'read', (client) =>
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
    const key = this.keyspace.key(principal, name);
    this.checkNames({ group });
    const destroyed = await this.redis.exec('streams.delete_group', 'write', (client) =>
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
    const key = this.keyspace.key(principal, name);
    this.checkNames({ group, consumer: body.consumer });
    const count = this.count(body.count, DEFAULT_READ_COUNT, 'count');
    const blockMs = Math.min(body.blockMs ?? 0, this.config.limits.maxBlockMs);
    const { maxResponseBytes } = this.config.limits;
    const noAck = body.noAck ? '1' : '0';
    // It runs on the writes connection (XREADGROUP changes the pending list), but a lost reply
    // is answered like a read's (503, or 504 REDIS_TIMEOUT), not OUTCOME_UNKNOWN: what it may
    // have delivered stays pending and comes back through pending and claim, so a plain retry
    // is always right (docs/testing.md, X-2 and X-5).
    const readNow = (limit: number, budget: number) =>
      this.redis.execOn(this.redis.command, 'streams.read', 'read', async (client) => {
        const reply = (await this.readGroupBounded(
          [key],
          [group, body.consumer, limit, noAck, budget],
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
      const reply = await this.redis.blockingExec(
        'streams.read',
        'read',
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
    const key = this.keyspace.key(principal, name);
    this.checkNames({ group });
    if (body.ids.length === 0) {
      throw AppError.validation([{ field: 'ids', message: 'must hold at least one id' }]);
    }
    this.checkBatch(body.ids.length, 'ids');
    // XPENDING first: XACK alone answers 0 for a group that does not exist, which would hide
    // a typo in the group name; XPENDING fails with NOGROUP (404).
    const [, acknowledged] = await this.redis.exec('streams.ack', 'write', async (client) =>
      unwrapExec(
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
    const key = this.keyspace.key(principal, name);
    this.checkNames({
      group,
      ...(query.consumer === undefined ? {} : { consumer: query.consumer }),
    });
    const count = this.count(query.count, DEFAULT_RANGE_COUNT, 'count');
    const detail: ScriptArg[] = [key, group];
    if (query.minIdleMs !== undefined) {
      detail.push('IDLE', query.minIdleMs);
    }
    detail.push('-', '+', count);
    if (query.consumer !== undefined) {
      detail.push(query.consumer);
    }
    const [summary, entries] = (await this.redis.exec('streams.pending', 'read', async (client) =>
      unwrapExec(
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
    const key = this.keyspace.key(principal, name);
    this.checkNames({ group, consumer: body.consumer });
    const count = this.count(body.count, DEFAULT_RANGE_COUNT, 'count');
    const { maxResponseBytes } = this.config.limits;
    const reply = (await this.redis.exec('streams.claim', 'write', (client) =>
      this.claimBounded(
        [key],
        [group, body.consumer, body.minIdleMs, body.start ?? '0-0', count, maxResponseBytes],
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

  /** XADD's arguments after the key: trimming, id, then the fields. */
  private addArguments(body: AddEntryDto): ScriptArg[] {
    const { maxLength } = this.config.streams;
    const names = Object.keys(body.fields);
    if (names.length === 0) {
      throw AppError.validation([{ field: 'fields', message: 'must hold at least one field' }]);
    }
    this.checkBatch(names.length, 'fields');
    if (body.maxLen !== undefined && body.maxLen > maxLength) {
      throw AppError.validation([
        { field: 'maxLen', message: `must be at most ${maxLength} (streams.maxLength)` },
      ]);
    }
    const errors: FieldError[] = [];
    const fields: ScriptArg[] = [];
    for (const field of names) {
      const problem = this.keyspace.nameProblem(field);
      if (problem) {
        errors.push({ field: `fields.${field}`, message: `field name ${problem}` });
        continue;
      }
      fields.push(field, this.codec.decode(body.fields[field], body.encoding, `fields.${field}`));
    }
    if (errors.length > 0) {
      throw AppError.validation(errors);
    }
    // Without a bound of its own an entry add still trims (approximately, which is cheap), so a
    // stream can never grow without limit (RELIABILITY.md X-6).
    const trim =
      body.maxLen === undefined
        ? ['MAXLEN', '~', maxLength]
        : ['MAXLEN', body.approximate ? '~' : '=', body.maxLen];
    return [...trim, body.id ?? '*', ...fields];
  }

  /**
   * Where an Idempotency-Key is remembered: per caller and stream, in the stream's hash slot
   * (one script writes both), under the gateway's own namespace.
   */
  private idempotencyRecord(principal: Principal, key: string, idempotencyKey: string): string {
    const digest = createHash('sha256')
      .update(`${principal.sub}\0${key}\0${idempotencyKey}`)
      .digest('hex');
    return this.keyspace.reservedKeyInSlotOf(key, 'idem', digest);
  }

  private count(value: number | undefined, fallback: number, field: string): number {
    const max = this.config.limits.maxScanCount;
    if (value !== undefined && value > max) {
      throw AppError.validation([
        { field, message: `must be at most ${max} (limits.maxScanCount)` },
      ]);
    }
    // A default never goes past the configured cap either.
    return value ?? Math.min(fallback, max);
  }

  private checkBatch(length: number, field: string): void {
    const max = this.config.limits.maxBatchKeys;
    if (length > max) {
      throw AppError.validation([
        { field, message: `must hold at most ${max} items (limits.maxBatchKeys)` },
      ]);
    }
  }

  /** Group and consumer names follow the rules for names (API.md); they are not keys. */
  private checkNames(names: Record<string, string>): void {
    const errors: FieldError[] = [];
    for (const [field, value] of Object.entries(names)) {
      const problem = this.keyspace.nameProblem(value);
      if (problem) {
        errors.push({ field, message: `${field} ${problem}` });
      }
    }
    if (errors.length > 0) {
      throw AppError.validation(errors);
    }
  }
}

const MAX_ID_PART = 2n ** 64n - 1n;

/**
 * Range bounds Redis refuses with an error of its own (a 500 otherwise): a part past 64 bits,
 * an exclusive start after the largest id, an exclusive end before 0-0. A bound without a
 * sequence means `<ms>-0` as a start and `<ms>-<max>` as an end, as in Redis.
 */
function checkBounds(start: string, end: string): void {
  const errors: FieldError[] = [];
  for (const [field, bound, edge] of [
    ['start', start, MAX_ID_PART],
    ['end', end, 0n],
  ] as const) {
    if (bound === '-' || bound === '+') {
      continue;
    }
    const exclusive = bound.startsWith('(');
    const parts = (exclusive ? bound.slice(1) : bound).split('-').map(BigInt);
    if (parts.some((part) => part > MAX_ID_PART)) {
      errors.push({ field, message: `${field} must be a stream entry id (parts of 64 bits)` });
    } else if (exclusive && parts.length === 2 && parts.every((part) => part === edge)) {
      errors.push({ field, message: `${field} leaves no entry id in the range` });
    }
  }
  if (errors.length > 0) {
    throw AppError.validation(errors);
  }
}

/** What a retry must repeat exactly to be the same request. */
function fingerprint(args: ScriptArg[]): string {
  const hash = createHash('sha256');
  for (const arg of args) {
    hash.update(typeof arg === 'number' ? String(arg) : arg);
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}

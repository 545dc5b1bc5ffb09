import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { Names } from '../common/names';
import { ValueCodec } from '../common/value-codec';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';
import { RedisExecutor } from '../redis/executor';
import { Keyspace } from '../redis/keys';
import { RedisScripts, transactionReplies, type ScriptRunner } from '../redis/scripts';
import type { ScriptArg } from '../redis/types';
import {
  ENTRY_ID,
  type AddEntryDto,
  type RangeQuery,
  type TrimDto,
} from './dto/streams-requests.dto';
import type {
  EntriesDto,
  EntryIdDto,
  StreamInfoDto,
  TrimmedDto,
} from './dto/streams-responses.dto';
import { pairs, toEntries, type RawEntry } from './entries';

export const DEFAULT_RANGE_COUNT = 100;
/** Idempotency-Key: printable ASCII, as common practice (IETF draft) has it. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Entries of streams: adds (idempotent with a key), ranges, the stream's info, trimming. */
@Injectable()
export class StreamsService {
  private readonly addIdempotent: ScriptRunner;
  /** XRANGE within a byte budget (also the catch-up of stream tails). */
  readonly rangeBounded: ScriptRunner;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly access: KeyAccess,
    private readonly keyspace: Keyspace,
    private readonly names: Names,
    private readonly codec: ValueCodec,
    private readonly config: AppConfig,
    scripts: RedisScripts,
  ) {
    this.addIdempotent = scripts.load(join(__dirname, 'scripts', 'xadd-idempotent-2.lua'));
    this.rangeBounded = scripts.load(join(__dirname, 'scripts', 'xrange-bounded-1.lua'), {
      buffers: true,
    });
  }

  async add(
    principal: Principal,
    name: string,
    body: AddEntryDto,
    idempotencyKey: string | undefined,
  ): Promise<EntryIdDto> {
    const key = this.access.redisKey(principal, name);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw AppError.validation([
        { field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters' },
      ]);
    }
    const args = this.addArguments(body);
    const id = await this.redis.run('streams.add', 'write', (client) =>
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
    const key = this.access.redisKey(principal, name);
    const count = this.names.count(query.count, DEFAULT_RANGE_COUNT);
    const start = query.start ?? '-';
    const end = query.end ?? '+';
    checkBounds(start, end);
    const { maxResponseBytes } = this.config.limits;
    const [exists, truncated, raw] = (await this.redis.run('streams.range', 'read', (client) =>
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
    const key = this.access.redisKey(principal, name);
    const reply = await this.redis.run('streams.info', 'read', (client) =>
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
    const key = this.access.redisKey(principal, name);
    // The same pattern the document gives the path parameter.
    if (!ENTRY_ID.test(id)) {
      throw AppError.validation([{ field: 'id', message: 'must be a stream entry id' }]);
    }
    const deleted = await this.redis.run('streams.delete_entry', 'write', (client) =>
      client.xdel(key, id),
    );
    if (deleted === 0) {
      throw AppError.notFound('The entry');
    }
  }

  async trim(principal: Principal, name: string, body: TrimDto): Promise<TrimmedDto> {
    const key = this.access.redisKey(principal, name);
    if (body.maxLen === undefined && body.minId === undefined) {
      throw AppError.validation([{ field: 'maxLen', message: 'give maxLen or minId' }]);
    }
    const strategy =
      body.maxLen === undefined ? ['MINID', body.minId as string] : ['MAXLEN', body.maxLen];
    const [exists, trimmed] = await this.redis.run('streams.trim', 'write', async (client) =>
      transactionReplies(
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

  /** XADD's arguments after the key: trimming, id, then the fields. */
  private addArguments(body: AddEntryDto): ScriptArg[] {
    const { maxLength } = this.config.streams;
    const names = Object.keys(body.fields);
    if (names.length === 0) {
      throw AppError.validation([{ field: 'fields', message: 'must hold at least one field' }]);
    }
    this.names.checkBatch(names.length, 'fields');
    if (body.maxLen !== undefined && body.maxLen > maxLength) {
      throw AppError.validation([
        { field: 'maxLen', message: `must be at most ${maxLength} (streams.maxLength)` },
      ]);
    }
    const errors: FieldError[] = [];
    const fields: ScriptArg[] = [];
    for (const field of names) {
      const problem = this.names.problem(field);
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
    // stream can never grow without limit.
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

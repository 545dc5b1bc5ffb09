import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { Names } from '../common/names';
import { ValueCodec, type Encoding } from '../common/value-codec';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';
import type { IncrDto } from '../kv/dto/kv-requests.dto';
import { RedisExecutor } from '../redis/executor';
import { INCR_CHECKED_SCRIPT, RedisScripts, type ScriptRunner } from '../redis/scripts';
import type { ScriptArg } from '../redis/types';
import type { HashMgetDto, PutHashDto } from './dto/hash-requests.dto';
import type { HashAddedDto, HashCounterDto, HashDto, HashFieldDto } from './dto/hash-responses.dto';

/**
 * Hashes: whole hashes, single fields, HMGET, a merging HSET with an optional
 * TTL, and HINCRBY. Field names are validated like every name, but only the key is authorised
 * against the token's key patterns: fields are inside a key the caller may use.
 */
@Injectable()
export class HashesService {
  private readonly hgetallBytes: ScriptRunner;
  private readonly hsetExpire: ScriptRunner;
  private readonly deleteHash: ScriptRunner;
  private readonly hincrChecked: ScriptRunner;
  private readonly hgetBounded: ScriptRunner;
  private readonly hmgetBounded: ScriptRunner;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly access: KeyAccess,
    private readonly names: Names,
    private readonly codec: ValueCodec,
    private readonly config: AppConfig,
    scripts: RedisScripts,
  ) {
    const script = (file: string, buffers = false) =>
      scripts.load(join(__dirname, 'scripts', file), { buffers });
    this.hgetallBytes = script('hgetall-bytes-1.lua', true);
    this.hsetExpire = script('hset-expire-1.lua');
    this.deleteHash = script('delete-hash-1.lua');
    this.hgetBounded = script('hget-bounded-1.lua', true);
    this.hmgetBounded = script('hmget-bounded-1.lua', true);
    this.hincrChecked = scripts.load(INCR_CHECKED_SCRIPT);
  }

  /**
   * Every field of a hash (HGETALL); stored field names must be UTF-8 like every name. A hash
   * larger than limits.maxResponseBytes is not read (413).
   */
  async get(principal: Principal, name: string, encoding: Encoding = 'utf8'): Promise<HashDto> {
    const key = this.hashKey(principal, name);
    const reply = await this.redis.run(
      'hashes.get',
      'read',
      (client) => this.hgetallBytes([key], [this.maxResponseBytes], client) as Promise<Buffer[]>,
      (pairs) => Array.isArray(pairs) && pairs.length === 0,
    );
    this.checkBounded(reply);
    if (reply.length === 0) {
      throw AppError.notFound('The hash');
    }
    const fields: [string, string][] = [];
    for (let index = 0; index < reply.length; index += 2) {
      fields.push([this.fieldName(reply[index]), this.codec.encode(reply[index + 1], encoding)]);
    }
    return { key: name, fields: Object.fromEntries(fields), encoding };
  }

  async getField(
    principal: Principal,
    name: string,
    field: string,
    encoding: Encoding = 'utf8',
  ): Promise<HashFieldDto> {
    const key = this.hashKey(principal, name, this.fieldProblems([['field', field]]));
    const bytes = await this.redis.run(
      'hashes.get_field',
      'read',
      (client) =>
        this.hgetBounded([key], [field, this.maxResponseBytes], client) as Promise<Buffer | null>,
      (value) => value === null,
    );
    this.checkBounded(bytes);
    if (bytes === null) {
      throw AppError.notFound('The hash or the field');
    }
    return { key: name, field, value: this.codec.encode(bytes, encoding), encoding };
  }

  /**
   * The values of many fields (HMGET), each once; only the fields that exist appear in the
   * answer. Nothing is read when they are larger together than limits.maxResponseBytes (413).
   */
  async mget(principal: Principal, name: string, body: HashMgetDto): Promise<HashDto> {
    this.checkCount(body.fields.length);
    const named = body.fields.map((field, index): [string, string] => [`fields[${index}]`, field]);
    const key = this.hashKey(principal, name, this.fieldProblems(named));
    const fields = [...new Set(body.fields)];
    const names = fields.reduce((sum, field) => sum + Buffer.byteLength(field), 0);
    const values = await this.redis.run(
      'hashes.mget',
      'read',
      (client) =>
        this.hmgetBounded([key], [this.maxResponseBytes - names, ...fields], client) as Promise<
          (Buffer | null)[]
        >,
    );
    this.checkBounded(values);
    const hits = fields.flatMap((field, index) => {
      const bytes = values[index];
      return bytes === null ? [] : [[field, this.codec.encode(bytes, body.encoding)] as const];
    });
    return { key: name, fields: Object.fromEntries(hits), encoding: body.encoding ?? 'utf8' };
  }

  /** Merges fields into the hash (HSET), and sets its expiry in the same step when asked. */
  async put(principal: Principal, name: string, body: PutHashDto): Promise<HashAddedDto> {
    const entries = Object.entries(body.fields);
    this.checkCount(entries.length);
    // An invalid name is not echoed back (it may be long or unprintable): one error per rule.
    const problems = new Set(entries.flatMap(([field]) => this.names.problem(field) ?? []));
    const key = this.hashKey(
      principal,
      name,
      [...problems].map((problem) => ({ field: 'fields', message: `field names ${problem}` })),
    );
    const args: ScriptArg[] = [body.ttl ?? 0];
    for (const [field, value] of entries) {
      args.push(field, this.codec.decode(value, body.encoding, `fields.${field}`));
    }
    const added = await this.redis.run(
      'hashes.put',
      'write',
      (client) => this.hsetExpire([key], args, client) as Promise<number>,
    );
    return { key: name, added };
  }

  /** Deletes the key only when it holds a hash (409 WRONG_TYPE otherwise, nothing deleted). */
  async delete(principal: Principal, name: string): Promise<void> {
    const key = this.hashKey(principal, name);
    const deleted = await this.redis.run(
      'hashes.delete',
      'write',
      (client) => this.deleteHash([key], [], client) as Promise<number>,
      (n) => n === 0,
    );
    if (deleted === 0) {
      throw AppError.notFound('The hash');
    }
  }

  async deleteField(principal: Principal, name: string, field: string): Promise<void> {
    const key = this.hashKey(principal, name, this.fieldProblems([['field', field]]));
    const deleted = await this.redis.run(
      'hashes.delete_field',
      'write',
      (client) => client.hdel(key, field),
      (n) => n === 0,
    );
    if (deleted === 0) {
      throw AppError.notFound('The hash or the field');
    }
  }

  /** HINCRBY for an integer `by`, HINCRBYFLOAT otherwise; out-of-range results are refused. */
  async incr(
    principal: Principal,
    name: string,
    field: string,
    body: IncrDto,
  ): Promise<HashCounterDto> {
    const key = this.hashKey(principal, name, this.fieldProblems([['field', field]]));
    const by = body.by ?? 1;
    const value = await this.redis.run('hashes.incr', 'write', (client) =>
      this.hincrChecked([key], [String(by), Number.isInteger(by) ? 'int' : 'float', field], client),
    );
    return { key: name, field, value: Number(value) };
  }

  /**
   * Checks the key together with the field names (a 400 lists every bad one), then authorises
   * the key alone (403) and returns the Redis key.
   */
  private hashKey(principal: Principal, name: string, fieldErrors: FieldError[] = []): string {
    return this.access.redisKey(principal, name, 'key', fieldErrors);
  }

  /** Validation errors for field names given as [where, name]: the same rules as for keys. */
  private fieldProblems(named: [where: string, field: string][]): FieldError[] {
    return this.names.problems(named);
  }

  /** A bounded script answers the size it found, a number, where the data would not fit. */
  private checkBounded(reply: unknown): void {
    if (typeof reply === 'number') {
      throw AppError.responseTooLarge(this.maxResponseBytes);
    }
  }

  private get maxResponseBytes(): number {
    return this.config.limits.maxResponseBytes;
  }

  private checkCount(count: number): void {
    this.names.checkBatch(count, 'fields');
  }

  /** A stored field name: names are UTF-8 text, so other bytes are refused, never mangled. */
  private fieldName(bytes: Buffer): string {
    try {
      return this.codec.encode(bytes, 'utf8');
    } catch {
      throw new AppError(
        'NOT_UTF8',
        'A field name in the hash is not valid UTF-8 text; binary field names are not supported.',
      );
    }
  }
}

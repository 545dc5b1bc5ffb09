import { Injectable } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { Names } from '../common/names';
import { ValueCodec, type Encoding } from '../common/value-codec';
import { AppError } from '../errors/app-error';
import { NearCache } from '../near-cache/near-cache';
import { SlotRouter } from '../redis/cluster';
import { RedisExecutor } from '../redis/executor';
import { Keyspace } from '../redis/keys';
import {
  INCR_CHECKED_SCRIPT,
  RedisScripts,
  transactionReplies,
  type ScriptRunner,
} from '../redis/scripts';
import type * as Req from './dto/kv-requests.dto';
import type * as Res from './dto/kv-responses.dto';
import { KvReads, type ReadBytes } from './kv-reads';

const DEFAULT_SCAN_COUNT = 100;
/** SCAN calls one page may spend looking for matches before it hands back a cursor. */
const MAX_SCAN_ROUNDS = 16;

interface SetRequest {
  bytes: Buffer;
  ttl?: number;
  nx?: boolean;
  xx?: boolean;
  keepTtl?: boolean;
}

const missing = (what: string) => AppError.notFound(what);

/** The names of a batch, each once, in the order of their first mention. */
const distinct = (names: readonly string[]): string[] => [...new Set(names)];

/** SET's options: EX or KEEPTTL, then NX or XX; contradictions are a 400. */
function setArguments(request: SetRequest): (string | number)[] {
  if (request.nx && request.xx) {
    throw AppError.validation([{ field: 'xx', message: 'nx and xx exclude each other' }]);
  }
  if (request.keepTtl && request.ttl !== undefined) {
    throw AppError.validation([
      { field: 'keepTtl', message: 'keepTtl and ttl exclude each other' },
    ]);
  }
  const args: (string | number)[] = [];
  if (request.ttl !== undefined) {
    args.push('EX', request.ttl);
  } else if (request.keepTtl) {
    args.push('KEEPTTL');
  }
  if (request.nx) {
    args.push('NX');
  } else if (request.xx) {
    args.push('XX');
  }
  return args;
}

/** Key-value on strings: GET/SET with TTL, batches, SCAN, TTL and INCR. */
@Injectable()
export class KvService {
  private readonly incrChecked: ScriptRunner;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly router: SlotRouter,
    private readonly access: KeyAccess,
    private readonly keyspace: Keyspace,
    private readonly names: Names,
    private readonly codec: ValueCodec,
    private readonly reads: KvReads,
    private readonly near: NearCache,
    scripts: RedisScripts,
  ) {
    this.incrChecked = scripts.load(INCR_CHECKED_SCRIPT);
  }

  /** A value as JSON, and where it came from (with the near-cache on). */
  async get(
    principal: Principal,
    name: string,
    encoding: Encoding = 'utf8',
  ): Promise<{ dto: Res.ValueDto; cache?: ReadBytes['cache'] }> {
    const { bytes, ttl, cache } = await this.getBytes(principal, name);
    return { dto: { key: name, value: this.codec.encode(bytes, encoding), ttl, encoding }, cache };
  }

  /** The stored bytes and TTL, read together atomically (a read-only script, see its header). */
  getBytes(principal: Principal, name: string): Promise<ReadBytes> {
    return this.reads.one(name, this.access.redisKey(principal, name));
  }

  /**
   * One page of keys under a prefix: SCAN with a literal MATCH, confined to the key prefix; in
   * cluster mode over every master, behind one opaque cursor (KeyScan).
   */
  async list(principal: Principal, query: Req.ListKeysQuery): Promise<Res.KeyListDto> {
    const prefix = query.prefix ?? '';
    const problem = this.names.problem(prefix, { allowEmpty: true });
    if (problem) {
      throw AppError.validation([{ field: 'prefix', message: `prefix ${problem}` }]);
    }
    const count = this.names.count(query.count, DEFAULT_SCAN_COUNT);
    const match = this.keyspace.matchPattern(prefix);
    const scan = this.router.scan(query.cursor ?? '0');
    return this.redis.run('kv.scan', 'read', async (client) => {
      const keys: string[] = [];
      let rounds = 0;
      do {
        for (const redisKey of await scan.step(client, match, count)) {
          const name = this.access.visibleName(principal, redisKey);
          if (name !== null) {
            keys.push(name);
          }
        }
      } while (!scan.finished && keys.length < count && ++rounds < MAX_SCAN_ROUNDS);
      return { keys, cursor: scan.next };
    });
  }

  create(principal: Principal, body: Req.CreateValueDto): Promise<Res.KeyTtlDto> {
    if (body.ttl !== undefined && body.expire !== undefined && body.ttl !== body.expire) {
      throw AppError.validation([
        { field: 'expire', message: 'give either ttl or expire, not both' },
      ]);
    }
    const key = this.access.redisKey(principal, body.key);
    const bytes = this.codec.decode(body.value, body.encoding);
    return this.set(body.key, key, {
      ...this.conditions(body),
      bytes,
      ttl: body.ttl ?? body.expire,
    });
  }

  /** PUT with a JSON body, or with raw octets whose options come in the query string. */
  put(
    principal: Principal,
    name: string,
    body: Req.PutValueDto | Buffer,
    query: Req.RawPutQuery,
  ): Promise<Res.KeyTtlDto> {
    const key = this.access.redisKey(principal, name);
    if (Buffer.isBuffer(body)) {
      this.codec.checkSize(body.length);
      return this.set(name, key, {
        ...this.conditions(query),
        bytes: body,
        ttl: query.ttl,
        keepTtl: query.keepTtl,
      });
    }
    const optionsInQuery = Object.values(query).some((value) => value !== undefined);
    if (optionsInQuery) {
      throw AppError.validation([
        {
          field: 'query',
          message: 'options go in the JSON body; the query string carries them for raw bodies only',
        },
      ]);
    }
    const bytes = this.codec.decode(body.value, body.encoding);
    return this.set(name, key, {
      ...this.conditions(body),
      bytes,
      ttl: body.ttl,
      keepTtl: body.keepTtl,
    });
  }

  async delete(principal: Principal, name: string): Promise<void> {
    const key = this.access.redisKey(principal, name);
    const deleted = await this.near.writing([key], () =>
      this.redis.run(
        'kv.delete',
        'write',
        (client) => client.del(key),
        (n) => n === 0,
      ),
    );
    if (deleted === 0) {
      throw missing('The key');
    }
  }

  /**
   * The values of many keys; only the keys that exist appear in the answer, each once. Nothing
   * is read when the values together are larger than limits.maxResponseBytes (413). In cluster
   * mode one bounded MGET per hash slot (each atomic, the whole not a snapshot).
   */
  async mget(
    principal: Principal,
    body: Req.MgetDto,
  ): Promise<{ dto: Res.ValuesDto; cache?: ReadBytes['cache'] }> {
    const names = distinct(body.keys);
    const keys = this.batchKeys(principal, names);
    const { values, cache } = await this.reads.many(names, keys);
    const hits = names.flatMap((name, index) => {
      const bytes = values[index];
      return bytes === null ? [] : [[name, this.codec.encode(bytes, body.encoding)] as const];
    });
    return { dto: { values: Object.fromEntries(hits) }, cache };
  }

  /** DEL of many keys, each once; in cluster mode one DEL per hash slot (each atomic, the whole not). */
  async deleteMany(principal: Principal, body: Req.KeysDto): Promise<Res.DeletedDto> {
    const keys = this.batchKeys(principal, distinct(body.keys));
    const deleted = await this.near.writing(keys, () =>
      this.redis.run('kv.delete_many', 'write', (client) =>
        this.router.countEachSlot(keys, (group) => client.del(...group)),
      ),
    );
    return { deleted };
  }

  async getTtl(principal: Principal, name: string): Promise<Res.KeyTtlDto> {
    const key = this.access.redisKey(principal, name);
    const ttl = await this.redis.run(
      'kv.ttl',
      'read',
      (client) => client.ttl(key),
      (t) => t === -2,
    );
    if (ttl === -2) {
      throw missing('The key');
    }
    return { key: name, ttl };
  }

  async setTtl(principal: Principal, name: string, ttl: number): Promise<Res.KeyTtlDto> {
    const key = this.access.redisKey(principal, name);
    const applied = await this.near.writing([key], () =>
      this.redis.run(
        'kv.expire',
        'write',
        (client) => client.expire(key, ttl),
        (n) => n === 0,
      ),
    );
    if (applied === 0) {
      throw missing('The key');
    }
    return { key: name, ttl };
  }

  async persist(principal: Principal, name: string): Promise<Res.KeyTtlDto> {
    const key = this.access.redisKey(principal, name);
    const [exists] = await this.near.writing([key], () =>
      this.redis.run(
        'kv.persist',
        'write',
        async (client) => transactionReplies(await client.multi().exists(key).persist(key).exec()),
        ([n]) => n === 0,
      ),
    );
    if (exists === 0) {
      throw missing('The key');
    }
    return { key: name, ttl: -1 };
  }

  async incr(principal: Principal, name: string, body: Req.IncrDto): Promise<Res.CounterDto> {
    const key = this.access.redisKey(principal, name);
    const by = body.by ?? 1;
    const value = await this.near.writing([key], () =>
      this.redis.run('kv.incr', 'write', (client) =>
        this.incrChecked([key], [String(by), Number.isInteger(by) ? 'int' : 'float'], client),
      ),
    );
    return { key: name, value: Number(value) };
  }

  private async set(name: string, key: string, request: SetRequest): Promise<Res.KeyTtlDto> {
    const args = setArguments(request);
    const [reply, ttl] = await this.near.writing([key], () =>
      this.redis.run(
        'kv.set',
        'write',
        async (client) =>
          request.keepTtl
            ? transactionReplies(
                await client
                  .multi()
                  .call('SET', key, request.bytes, ...args)
                  .ttl(key)
                  .exec(),
              )
            : [await client.call('SET', key, request.bytes, ...args), request.ttl ?? -1],
        ([result]) => result === null,
      ),
    );
    if (reply === null) {
      throw new AppError(
        'CONDITION_FAILED',
        request.nx ? 'The key already exists (nx).' : 'The key does not exist (xx).',
      );
    }
    return { key: name, ttl: ttl as number };
  }

  private conditions(options: Pick<Req.SetOptions, 'nx' | 'xx'>): Pick<SetRequest, 'nx' | 'xx'> {
    return { nx: options.nx, xx: options.xx };
  }

  private batchKeys(principal: Principal, names: string[]): string[] {
    this.names.checkBatch(names.length, 'keys');
    return this.access.redisKeys(principal, names);
  }
}

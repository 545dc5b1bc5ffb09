import { TestApp } from '../support/app';
import { eventually } from '../support/ports';
import { expectProblem, expectScopeGuarded } from '../support/problems';

interface RawPutOptions {
  token?: string;
  contentType?: string;
  query?: Record<string, string>;
}

/** Percent-encodes a name for a path segment. */
const at = (name: string) => `/redis/kv/${encodeURIComponent(name)}`;
/** NEAR_CACHE set: the whole suite again with the near-cache on, which must change no answer. */
const nearCache = Boolean(process.env.NEAR_CACHE);

describe('key-value API', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      config: {
        limits: { maxValueBytes: 4096, maxBatchKeys: 5 },
        nearCache: { enabled: nearCache },
      },
    });
    if (nearCache) {
      await eventually(async () => {
        const status = await t.call('GET', '/redis/status', { token: t.tokens.read });
        expect(status.json().gateway.nearCache.trackingArmed).toBe(true);
      }, 15000);
    }
  });

  afterAll(async () => {
    await t.close();
  });

  const put = (name: string, body: unknown) =>
    t.call('PUT', at(name), { token: t.tokens.write, body });
  /**
   * A read; with the near-cache on it is made twice, and the second answer (from memory once
   * the first was kept) must be the first's: the same status, headers but X-Cache, and body,
   * the TTL allowed to have ticked down by a second.
   */
  const get = async (name: string, query?: Record<string, string>) => {
    const read = () => t.call('GET', at(name), { token: t.tokens.read, query });
    const first = await read();
    if (nearCache) {
      const again = await read();
      expect(again.statusCode).toBe(first.statusCode);
      expect(again.headers['content-type']).toBe(first.headers['content-type']);
      const json = String(first.headers['content-type']).includes('json');
      // Each answer has a request id of its own.
      const body = (response: typeof first): unknown =>
        json ? { ...response.json<object>(), ttl: undefined, requestId: undefined } : response.body;
      expect(body(again)).toEqual(body(first));
      const ttl = (response: typeof first) => response.json<{ ttl?: number }>().ttl;
      if (json && ttl(first) !== undefined) {
        expect(ttl(first)! - ttl(again)!).toBeLessThanOrEqual(1);
      }
    }
    return first;
  };
  const raw = (name: string) => t.redis.getBuffer(t.prefix + name);

  it('runs on the Redis topology of its test project (standalone, sentinel or cluster)', async () => {
    const status = await t.call('GET', '/redis/status', { token: t.tokens.read });
    expect(status.statusCode).toBe(200);
    expect(status.json().redis).toMatchObject({ mode: t.topology, role: 'master' });
  });

  describe('GET /redis/kv/{key} and PUT /redis/kv/{key}', () => {
    it('stores a value under the key prefix and reads it back with its TTL', async () => {
      const written = await put('user:1', { value: 'Ada' });
      expect(written.statusCode).toBe(200);
      expect(written.json()).toEqual({ key: 'user:1', ttl: -1 });
      expect((await raw('user:1'))?.toString()).toBe('Ada');

      const read = await get('user:1');
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual({ key: 'user:1', value: 'Ada', ttl: -1, encoding: 'utf8' });
    });

    it('sets a TTL in seconds', async () => {
      expect((await put('session', { value: 's', ttl: 60 })).json()).toEqual({
        key: 'session',
        ttl: 60,
      });
      const ttl = await t.redis.ttl(`${t.prefix}session`);
      expect(ttl).toBeGreaterThan(55);
      expect((await get('session')).json().ttl).toBeGreaterThan(55);
    });

    it('answers a miss with 404 NOT_FOUND, never 500', async () => {
      expectProblem(await get('absent'), 404, 'NOT_FOUND');
    });

    it('nx writes only a new key and xx only an existing one (409 CONDITION_FAILED otherwise)', async () => {
      expect((await put('cond', { value: '1', nx: true })).statusCode).toBe(200);
      expectProblem(await put('cond', { value: '2', nx: true }), 409, 'CONDITION_FAILED');
      expect((await raw('cond'))?.toString()).toBe('1');
      expect((await put('cond', { value: '3', xx: true })).statusCode).toBe(200);
      expectProblem(await put('cond-absent', { value: '3', xx: true }), 409, 'CONDITION_FAILED');
      expect(await raw('cond-absent')).toBeNull();
    });

    it('keepTtl keeps the expiry and reports it', async () => {
      await put('kept', { value: 'a', ttl: 100 });
      const response = await put('kept', { value: 'b', keepTtl: true });
      expect(response.statusCode).toBe(200);
      expect(response.json().ttl).toBeGreaterThan(95);
      expect(await t.redis.ttl(`${t.prefix}kept`)).toBeGreaterThan(95);
      expect((await raw('kept'))?.toString()).toBe('b');
    });

    it('round-trips arbitrary bytes as base64', async () => {
      const bytes = Buffer.from([0, 255, 10, 13, 0x80, 0xfe]);
      const response = await put('bin', { value: bytes.toString('base64'), encoding: 'base64' });
      expect(response.statusCode).toBe(200);
      expect(await raw('bin')).toEqual(bytes);
      expect((await get('bin', { encoding: 'base64' })).json().value).toBe(
        bytes.toString('base64'),
      );
    });

    it('keeps a leading byte order mark (U+FEFF) of a text value', async () => {
      expect((await put('bom', { value: '\uFEFFtext' })).statusCode).toBe(200);
      expect((await raw('bom'))?.toString('hex')).toBe('efbbbf74657874');
      expect((await get('bom')).json().value).toBe('\uFEFFtext');
    });

    it('refuses to return bytes that are not UTF-8 as text (406 NOT_UTF8)', async () => {
      await t.redis.set(`${t.prefix}latin1`, Buffer.from([0xe9, 0x74, 0xe9]));
      expectProblem(await get('latin1'), 406, 'NOT_UTF8');
    });

    it('stores and returns raw octets with application/octet-stream', async () => {
      const bytes = Buffer.from([1, 2, 3, 0, 255]);
      const written = await t.call('PUT', at('raw'), {
        token: t.tokens.write,
        body: bytes,
        headers: { 'content-type': 'application/octet-stream' },
        query: { ttl: '30' },
      });
      expect(written.statusCode).toBe(200);
      expect(written.json()).toEqual({ key: 'raw', ttl: 30 });
      expect(await raw('raw')).toEqual(bytes);

      const read = await t.call('GET', at('raw'), {
        token: t.tokens.read,
        headers: { accept: 'application/octet-stream' },
      });
      expect(read.statusCode).toBe(200);
      expect(read.headers['content-type']).toBe('application/octet-stream');
      expect(Number(read.headers['x-ttl'])).toBeGreaterThan(25);
      expect(read.rawPayload).toEqual(bytes);
    });

    it('takes raw-body options from the query only for raw bodies', async () => {
      const response = await t.call('PUT', at('mixed'), {
        token: t.tokens.write,
        body: { value: 'x' },
        query: { ttl: '5' },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(await raw('mixed')).toBeNull();
    });

    it('answers 409 WRONG_TYPE when the key holds another type', async () => {
      await t.redis.hset(`${t.prefix}a-hash`, 'f', 'v');
      expectProblem(await get('a-hash'), 409, 'WRONG_TYPE');
    });

    it('reads and writes keys with slashes, spaces and non-ASCII text', async () => {
      for (const name of ['a/b/c', 'with space', 'émoji-🔑', 'q?x=1#frag', 'ttl', '_mget']) {
        expect((await put(name, { value: name })).statusCode).toBe(200);
        expect((await get(name)).json().value).toBe(name);
        expect((await raw(name))?.toString()).toBe(name);
      }
    });

    it('stores NFC and NFD spellings as distinct keys (no normalisation)', async () => {
      const nfc = 'caf\u00e9';
      const nfd = 'cafe\u0301';
      await put(nfc, { value: 'nfc' });
      await put(nfd, { value: 'nfd' });
      expect((await get(nfc)).json().value).toBe('nfc');
      expect((await get(nfd)).json().value).toBe('nfd');
    });
  });

  describe('PUT /redis/kv/{key}/raw (the raw bytes, one media type)', () => {
    const rawAt = (name: string) => `${at(name)}/raw`;
    const putRaw = (name: string, body: Buffer | string, options: RawPutOptions = {}) =>
      t.call('PUT', rawAt(name), {
        token: options.token ?? t.tokens.write,
        body,
        headers: { 'content-type': options.contentType ?? 'application/octet-stream' },
        query: options.query,
      });

    it('stores the bytes as they came, with the options from the query', async () => {
      const bytes = Buffer.from([0, 1, 2, 254, 255]);
      const written = await putRaw('raw-route', bytes, { query: { ttl: '60' } });
      expect(written.statusCode).toBe(200);
      expect(written.json()).toEqual({ key: 'raw-route', ttl: 60 });
      expect(await raw('raw-route')).toEqual(bytes);
      const conflict = await putRaw('raw-route', Buffer.from('again'), { query: { nx: 'true' } });
      expectProblem(conflict, 409, 'CONDITION_FAILED');
      expect(await raw('raw-route')).toEqual(bytes);
    });

    it('refuses a JSON body (415) and writes nothing', async () => {
      const response = await putRaw('raw-json', JSON.stringify({ value: 'x' }), {
        contentType: 'application/json',
      });
      expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(await raw('raw-json')).toBeNull();
    });

    it('answers 413 one byte past limits.maxValueBytes and writes nothing', async () => {
      expect((await putRaw('raw-at-limit', Buffer.alloc(4096, 7))).statusCode).toBe(200);
      expectProblem(await putRaw('raw-over', Buffer.alloc(4097, 7)), 413, 'PAYLOAD_TOO_LARGE');
      expect(await raw('raw-over')).toBeNull();
    });

    it('needs redis:write (403 for a read token) and writes nothing', async () => {
      const response = await putRaw('raw-scoped', Buffer.from('x'), { token: t.tokens.read });
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(await raw('raw-scoped')).toBeNull();
      await expectScopeGuarded(t, 'PUT', rawAt('raw-scoped'), 'write');
      expect(await raw('raw-scoped')).toBeNull();
    });
  });

  describe('GET /redis/kv?key= and POST /redis/kv (the query and body forms)', () => {
    it('POST creates with 201 and accepts expire as ttl', async () => {
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: 'posted', value: 'v', expire: 30 },
      });
      expect(response.statusCode).toBe(201);
      expect(response.json()).toEqual({ key: 'posted', ttl: 30 });
      expect(await t.redis.ttl(`${t.prefix}posted`)).toBeGreaterThan(25);
    });

    it('POST with nx on an existing key is 409 and changes nothing', async () => {
      await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: 'p2', value: 'one' },
      });
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: 'p2', value: 'two', nx: true },
      });
      expectProblem(response, 409, 'CONDITION_FAILED');
      expect((await raw('p2'))?.toString()).toBe('one');
    });

    it('POST refuses ttl and expire that disagree', async () => {
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: 'p3', value: 'v', ttl: 5, expire: 6 },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(await raw('p3')).toBeNull();
    });

    it('GET ?key= answers like GET /redis/kv/{key}', async () => {
      await put('query-key', { value: 'q' });
      const response = await t.call('GET', '/redis/kv', {
        token: t.tokens.read,
        query: { key: 'query-key' },
      });
      expect(response.json()).toEqual({ key: 'query-key', value: 'q', ttl: -1, encoding: 'utf8' });
      expectProblem(
        await t.call('GET', '/redis/kv', { token: t.tokens.read, query: { key: 'nope' } }),
        404,
        'NOT_FOUND',
      );
    });

    it('GET ?key= cannot be combined with listing parameters', async () => {
      const response = await t.call('GET', '/redis/kv', {
        token: t.tokens.read,
        query: { key: 'query-key', prefix: 'q' },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
    });
  });

  describe('DELETE /redis/kv/{key}', () => {
    it('deletes with 204, then 404', async () => {
      await put('doomed', { value: 'x' });
      const deleted = await t.call('DELETE', at('doomed'), { token: t.tokens.write });
      expect(deleted.statusCode).toBe(204);
      expect(deleted.body).toBe('');
      expect(await raw('doomed')).toBeNull();
      expectProblem(
        await t.call('DELETE', at('doomed'), { token: t.tokens.write }),
        404,
        'NOT_FOUND',
      );
    });
  });

  describe('POST /redis/kv/_mget and /_delete', () => {
    it('returns hits only, under the caller names', async () => {
      await put('m1', { value: 'one' });
      await put('m2', { value: 'two' });
      const response = await t.call('POST', '/redis/kv/_mget', {
        token: t.tokens.read,
        body: { keys: ['m1', 'missing', 'm2'] },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ values: { m1: 'one', m2: 'two' } });
    });

    it('keeps a key named __proto__ as data', async () => {
      await put('__proto__', { value: 'p' });
      const response = await t.call('POST', '/redis/kv/_mget', {
        token: t.tokens.read,
        body: { keys: ['__proto__'] },
      });
      expect(JSON.parse(response.body)).toEqual(JSON.parse('{"values":{"__proto__":"p"}}'));
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    });

    it('returns base64 on request', async () => {
      await t.redis.set(`${t.prefix}mb`, Buffer.from([0xff]));
      const response = await t.call('POST', '/redis/kv/_mget', {
        token: t.tokens.read,
        body: { keys: ['mb'], encoding: 'base64' },
      });
      expect(response.json()).toEqual({ values: { mb: '/w==' } });
    });

    it('deletes many and counts what existed', async () => {
      await put('d1', { value: '1' });
      await put('d2', { value: '2' });
      const response = await t.call('POST', '/redis/kv/_delete', {
        token: t.tokens.write,
        body: { keys: ['d1', 'd2', 'd3'] },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ deleted: 2 });
      // One key per EXISTS: in a cluster the two keys may live on different masters.
      expect(await t.redis.exists(`${t.prefix}d1`)).toBe(0);
      expect(await t.redis.exists(`${t.prefix}d2`)).toBe(0);
    });

    it('bounds the batch by limits.maxBatchKeys (400) and refuses an empty one', async () => {
      await put('kept-1', { value: '1' });
      const tooMany = await t.call('POST', '/redis/kv/_delete', {
        token: t.tokens.write,
        body: { keys: ['kept-1', 'b', 'c', 'd', 'e', 'f'] },
      });
      expectProblem(tooMany, 400, 'VALIDATION_FAILED');
      expect(await raw('kept-1')).not.toBeNull();
      expectProblem(
        await t.call('POST', '/redis/kv/_mget', { token: t.tokens.read, body: { keys: [] } }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('validates every name and deletes none when one is bad', async () => {
      const response = await t.call('POST', '/redis/kv/_delete', {
        token: t.tokens.write,
        body: { keys: ['kept-1', 'bad\nname'] },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'keys[1]', message: 'must not contain control characters' },
      ]);
      expect(await raw('kept-1')).not.toBeNull();
    });
  });

  describe('TTL: GET, PUT and DELETE /redis/kv/{key}/ttl', () => {
    it('reads, sets and removes an expiry', async () => {
      await put('ttl-key', { value: 'v' });
      expect(
        (await t.call('GET', `${at('ttl-key')}/ttl`, { token: t.tokens.read })).json(),
      ).toEqual({
        key: 'ttl-key',
        ttl: -1,
      });
      const set = await t.call('PUT', `${at('ttl-key')}/ttl`, {
        token: t.tokens.write,
        body: { ttl: 90 },
      });
      expect(set.statusCode).toBe(200);
      expect(set.json()).toEqual({ key: 'ttl-key', ttl: 90 });
      expect(await t.redis.ttl(`${t.prefix}ttl-key`)).toBeGreaterThan(85);
      const persisted = await t.call('DELETE', `${at('ttl-key')}/ttl`, { token: t.tokens.write });
      expect(persisted.statusCode).toBe(200);
      expect(persisted.json()).toEqual({ key: 'ttl-key', ttl: -1 });
      expect(await t.redis.ttl(`${t.prefix}ttl-key`)).toBe(-1);
    });

    it('answers 404 for a key that does not exist, and creates nothing', async () => {
      expectProblem(
        await t.call('GET', `${at('no-ttl')}/ttl`, { token: t.tokens.read }),
        404,
        'NOT_FOUND',
      );
      expectProblem(
        await t.call('PUT', `${at('no-ttl')}/ttl`, { token: t.tokens.write, body: { ttl: 5 } }),
        404,
        'NOT_FOUND',
      );
      expectProblem(
        await t.call('DELETE', `${at('no-ttl')}/ttl`, { token: t.tokens.write }),
        404,
        'NOT_FOUND',
      );
      expect(await raw('no-ttl')).toBeNull();
    });

    it.each([[-1], [0], [1.5], [2 ** 53 + 1], ['1e3'], ['0x10'], [null]])(
      'refuses ttl %p with 400',
      async (ttl) => {
        await put('ttl-bad', { value: 'v' });
        const response = await t.call('PUT', `${at('ttl-bad')}/ttl`, {
          token: t.tokens.write,
          body: { ttl },
        });
        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(await t.redis.ttl(`${t.prefix}ttl-bad`)).toBe(-1);
      },
    );
  });

  describe('POST /redis/kv/{key}/incr', () => {
    const incr = (name: string, body: unknown = {}) =>
      t.call('POST', `${at(name)}/incr`, { token: t.tokens.write, body });

    it('increments by 1, by an integer and by a decimal', async () => {
      expect((await incr('counter')).json()).toEqual({ key: 'counter', value: 1 });
      expect((await incr('counter', { by: 41 })).json()).toEqual({ key: 'counter', value: 42 });
      expect((await incr('counter', { by: -2 })).json().value).toBe(40);
      expect((await incr('counter', { by: 0.5 })).json().value).toBe(40.5);
      expect((await raw('counter'))?.toString()).toBe('40.5');
    });

    it('answers 409 NOT_A_NUMBER for text and leaves it alone', async () => {
      await put('text', { value: 'abc' });
      expectProblem(await incr('text'), 409, 'NOT_A_NUMBER');
      expectProblem(await incr('text', { by: 1.5 }), 409, 'NOT_A_NUMBER');
      expect((await raw('text'))?.toString()).toBe('abc');
    });

    it('answers 409 OUT_OF_RANGE instead of an inexact or infinite result, writing nothing', async () => {
      await t.redis.set(`${t.prefix}big`, String(Number.MAX_SAFE_INTEGER));
      expectProblem(await incr('big'), 409, 'OUT_OF_RANGE');
      expect((await raw('big'))?.toString()).toBe(String(Number.MAX_SAFE_INTEGER));
      await t.redis.set(`${t.prefix}low`, String(-Number.MAX_SAFE_INTEGER));
      expectProblem(await incr('low', { by: -1 }), 409, 'OUT_OF_RANGE');
      expect((await raw('low'))?.toString()).toBe(String(-Number.MAX_SAFE_INTEGER));
    });

    it('answers 409 WRONG_TYPE on a hash', async () => {
      await t.redis.hset(`${t.prefix}incr-hash`, 'f', '1');
      expectProblem(await incr('incr-hash'), 409, 'WRONG_TYPE');
    });

    it.each([['1'], [true], [Number.MAX_SAFE_INTEGER + 2], [{}]])(
      'refuses by=%p with 400',
      async (by) => {
        expectProblem(await incr('never', { by }), 400, 'VALIDATION_FAILED');
        expect(await raw('never')).toBeNull();
      },
    );
  });

  describe('GET /redis/kv?prefix= (SCAN)', () => {
    let s: TestApp;

    beforeAll(async () => {
      s = await TestApp.create({ issuer: t.issuer });
      const names = Array.from({ length: 30 }, (_, i) => `scan:${String(i).padStart(2, '0')}`);
      for (const name of names) {
        await s.redis.set(s.prefix + name, 'v');
      }
      await s.redis.set(`${s.prefix}other:1`, 'v');
      await s.redis.set(`${s.prefix}__gw:lock:scan`, 'secret');
      await s.redis.set(`${s.prefix}scan*literal`, 'v');
      // Another tenant's key, outside this app's prefix, that a naive SCAN would return.
      await s.redis.set(`${s.prefix.slice(0, -1)}X:scan:99`, 'v');
    });

    afterAll(async () => {
      await s.close();
    });

    async function listAll(
      query: Record<string, string>,
    ): Promise<{ keys: string[]; pages: number }> {
      const keys: string[] = [];
      let cursor = '0';
      let pages = 0;
      do {
        const response = await s.call('GET', '/redis/kv', {
          token: s.tokens.read,
          query: { ...query, cursor },
        });
        expect(response.statusCode).toBe(200);
        const page = response.json<{ keys: string[]; cursor: string }>();
        keys.push(...page.keys);
        cursor = page.cursor;
        pages++;
      } while (cursor !== '0' && pages < 100);
      return { keys: keys.sort(), pages };
    }

    it('pages through every key under a prefix and ends with cursor "0"', async () => {
      const { keys, pages } = await listAll({ prefix: 'scan:', count: '5' });
      expect(keys).toEqual(
        Array.from({ length: 30 }, (_, i) => `scan:${String(i).padStart(2, '0')}`),
      );
      expect(pages).toBeGreaterThan(1);
    });

    it('stays inside the key prefix and never lists the gateway namespace (Z-1)', async () => {
      const { keys } = await listAll({ count: '50' });
      expect(keys).toContain('other:1');
      expect(keys).toHaveLength(32);
      expect(keys.some((key) => key.startsWith('__gw:'))).toBe(false);
      expect(keys.some((key) => key.includes('X:scan'))).toBe(false);
    });

    it('treats glob characters in the prefix literally (I-4)', async () => {
      expect((await listAll({ prefix: 'scan*' })).keys).toEqual(['scan*literal']);
      expect((await listAll({ prefix: '[s]' })).keys).toEqual([]);
    });

    it('validates prefix, cursor and count', async () => {
      const bad = async (query: Record<string, string>) =>
        expectProblem(
          await s.call('GET', '/redis/kv', { token: s.tokens.read, query }),
          400,
          'VALIDATION_FAILED',
        );
      await bad({ prefix: 'a\u0007' });
      await bad({ cursor: 'abc' });
      await bad({ count: '0' });
      await bad({ count: '1e3' });
      await bad({ count: '100000' });
      await bad({ unknown: '1' });
    });
  });

  describe('scopes', () => {
    it('a read token cannot write (403 insufficient_scope) and nothing is written', async () => {
      const response = await t.call('PUT', at('scoped'), {
        token: t.tokens.read,
        body: { value: 'x' },
      });
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:write"',
      );
      expect(await raw('scoped')).toBeNull();
    });

    it('a write token cannot read', async () => {
      const response = await t.call('GET', at('scoped'), { token: t.tokens.write });
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:read"',
      );
    });

    it.each([
      ['GET', '/redis/kv', 'read'],
      ['POST', '/redis/kv', 'write'],
      ['POST', '/redis/kv/_mget', 'read'],
      ['POST', '/redis/kv/_delete', 'write'],
      ['GET', '/redis/kv/k', 'read'],
      ['PUT', '/redis/kv/k', 'write'],
      ['DELETE', '/redis/kv/k', 'write'],
      ['GET', '/redis/kv/k/ttl', 'read'],
      ['PUT', '/redis/kv/k/ttl', 'write'],
      ['DELETE', '/redis/kv/k/ttl', 'write'],
      ['POST', '/redis/kv/k/incr', 'write'],
    ] as const)('%s %s needs redis:%s and a token', async (method, url, scope) => {
      await expectScopeGuarded(t, method, url, scope, {});
      const allowed = await t.call(method, url, { token: t.tokens.both, body: {} });
      expect([200, 201, 204, 400, 404]).toContain(allowed.statusCode);
    });
  });

  describe('bad names and bodies: 400 and nothing written (I-1, I-2, I-3)', () => {
    async function expectNothingWritten(): Promise<void> {
      const keys = await t.storedKeys();
      expect(keys.filter((key) => key.startsWith('bad'))).toEqual([]);
    }

    it.each([
      ['CR', 'bad%0Dname'],
      ['LF', 'bad%0Aname'],
      ['CRLF', 'bad%0D%0Aname'],
      ['NUL', 'bad%00name'],
      ['ESC', 'bad%1Bname'],
      ['DEL', 'bad%7Fname'],
      ['C1 control', 'bad%C2%85name'],
      ['lone high surrogate', 'bad%ED%A0%80'],
      ['lone low surrogate', 'bad%ED%BF%BF'],
      ['overlong encoding', 'bad%C0%AF'],
      ['malformed escape', 'bad%E0%A4%A'],
      ['invalid UTF-8', 'bad%FF'],
    ])('refuses a name with %s', async (_label, encoded) => {
      const response = await t.call('PUT', `/redis/kv/${encoded}`, {
        token: t.tokens.write,
        body: { value: 'x' },
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      await expectNothingWritten();
    });

    it('refuses an empty name in a body', async () => {
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: '', value: 'x' },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([{ field: 'key', message: 'must not be empty' }]);
    });

    it('refuses lone surrogates in body names and values', async () => {
      const name = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: '{"key":"bad\\ud800","value":"x"}',
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(name, 400, 'VALIDATION_FAILED');
      const value = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: '{"key":"bad-value","value":"\\udbff"}',
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(value, 400, 'VALIDATION_FAILED');
      await expectNothingWritten();
    });

    it('accepts a name of limits.maxKeyBytes bytes and refuses one byte more (I-2)', async () => {
      const longest = 'k'.repeat(1024);
      expect((await put(longest, { value: 'x' })).statusCode).toBe(200);
      expect(await raw(longest)).not.toBeNull();
      const multibyte = 'é'.repeat(513); // 1026 bytes
      expectProblem(await put(`bad${multibyte}`, { value: 'x' }), 400, 'VALIDATION_FAILED');
      expectProblem(await put(`bad${'k'.repeat(1022)}`, { value: 'x' }), 400, 'VALIDATION_FAILED');
      await expectNothingWritten();
    });

    it('accepts a value of limits.maxValueBytes and answers 413 one byte over (I-2)', async () => {
      expect((await put('at-limit', { value: 'v'.repeat(4096) })).statusCode).toBe(200);
      expectProblem(await put('bad-over', { value: 'v'.repeat(4097) }), 413, 'PAYLOAD_TOO_LARGE');
      const bytes = Buffer.alloc(4097, 1).toString('base64');
      expectProblem(
        await put('bad-over64', { value: bytes, encoding: 'base64' }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      const rawOver = await t.call('PUT', at('bad-raw'), {
        token: t.tokens.write,
        body: Buffer.alloc(4097),
        headers: { 'content-type': 'application/octet-stream' },
      });
      expectProblem(rawOver, 413, 'PAYLOAD_TOO_LARGE');
      await expectNothingWritten();
    });

    it('answers 413 for a body over server.bodyLimitBytes', async () => {
      const response = await t.call('PUT', at('bad-body'), {
        token: t.tokens.write,
        body: JSON.stringify({ value: 'x'.repeat(3 * 1024 * 1024) }),
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(response, 413, 'PAYLOAD_TOO_LARGE');
      await expectNothingWritten();
    });

    it.each([
      ['malformed JSON', '{"value":'],
      ['a JSON array', '["x"]'],
      ['a JSON string', '"x"'],
      ['10,000-deep nesting', `{"value":${'['.repeat(10000)}${']'.repeat(10000)}}`],
      ['__proto__ key', '{"value":"x","__proto__":{"polluted":true}}'],
      ['constructor.prototype', '{"value":"x","constructor":{"prototype":{"polluted":true}}}'],
      ['1e400', '{"value":"x","ttl":1e400}'],
      ['unknown field', '{"value":"x","owner":"me"}'],
      ['value not a string', '{"value":42}'],
      ['bad encoding', '{"value":"x","encoding":"hex"}'],
      ['invalid base64', '{"value":"@@@","encoding":"base64"}'],
      ['nx and xx', '{"value":"x","nx":true,"xx":true}'],
      ['keepTtl with ttl', '{"value":"x","keepTtl":true,"ttl":5}'],
    ])('refuses %s with 400 and writes nothing (I-3)', async (_label, payload) => {
      const started = Date.now();
      const response = await t.call('PUT', at('bad-json'), {
        token: t.tokens.write,
        body: payload,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
      await expectNothingWritten();
    });

    it('lists each invalid field without echoing values', async () => {
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: { key: 'bad-fields', value: 'secret-value', ttl: 'soon', extra: 'secret-extra' },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      const fields = response.json<{ errors: { field: string }[] }>().errors.map((e) => e.field);
      expect(fields).toEqual(expect.arrayContaining(['ttl', 'extra']));
      expect(response.body).not.toContain('secret-value');
      expect(response.body).not.toContain('soon');
      await expectNothingWritten();
    });

    it('answers 415 for a body type it does not take', async () => {
      const response = await t.call('PUT', at('bad-type'), {
        token: t.tokens.write,
        body: 'value=x',
        headers: { 'content-type': 'text/plain' },
      });
      expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectNothingWritten();
    });

    it('refuses raw octets and forms on routes that take JSON (415)', async () => {
      const response = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: Buffer.from('{"key":"bad-octets","value":"x"}'),
        headers: { 'content-type': 'application/octet-stream' },
      });
      expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
      const form = await t.call('POST', '/redis/kv', {
        token: t.tokens.write,
        body: 'key=bad-form&value=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectProblem(form, 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectNothingWritten();
    });
  });

  describe('responses', () => {
    it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
      const echoed = await t.call('GET', '/healthz', { headers: { 'x-request-id': 'abc-123' } });
      expect(echoed.headers['x-request-id']).toBe('abc-123');
      const replaced = await t.call('GET', '/healthz', {
        headers: { 'x-request-id': 'a b<script>' },
      });
      expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('problem bodies carry the request id and no internals', async () => {
      const response = await get('absent');
      const body = response.json<Record<string, unknown>>();
      expect(body.requestId).toBe(response.headers['x-request-id']);
      expect(Object.keys(body).sort()).toEqual([
        'code',
        'detail',
        'requestId',
        'status',
        'title',
        'type',
      ]);
    });

    it('unknown routes are problem+json 404', async () => {
      expectProblem(await t.call('GET', '/nowhere', { token: t.tokens.read }), 404, 'NOT_FOUND');
    });
  });
});

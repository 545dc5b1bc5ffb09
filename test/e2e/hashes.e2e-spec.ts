import { SCOPES } from '../../src/auth/scopes';
import { TestApp } from '../support/app';
import { expectProblem, expectScopeGuarded } from '../support/problems';

/** Percent-encodes names for path segments. */
const at = (key: string) => `/redis/hashes/${encodeURIComponent(key)}`;
const fieldAt = (key: string, field: string) => `${at(key)}/fields/${encodeURIComponent(field)}`;

describe('hashes API', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({ config: { limits: { maxValueBytes: 4096, maxBatchKeys: 5 } } });
  });

  afterAll(async () => {
    await t.close();
  });

  const put = (key: string, body: unknown, token = t.tokens.write) =>
    t.call('PUT', at(key), { token, body });
  const get = (key: string, query?: Record<string, string>) =>
    t.call('GET', at(key), { token: t.tokens.read, query });
  const getField = (key: string, field: string, query?: Record<string, string>) =>
    t.call('GET', fieldAt(key, field), { token: t.tokens.read, query });
  const mget = (key: string, body: unknown) =>
    t.call('POST', `${at(key)}/_mget`, { token: t.tokens.read, body });
  const incr = (key: string, field: string, body: unknown = {}) =>
    t.call('POST', `${fieldAt(key, field)}/incr`, { token: t.tokens.write, body });
  const stored = (key: string) => t.redis.hgetall(t.prefix + key);
  const exists = (key: string) => t.redis.exists(t.prefix + key);
  const aString = async (key: string) => {
    await t.redis.set(t.prefix + key, 'a string');
  };

  describe('PUT /redis/hashes/{key}', () => {
    it('creates a hash under the key prefix and answers how many fields were new', async () => {
      const response = await put('user:1', { fields: { name: 'Ada', born: '1815' } });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ key: 'user:1', added: 2 });
      expect(await stored('user:1')).toEqual({ name: 'Ada', born: '1815' });
      expect(await t.redis.ttl(`${t.prefix}user:1`)).toBe(-1);
    });

    it('merges: existing fields are overwritten, others kept, only new ones counted', async () => {
      await put('merge', { fields: { a: '1', b: '2' } });
      const response = await put('merge', { fields: { b: 'two', c: '3' } });
      expect(response.json()).toEqual({ key: 'merge', added: 1 });
      expect(await stored('merge')).toEqual({ a: '1', b: 'two', c: '3' });
    });

    it('sets the expiry of the whole hash with ttl, and a later merge without ttl keeps it', async () => {
      expect((await put('expiring', { fields: { a: '1' }, ttl: 60 })).statusCode).toBe(200);
      expect(await t.redis.ttl(`${t.prefix}expiring`)).toBeGreaterThan(55);
      await put('expiring', { fields: { b: '2' } });
      expect(await t.redis.ttl(`${t.prefix}expiring`)).toBeGreaterThan(55);
      expect(await stored('expiring')).toEqual({ a: '1', b: '2' });
    });

    it('answers 409 WRONG_TYPE on a string and leaves it as it was, expiry included', async () => {
      await aString('str-put');
      expectProblem(await put('str-put', { fields: { a: '1' }, ttl: 30 }), 409, 'WRONG_TYPE');
      expect(await t.redis.get(`${t.prefix}str-put`)).toBe('a string');
      expect(await t.redis.ttl(`${t.prefix}str-put`)).toBe(-1);
    });

    it('accepts limits.maxBatchKeys fields and refuses one more or none (400, nothing written)', async () => {
      const fields = (n: number) =>
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, 'v']));
      expect((await put('five', { fields: fields(5) })).json()).toEqual({ key: 'five', added: 5 });
      expectProblem(await put('bad-six', { fields: fields(6) }), 400, 'VALIDATION_FAILED');
      expectProblem(await put('bad-none', { fields: {} }), 400, 'VALIDATION_FAILED');
      expect(await exists('bad-six')).toBe(0);
      expect(await exists('bad-none')).toBe(0);
    });

    it('accepts a value of limits.maxValueBytes and answers 413 one byte over (nothing written)', async () => {
      expect((await put('at-limit', { fields: { v: 'v'.repeat(4096) } })).statusCode).toBe(200);
      const over = await put('bad-over', { fields: { ok: 'x', v: 'v'.repeat(4097) } });
      expectProblem(over, 413, 'PAYLOAD_TOO_LARGE');
      const over64 = await put('bad-over64', {
        fields: { v: Buffer.alloc(4097, 1).toString('base64') },
        encoding: 'base64',
      });
      expectProblem(over64, 413, 'PAYLOAD_TOO_LARGE');
      expect(await exists('bad-over')).toBe(0);
      expect(await exists('bad-over64')).toBe(0);
    });

    it('validates field names like names: not empty, no control characters, at most maxKeyBytes', async () => {
      for (const field of ['', 'a\u0007b', 'line\nbreak', 'del\u007f', 'k'.repeat(1025)]) {
        const response = await put('bad-field-name', { fields: { ok: '1', [field]: 'v' } });
        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(response.json().errors).toEqual([
          { field: 'fields', message: expect.stringMatching(/^field names must/) },
        ]);
      }
      expect(await exists('bad-field-name')).toBe(0);
      const longest = 'k'.repeat(1024);
      expect((await put('long-field', { fields: { [longest]: 'v' } })).statusCode).toBe(200);
      expect(await t.redis.hget(`${t.prefix}long-field`, longest)).toBe('v');
    });

    it('lists a bad key and bad field names together', async () => {
      const response = await t.call('PUT', '/redis/hashes/bad%07key', {
        token: t.tokens.write,
        body: { fields: { '': 'v' } },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'key', message: 'must not contain control characters' },
        { field: 'fields', message: 'field names must not be empty' },
      ]);
    });

    it.each([
      ['ttl -1', { ttl: -1 }],
      ['ttl 0', { ttl: 0 }],
      ['ttl 1.5', { ttl: 1.5 }],
      ['ttl 2^53+1', { ttl: 2 ** 53 + 1 }],
      ['ttl "1e3"', { ttl: '1e3' }],
      ['ttl hex text', { ttl: '0x10' }],
      ['ttl as text', { ttl: '60' }],
      ['ttl over 2^31-1', { ttl: 2 ** 31 }],
      ['a value not a string', { fields: { a: 42 } }],
      ['a null value', { fields: { a: null } }],
      ['a nested value', { fields: { a: { b: 'c' } } }],
      ['fields an array', { fields: ['a', 'b'] }],
      ['fields text', { fields: 'a=b' }],
      ['fields missing', { fields: undefined }],
      ['an unknown field', { owner: 'me' }],
      ['a bad encoding', { encoding: 'hex' }],
      ['invalid base64', { fields: { a: '@@@' }, encoding: 'base64' }],
    ])('refuses %s with 400 and writes nothing (I-3, I-8)', async (_label, change) => {
      const response = await put('bad-body', { fields: { a: 'v' }, ...change });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(await exists('bad-body')).toBe(0);
    });

    it.each([
      ['a lone surrogate in a value', '{"fields":{"a":"\\ud800"}}'],
      ['a lone surrogate in a field name', '{"fields":{"\\udbff":"v"}}'],
      ['a __proto__ field', '{"fields":{"__proto__":"v"}}'],
      ['malformed JSON', '{"fields":'],
      ['1e400 as ttl', '{"fields":{"a":"v"},"ttl":1e400}'],
    ])('refuses %s with 400 and writes nothing', async (_label, payload) => {
      const response = await t.call('PUT', at('bad-raw'), {
        token: t.tokens.write,
        body: payload,
        headers: { 'content-type': 'application/json' },
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
      expect(await exists('bad-raw')).toBe(0);
    });

    it('round-trips arbitrary bytes as base64 (write, HGETALL, HGET, HMGET)', async () => {
      const bytes = Buffer.from([0, 255, 10, 13, 0x80, 0xfe]);
      const base64 = bytes.toString('base64');
      const written = await put('bin', { fields: { blob: base64 }, encoding: 'base64' });
      expect(written.statusCode).toBe(200);
      expect(await t.redis.hgetBuffer(`${t.prefix}bin`, 'blob')).toEqual(bytes);
      expect((await get('bin', { encoding: 'base64' })).json()).toEqual({
        key: 'bin',
        fields: { blob: base64 },
        encoding: 'base64',
      });
      expect((await getField('bin', 'blob', { encoding: 'base64' })).json().value).toBe(base64);
      expect((await mget('bin', { fields: ['blob'], encoding: 'base64' })).json().fields).toEqual({
        blob: base64,
      });
    });

    it('stores keys and field names with slashes, spaces and non-ASCII text', async () => {
      for (const name of ['a/b/c', 'with space', 'émoji-🔑', 'q?x=1#frag', '_mget', 'fields']) {
        expect((await put(name, { fields: { [name]: name } })).statusCode).toBe(200);
        expect(await t.redis.hget(t.prefix + name, name)).toBe(name);
        expect((await getField(name, name)).json().value).toBe(name);
      }
    });
  });

  describe('GET /redis/hashes/{key}', () => {
    it('answers every field', async () => {
      await t.redis.hset(`${t.prefix}read`, { a: '1', b: 'two', 'é 🔑': 'x' });
      const response = await get('read');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'read',
        fields: { a: '1', b: 'two', 'é 🔑': 'x' },
        encoding: 'utf8',
      });
    });

    it('answers a field named __proto__ as an ordinary field', async () => {
      await t.redis.hset(`${t.prefix}proto`, '__proto__', 'p', 'constructor', 'c');
      expect((await get('proto')).json().fields).toEqual(
        JSON.parse('{"__proto__":"p","constructor":"c"}'),
      );
    });

    it('answers 404 NOT_FOUND when the key is absent', async () => {
      expectProblem(await get('absent'), 404, 'NOT_FOUND');
    });

    it('answers 409 WRONG_TYPE on a string (I-7)', async () => {
      await aString('str-get');
      expectProblem(await get('str-get'), 409, 'WRONG_TYPE');
    });

    it('refuses to return values or field names that are not UTF-8 as text (406 NOT_UTF8)', async () => {
      await t.redis.hset(`${t.prefix}latin1`, 'f', Buffer.from([0xe9, 0x74, 0xe9]));
      expectProblem(await get('latin1'), 406, 'NOT_UTF8');
      expect((await get('latin1', { encoding: 'base64' })).json().fields).toEqual({
        f: Buffer.from([0xe9, 0x74, 0xe9]).toString('base64'),
      });
      await t.redis.hset(`${t.prefix}latin1-name`, Buffer.from([0xff, 0x61]), 'v');
      expectProblem(await get('latin1-name', { encoding: 'base64' }), 406, 'NOT_UTF8');
    });

    it('validates the query', async () => {
      expectProblem(await get('read', { encoding: 'hex' }), 400, 'VALIDATION_FAILED');
      expectProblem(await get('read', { other: '1' }), 400, 'VALIDATION_FAILED');
    });
  });

  describe('GET /redis/hashes/{key}/fields/{field}', () => {
    beforeAll(async () => {
      await t.redis.hset(`${t.prefix}one`, { name: 'Ada', empty: '' });
    });

    it('answers one field', async () => {
      const response = await getField('one', 'name');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'one',
        field: 'name',
        value: 'Ada',
        encoding: 'utf8',
      });
      expect((await getField('one', 'empty')).json().value).toBe('');
    });

    it('answers 404 when the field or the key is absent', async () => {
      expectProblem(await getField('one', 'missing'), 404, 'NOT_FOUND');
      expectProblem(await getField('absent', 'name'), 404, 'NOT_FOUND');
    });

    it('answers 409 WRONG_TYPE for HGET on a string (I-7)', async () => {
      await aString('str-hget');
      expectProblem(await getField('str-hget', 'name'), 409, 'WRONG_TYPE');
    });

    it('answers 406 NOT_UTF8 for bytes read as text, and the bytes with base64', async () => {
      const bytes = Buffer.from([0xc3, 0x28]);
      await t.redis.hset(`${t.prefix}one-bin`, 'b', bytes);
      expectProblem(await getField('one-bin', 'b'), 406, 'NOT_UTF8');
      expect((await getField('one-bin', 'b', { encoding: 'base64' })).json().value).toBe(
        bytes.toString('base64'),
      );
    });

    it.each([
      ['LF', 'a%0Ab'],
      ['NUL', 'a%00b'],
      ['DEL', 'a%7Fb'],
      ['C1 control', 'a%C2%85b'],
      ['invalid UTF-8', 'a%FF'],
    ])('refuses a field name with %s (400)', async (_label, encoded) => {
      const response = await t.call('GET', `${at('one')}/fields/${encoded}`, {
        token: t.tokens.read,
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
    });

    it('names the field in the errors list', async () => {
      const response = await t.call('GET', `${at('one')}/fields/${'f'.repeat(1025)}`, {
        token: t.tokens.read,
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'field', message: 'must be at most 1024 bytes' },
      ]);
    });
  });

  describe('POST /redis/hashes/{key}/_mget', () => {
    beforeAll(async () => {
      await t.redis.hset(`${t.prefix}many`, { a: '1', b: '2', c: '3' });
    });

    it('answers the fields that exist only, in the order asked', async () => {
      const response = await mget('many', { fields: ['c', 'missing', 'a'] });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'many',
        fields: { c: '3', a: '1' },
        encoding: 'utf8',
      });
      expect(Object.keys(response.json().fields)).toEqual(['c', 'a']);
    });

    it('answers no fields for an absent key (hits only, like KV _mget)', async () => {
      expect((await mget('absent', { fields: ['a'] })).json()).toEqual({
        key: 'absent',
        fields: {},
        encoding: 'utf8',
      });
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-mget');
      expectProblem(await mget('str-mget', { fields: ['a'] }), 409, 'WRONG_TYPE');
    });

    it('answers 406 NOT_UTF8 for a value that is not text', async () => {
      await t.redis.hset(`${t.prefix}many-bin`, 'b', Buffer.from([0xff]));
      expectProblem(await mget('many-bin', { fields: ['b'] }), 406, 'NOT_UTF8');
    });

    it('takes 1 to limits.maxBatchKeys fields', async () => {
      const names = (n: number) => Array.from({ length: n }, (_, i) => `f${i}`);
      expect((await mget('many', { fields: names(5) })).statusCode).toBe(200);
      expectProblem(await mget('many', { fields: names(6) }), 400, 'VALIDATION_FAILED');
      expectProblem(await mget('many', { fields: [] }), 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['no fields', {}],
      ['fields not a list', { fields: 'a' }],
      ['a field not a string', { fields: ['a', 1] }],
      ['an unknown field', { fields: ['a'], extra: true }],
      ['a bad encoding', { fields: ['a'], encoding: 'hex' }],
    ])('refuses %s with 400', async (_label, body) => {
      expectProblem(await mget('many', body), 400, 'VALIDATION_FAILED');
    });

    it('validates each field name and says which', async () => {
      const response = await mget('many', { fields: ['a', '', 'b\u0000'] });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'fields[1]', message: 'must not be empty' },
        { field: 'fields[2]', message: 'must not contain control characters' },
      ]);
    });
  });

  describe('DELETE /redis/hashes/{key}', () => {
    it('deletes with 204, then 404', async () => {
      await t.redis.hset(`${t.prefix}doomed`, 'a', '1');
      const deleted = await t.call('DELETE', at('doomed'), { token: t.tokens.write });
      expect(deleted.statusCode).toBe(204);
      expect(deleted.body).toBe('');
      expect(await exists('doomed')).toBe(0);
      expectProblem(
        await t.call('DELETE', at('doomed'), { token: t.tokens.write }),
        404,
        'NOT_FOUND',
      );
    });

    it('deletes only a hash: a string or a list gets 409 WRONG_TYPE and stays', async () => {
      await aString('str-del');
      expectProblem(
        await t.call('DELETE', at('str-del'), { token: t.tokens.write }),
        409,
        'WRONG_TYPE',
      );
      expect(await t.redis.get(`${t.prefix}str-del`)).toBe('a string');
      await t.redis.rpush(`${t.prefix}list-del`, 'x');
      expectProblem(
        await t.call('DELETE', at('list-del'), { token: t.tokens.write }),
        409,
        'WRONG_TYPE',
      );
      expect(await exists('list-del')).toBe(1);
    });
  });

  describe('DELETE /redis/hashes/{key}/fields/{field}', () => {
    it('deletes one field with 204, then 404; the other fields stay', async () => {
      await t.redis.hset(`${t.prefix}trim`, { a: '1', b: '2' });
      const deleted = await t.call('DELETE', fieldAt('trim', 'a'), { token: t.tokens.write });
      expect(deleted.statusCode).toBe(204);
      expect(deleted.body).toBe('');
      expect(await stored('trim')).toEqual({ b: '2' });
      expectProblem(
        await t.call('DELETE', fieldAt('trim', 'a'), { token: t.tokens.write }),
        404,
        'NOT_FOUND',
      );
    });

    it('removes the key with its last field, and answers 404 for an absent key', async () => {
      await t.redis.hset(`${t.prefix}last`, 'only', '1');
      await t.call('DELETE', fieldAt('last', 'only'), { token: t.tokens.write });
      expect(await exists('last')).toBe(0);
      expectProblem(
        await t.call('DELETE', fieldAt('last', 'only'), { token: t.tokens.write }),
        404,
        'NOT_FOUND',
      );
    });

    it('answers 409 WRONG_TYPE on a string and leaves it', async () => {
      await aString('str-hdel');
      expectProblem(
        await t.call('DELETE', fieldAt('str-hdel', 'a'), { token: t.tokens.write }),
        409,
        'WRONG_TYPE',
      );
      expect(await t.redis.get(`${t.prefix}str-hdel`)).toBe('a string');
    });

    it('refuses a bad field name with 400', async () => {
      const response = await t.call('DELETE', `${at('trim')}/fields/b%0D`, {
        token: t.tokens.write,
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(await stored('trim')).toEqual({ b: '2' });
    });
  });

  describe('POST /redis/hashes/{key}/fields/{field}/incr', () => {
    const field = (key: string, name: string) => t.redis.hget(t.prefix + key, name);

    it('increments by 1, by an integer and by a decimal, creating the field', async () => {
      expect((await incr('stats', 'visits')).json()).toEqual({
        key: 'stats',
        field: 'visits',
        value: 1,
      });
      expect((await incr('stats', 'visits', { by: 41 })).json().value).toBe(42);
      expect((await incr('stats', 'visits', { by: -2 })).json().value).toBe(40);
      const float = await incr('stats', 'visits', { by: 0.5 });
      expect(float.statusCode).toBe(200);
      expect(float.json().value).toBe(40.5);
      expect(await field('stats', 'visits')).toBe('40.5');
      expect((await incr('stats', 'ratio', { by: 0.1 })).json().value).toBe(0.1);
    });

    it('answers 409 NOT_A_NUMBER for text, and for a decimal under an integer increment', async () => {
      await t.redis.hset(`${t.prefix}nan`, { text: 'abc', decimal: '1.5' });
      expectProblem(await incr('nan', 'text'), 409, 'NOT_A_NUMBER');
      expectProblem(await incr('nan', 'text', { by: 1.5 }), 409, 'NOT_A_NUMBER');
      expectProblem(await incr('nan', 'decimal'), 409, 'NOT_A_NUMBER');
      expect(await stored('nan')).toEqual({ text: 'abc', decimal: '1.5' });
      expect((await incr('nan', 'decimal', { by: 0.25 })).json().value).toBe(1.75);
    });

    it('answers 409 OUT_OF_RANGE past +/-(2^53 - 1) and on HINCRBY overflow, writing nothing (I-8)', async () => {
      const max = String(Number.MAX_SAFE_INTEGER);
      const min = String(-Number.MAX_SAFE_INTEGER);
      const int64 = '9223372036854775807';
      await t.redis.hset(`${t.prefix}range`, { max, min, int64 });
      expectProblem(await incr('range', 'max'), 409, 'OUT_OF_RANGE');
      expectProblem(await incr('range', 'min', { by: -1 }), 409, 'OUT_OF_RANGE');
      expectProblem(await incr('range', 'int64'), 409, 'OUT_OF_RANGE');
      expect(await stored('range')).toEqual({ max, min, int64 });
      expect((await incr('range', 'max', { by: -1 })).json().value).toBe(
        Number.MAX_SAFE_INTEGER - 1,
      );
    });

    it('answers 409 OUT_OF_RANGE, never 500, when HINCRBYFLOAT would reach infinity (I-8)', async () => {
      await t.redis.hset(`${t.prefix}inf`, { big: '1e400', low: '-1e400' });
      const big = await incr('inf', 'big', { by: 0.5 });
      expectProblem(big, 409, 'OUT_OF_RANGE');
      expectProblem(await incr('inf', 'low', { by: -0.5 }), 409, 'OUT_OF_RANGE');
      expect(await stored('inf')).toEqual({ big: '1e400', low: '-1e400' });
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-incr');
      expectProblem(await incr('str-incr', 'f'), 409, 'WRONG_TYPE');
      expect(await t.redis.get(`${t.prefix}str-incr`)).toBe('a string');
    });

    it.each([
      ['"1"', '1'],
      ['"1e3"', '1e3'],
      ['hex text', '0x10'],
      ['true', true],
      ['an object', {}],
      ['2^53 + 1', 2 ** 53 + 1],
      ['-(2^53 + 1)', -(2 ** 53 + 1)],
      ['1e300 (an integer past 2^53)', 1e300],
    ])('refuses by=%s with 400 and writes nothing', async (_label, by) => {
      expectProblem(await incr('never', 'f', { by }), 400, 'VALIDATION_FAILED');
      expect(await exists('never')).toBe(0);
    });

    it('refuses a bad field name or an unknown body field with 400', async () => {
      expectProblem(
        await t.call('POST', `${at('never')}/fields/%1B/incr`, { token: t.tokens.write, body: {} }),
        400,
        'VALIDATION_FAILED',
      );
      expectProblem(await incr('never', 'f', { by: 1, step: 2 }), 400, 'VALIDATION_FAILED');
      expect(await exists('never')).toBe(0);
    });
  });

  describe('scopes', () => {
    it('a read token cannot write (403 insufficient_scope) and nothing is written', async () => {
      const response = await put('scoped', { fields: { a: '1' } }, t.tokens.read);
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:write"',
      );
      expect(await exists('scoped')).toBe(0);
    });

    it('a write token cannot read', async () => {
      const response = await t.call('GET', at('scoped'), { token: t.tokens.write });
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:read"',
      );
    });

    it.each([
      ['GET', '/redis/hashes/k', 'read'],
      ['PUT', '/redis/hashes/k', 'write'],
      ['DELETE', '/redis/hashes/k', 'write'],
      ['POST', '/redis/hashes/k/_mget', 'read'],
      ['GET', '/redis/hashes/k/fields/f', 'read'],
      ['DELETE', '/redis/hashes/k/fields/f', 'write'],
      ['POST', '/redis/hashes/k/fields/f/incr', 'write'],
    ] as const)('%s %s needs redis:%s and a token', async (method, url, scope) => {
      await expectScopeGuarded(t, method, url, scope, {});
      const allowed = await t.call(method, url, { token: t.tokens.both, body: {} });
      expect([200, 204, 400, 404]).toContain(allowed.statusCode);
    });
  });

  describe('key patterns (redis_keys) and the reserved namespace', () => {
    const appOnly = () => t.token({ scopes: [SCOPES.read, SCOPES.write], keyPatterns: ['app:*'] });

    /** One request per route against `key`, with a body that would pass validation. */
    const everyRoute = (token: string, key: string) => [
      t.call('GET', at(key), { token }),
      t.call('PUT', at(key), { token, body: { fields: { f: 'v' }, ttl: 5 } }),
      t.call('DELETE', at(key), { token }),
      t.call('POST', `${at(key)}/_mget`, { token, body: { fields: ['f'] } }),
      t.call('GET', fieldAt(key, 'f'), { token }),
      t.call('DELETE', fieldAt(key, 'f'), { token }),
      t.call('POST', `${fieldAt(key, 'f')}/incr`, { token, body: { by: 1 } }),
    ];

    it('authorises the key, not the field names', async () => {
      const token = await appOnly();
      const response = await put('app:h', { fields: { 'other:x': '1', '__gw:y': '2' } }, token);
      expect(response.statusCode).toBe(200);
      expect(await stored('app:h')).toEqual({ 'other:x': '1', '__gw:y': '2' });
      const read = await t.call('GET', fieldAt('app:h', 'other:x'), { token });
      expect(read.json()).toMatchObject({ key: 'app:h', field: 'other:x', value: '1' });
    });

    it('refuses a key outside the patterns on every route (403 KEY_FORBIDDEN), changing nothing', async () => {
      const token = await appOnly();
      await t.redis.hset(`${t.prefix}other:h`, 'f', '1');
      for (const response of await Promise.all(everyRoute(token, 'other:h'))) {
        expectProblem(response, 403, 'KEY_FORBIDDEN');
        expect(response.body).not.toContain('"1"');
      }
      expect(await stored('other:h')).toEqual({ f: '1' });
      expect(await t.redis.ttl(`${t.prefix}other:h`)).toBe(-1);
    });

    it('refuses names in __gw: even with both scopes and no pattern claim', async () => {
      await t.redis.hset(`${t.prefix}__gw:h`, 'f', 'internal');
      for (const response of await Promise.all(everyRoute(t.tokens.both, '__gw:h'))) {
        expectProblem(response, 403, 'KEY_FORBIDDEN');
      }
      expect(await stored('__gw:h')).toEqual({ f: 'internal' });
      expect(await t.redis.ttl(`${t.prefix}__gw:h`)).toBe(-1);
    });
  });

  describe('bad key names: 400 and nothing written', () => {
    it.each([
      ['CR', 'bad%0Dname'],
      ['NUL', 'bad%00name'],
      ['ESC', 'bad%1Bname'],
      ['DEL', 'bad%7Fname'],
      ['lone surrogate', 'bad%ED%A0%80'],
      ['invalid UTF-8', 'bad%FF'],
    ])('refuses a key with %s', async (_label, encoded) => {
      const response = await t.call('PUT', `/redis/hashes/${encoded}`, {
        token: t.tokens.write,
        body: { fields: { a: 'v' } },
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      const keys = await t.storedKeys();
      expect(keys.filter((key) => key.startsWith('bad'))).toEqual([]);
    });

    it('accepts a key of limits.maxKeyBytes bytes and refuses one byte more', async () => {
      expect((await put('k'.repeat(1024), { fields: { a: 'v' } })).statusCode).toBe(200);
      expectProblem(
        await put(`bad${'k'.repeat(1022)}`, { fields: { a: 'v' } }),
        400,
        'VALIDATION_FAILED',
      );
      expect(await exists(`bad${'k'.repeat(1022)}`)).toBe(0);
    });
  });

  describe('large merges', () => {
    let big: TestApp;

    beforeAll(async () => {
      big = await TestApp.create({ issuer: t.issuer, config: { limits: { maxBatchKeys: 5000 } } });
    });

    afterAll(async () => {
      await big.close();
    });

    it('writes 4500 fields and their TTL in one step (past Lua unpack limits)', async () => {
      const fields = Object.fromEntries(Array.from({ length: 4500 }, (_, i) => [`f${i}`, `${i}`]));
      const response = await big.call('PUT', at('wide'), {
        token: big.tokens.write,
        body: { fields, ttl: 60 },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ key: 'wide', added: 4500 });
      expect(await big.redis.hlen(`${big.prefix}wide`)).toBe(4500);
      expect(await big.redis.hget(`${big.prefix}wide`, 'f4499')).toBe('4499');
      expect(await big.redis.ttl(`${big.prefix}wide`)).toBeGreaterThan(55);
    });
  });

  describe('key prefix isolation', () => {
    let other: TestApp;

    beforeAll(async () => {
      other = await TestApp.create({ issuer: t.issuer });
    });

    afterAll(async () => {
      await other.close();
    });

    it('keeps each app inside its own prefix', async () => {
      await put('shared', { fields: { who: 'first' } });
      expect(other.prefix).not.toBe(t.prefix);
      expectProblem(
        await other.call('GET', at('shared'), { token: other.tokens.read }),
        404,
        'NOT_FOUND',
      );
      await other.call('PUT', at('shared'), {
        token: other.tokens.write,
        body: { fields: { who: 'second' } },
      });
      expect((await getField('shared', 'who')).json().value).toBe('first');
      expect(await other.redis.hget(`${other.prefix}shared`, 'who')).toBe('second');
      expect(await t.redis.exists('shared')).toBe(0);
      await other.call('DELETE', at('shared'), { token: other.tokens.write });
      expect(await stored('shared')).toEqual({ who: 'first' });
    });
  });
});

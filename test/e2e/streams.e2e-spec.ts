import { SCOPES } from '../../src/auth/scopes';
import { TestApp, withApp, type Response } from '../support/app';
import { sleep } from '../support/ports';
import { expectProblem, expectScopeGuarded } from '../support/problems';

/** Percent-encodes names for path segments. */
const at = (key: string) => `/redis/streams/${encodeURIComponent(key)}`;
const groupAt = (key: string, group: string) => `${at(key)}/groups/${encodeURIComponent(group)}`;

const ENTRY_ID = /^\d+-\d+$/;
const MAX_ID = '18446744073709551615-18446744073709551615';

/** The ids of the entries of a response. */
const entryIds = (response: Response) =>
  response.json<{ entries: { id: string }[] }>().entries.map((entry) => entry.id);

type Pending = [count: number, minId: string | null, maxId: string | null, [string, string][]];

describe('streams API', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      config: {
        limits: { maxScanCount: 50, maxBatchKeys: 5, maxValueBytes: 4096, maxBlockMs: 300 },
        streams: { maxLength: 1000 },
      },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  const sk = (key: string) => t.prefix + key;
  const add = (
    key: string,
    body: unknown,
    options: { token?: string; idempotencyKey?: string } = {},
  ) =>
    t.call('POST', `${at(key)}/entries`, {
      token: options.token ?? t.tokens.write,
      body,
      headers:
        options.idempotencyKey === undefined
          ? undefined
          : { 'idempotency-key': options.idempotencyKey },
    });
  const range = (key: string, query?: Record<string, string>) =>
    t.call('GET', `${at(key)}/entries`, { token: t.tokens.read, query });
  const info = (key: string) => t.call('GET', at(key), { token: t.tokens.read });
  const deleteEntry = (key: string, id: string) =>
    t.call('DELETE', `${at(key)}/entries/${id}`, { token: t.tokens.write });
  const trim = (key: string, body: unknown) =>
    t.call('POST', `${at(key)}/trim`, { token: t.tokens.write, body });
  const createGroup = (key: string, body: unknown) =>
    t.call('POST', `${at(key)}/groups`, { token: t.tokens.write, body });
  const listGroups = (key: string) => t.call('GET', `${at(key)}/groups`, { token: t.tokens.read });
  const deleteGroup = (key: string, group: string) =>
    t.call('DELETE', groupAt(key, group), { token: t.tokens.write });
  const read = (key: string, group: string, body: unknown, token = t.tokens.write) =>
    t.call('POST', `${groupAt(key, group)}/read`, { token, body });
  const ack = (key: string, group: string, body: unknown) =>
    t.call('POST', `${groupAt(key, group)}/ack`, { token: t.tokens.write, body });
  const pending = (key: string, group: string, query?: Record<string, string>) =>
    t.call('GET', `${groupAt(key, group)}/pending`, { token: t.tokens.read, query });
  const claim = (key: string, group: string, body: unknown) =>
    t.call('POST', `${groupAt(key, group)}/claim`, { token: t.tokens.write, body });

  const xlen = (key: string) => t.redis.xlen(sk(key));
  const exists = (key: string) => t.redis.exists(sk(key));
  const xrange = async (key: string) =>
    (await t.redis.xrange(sk(key), '-', '+')).map(([id, flat]) => ({
      id,
      fields: Object.fromEntries(
        flat.flatMap((_, index) => (index % 2 === 0 ? [[flat[index], flat[index + 1]]] : [])),
      ),
    }));
  const xpending = async (key: string, group: string) =>
    (await t.redis.xpending(sk(key), group)) as Pending;
  const pendingOwners = async (key: string, group: string) =>
    ((await t.redis.xpending(sk(key), group, '-', '+', 100)) as [string, string][]).map(
      ([id, consumer]) => [id, consumer],
    );
  const xgroups = async (key: string) =>
    ((await t.redis.xinfo('GROUPS', sk(key))) as unknown[][]).map((flat) => {
      const group: Record<string, unknown> = {};
      for (let index = 0; index + 1 < flat.length; index += 2) {
        group[String(flat[index])] = flat[index + 1];
      }
      return group;
    });
  /** A stream with entries 1-0 .. n-0, each `{ n: '<i>' }`, written straight to Redis. */
  const seed = async (key: string, n: number) => {
    const pipeline = t.redis.pipeline().del(sk(key));
    for (let i = 1; i <= n; i++) {
      pipeline.xadd(sk(key), `${i}-0`, 'n', String(i));
    }
    await pipeline.exec();
  };
  const aString = async (key: string) => {
    await t.redis.set(sk(key), 'a string');
  };
  /** A stream with entries 1-0 .. n-0 and a group `g` that has delivered none of them. */
  const seedWithGroup = async (key: string, n: number, group = 'g') => {
    await seed(key, n);
    await t.redis.xgroup('CREATE', sk(key), group, '0', 'MKSTREAM');
  };

  describe('POST /redis/streams/{key}/entries', () => {
    it('adds an entry with an automatic id under the key prefix (201 { key, id })', async () => {
      const response = await add('events', { fields: { event: 'signup', user: '42' } });
      expect(response.statusCode).toBe(201);
      const body = response.json();
      expect(body).toEqual({ key: 'events', id: expect.stringMatching(ENTRY_ID) });
      expect(await xrange('events')).toEqual([
        { id: body.id, fields: { event: 'signup', user: '42' } },
      ]);
      const second = (await add('events', { fields: { event: 'login' } })).json();
      expect(second.id).not.toBe(body.id);
      expect((await xrange('events')).map((entry) => entry.id)).toEqual([body.id, second.id]);
    });

    it('takes an explicit id that is above the last one, and <ms>-* for the next sequence', async () => {
      expect((await add('explicit', { fields: { a: '1' }, id: '5-1' })).json()).toEqual({
        key: 'explicit',
        id: '5-1',
      });
      expect((await add('explicit', { fields: { a: '2' }, id: '6' })).json().id).toBe('6-0');
      expect((await add('explicit', { fields: { a: '3' }, id: '6-*' })).json().id).toBe('6-1');
      expect((await xrange('explicit')).map((entry) => entry.id)).toEqual(['5-1', '6-0', '6-1']);
    });

    it('answers 409 STREAM_ID_TOO_SMALL for an id not above the last one, writing nothing', async () => {
      await seed('too-small', 3);
      for (const id of ['3-0', '2-5', '3']) {
        expectProblem(
          await add('too-small', { fields: { a: 'x' }, id }),
          409,
          'STREAM_ID_TOO_SMALL',
        );
      }
      expect(await xlen('too-small')).toBe(3);
    });

    it('answers 409 STREAM_ID_TOO_SMALL when the stream holds the largest possible id', async () => {
      expect((await add('exhausted', { fields: { a: '1' }, id: MAX_ID })).json().id).toBe(MAX_ID);
      expectProblem(await add('exhausted', { fields: { a: '2' } }), 409, 'STREAM_ID_TOO_SMALL');
      expectProblem(
        await add('exhausted', { fields: { a: '2' } }, { idempotencyKey: 'after-max' }),
        409,
        'STREAM_ID_TOO_SMALL',
      );
      expect(await xlen('exhausted')).toBe(1);
    });

    it('refuses id 0-0 with 400 and creates no stream', async () => {
      expectProblem(
        await add('zero-id', { fields: { a: 'x' }, id: '0-0' }),
        400,
        'VALIDATION_FAILED',
      );
      expect(await exists('zero-id')).toBe(0);
    });

    it('trims exactly with maxLen (approximate: false), keeping the newest entries', async () => {
      await seed('exact', 10);
      const response = await add('exact', { fields: { n: '11' }, maxLen: 3, approximate: false });
      expect(response.statusCode).toBe(201);
      expect(await xlen('exact')).toBe(3);
      const ids = (await xrange('exact')).map((entry) => entry.id);
      expect(ids.slice(0, 2)).toEqual(['9-0', '10-0']);
      expect(ids[2]).toBe(response.json().id);
      // Exact is the default too.
      await add('exact', { fields: { n: '12' }, maxLen: 2 });
      expect(await xlen('exact')).toBe(2);
    });

    it('accepts maxLen up to streams.maxLength and refuses one more with 400, writing nothing', async () => {
      expect((await add('max-len', { fields: { a: '1' }, maxLen: 1000 })).statusCode).toBe(201);
      const over = await add('max-len', { fields: { a: '2' }, maxLen: 1001 });
      expectProblem(over, 400, 'VALIDATION_FAILED');
      expect(over.json().errors).toEqual([{ field: 'maxLen', message: expect.any(String) }]);
      expect(await xlen('max-len')).toBe(1);
    });

    it('caps a stream at streams.maxLength (approximately) when the add names no bound (X-6)', async () => {
      const total = 1300;
      for (let batch = 0; batch < total; batch += 50) {
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, i) => add('capped', { fields: { n: String(batch + i) } })),
        );
        expect(responses.every((response) => response.statusCode === 201)).toBe(true);
      }
      const length = await xlen('capped');
      // MAXLEN ~ removes whole macro nodes (stream-node-max-entries, 100 by default) only.
      expect(length).toBeGreaterThanOrEqual(1000);
      expect(length).toBeLessThanOrEqual(1100);
      const [[lastId]] = await t.redis.xrevrange(sk('capped'), '+', '-', 'COUNT', 1);
      expect((await info('capped')).json().lastId).toBe(lastId);
    });

    it.each([
      ['an unknown field', { fields: { a: 'v' }, owner: 'me' }],
      ['fields missing', {}],
      ['fields an array', { fields: ['a', 'b'] }],
      ['fields text', { fields: 'a=b' }],
      ['fields null', { fields: null }],
      ['a value not a string', { fields: { a: 42 } }],
      ['a null value', { fields: { a: null } }],
      ['a nested value', { fields: { a: { b: 'c' } } }],
      ['no fields at all', { fields: {} }],
      [
        'more fields than limits.maxBatchKeys',
        { fields: { a: '', b: '', c: '', d: '', e: '', f: '' } },
      ],
      ['an empty field name', { fields: { '': 'v' } }],
      ['a field name with a control character', { fields: { 'a\u0007b': 'v' } }],
      ['a field name with DEL', { fields: { 'a\u007f': 'v' } }],
      ['an id of text', { fields: { a: 'v' }, id: 'abc' }],
      ['an id of three parts', { fields: { a: 'v' }, id: '1-2-3' }],
      ['a negative id', { fields: { a: 'v' }, id: '-1' }],
      ['an id with a trailing dash', { fields: { a: 'v' }, id: '1-' }],
      ['an empty id', { fields: { a: 'v' }, id: '' }],
      ['an id of *', { fields: { a: 'v' }, id: '*' }],
      ['an id past 64 bits', { fields: { a: 'v' }, id: '18446744073709551616-0' }],
      ['a number id', { fields: { a: 'v' }, id: 5 }],
      ['maxLen -1', { fields: { a: 'v' }, maxLen: -1 }],
      ['maxLen 1.5', { fields: { a: 'v' }, maxLen: 1.5 }],
      ['maxLen as text', { fields: { a: 'v' }, maxLen: '10' }],
      ['approximate as text', { fields: { a: 'v' }, approximate: 'yes' }],
      ['a bad encoding', { fields: { a: 'v' }, encoding: 'hex' }],
      ['invalid base64', { fields: { a: '@@@' }, encoding: 'base64' }],
    ])('refuses %s with 400 and writes nothing', async (_label, body) => {
      expectProblem(await add('bad-add', body), 400, 'VALIDATION_FAILED');
      expect(await exists('bad-add')).toBe(0);
    });

    it('refuses a body that is not a JSON object with 400', async () => {
      for (const body of ['[1]', '"text"', '{"fields":']) {
        const response = await t.call('POST', `${at('bad-raw')}/entries`, {
          token: t.tokens.write,
          body,
          headers: { 'content-type': 'application/json' },
        });
        expect(response.statusCode).toBe(400);
      }
      expect(await exists('bad-raw')).toBe(0);
    });

    it('names each bad field in the errors list', async () => {
      const response = await add('bad-add', { fields: { ok: 'v', '': 'x', 'b\u0000': 'y' } });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'fields.', message: 'field name must not be empty' },
        { field: 'fields.b\u0000', message: 'field name must not contain control characters' },
      ]);
    });

    it('accepts a value of limits.maxValueBytes and answers 413 one byte over (nothing written)', async () => {
      expect((await add('at-limit', { fields: { v: 'v'.repeat(4096) } })).statusCode).toBe(201);
      expectProblem(
        await add('bad-over', { fields: { ok: 'x', v: 'v'.repeat(4097) } }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expectProblem(
        await add('bad-over', {
          fields: { v: Buffer.alloc(4097, 1).toString('base64') },
          encoding: 'base64',
        }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expectProblem(
        await add('at-limit', { fields: { v: 'é'.repeat(2049) } }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expect(await exists('bad-over')).toBe(0);
      expect(await xlen('at-limit')).toBe(1);
    });

    it('round-trips arbitrary bytes with encoding base64 (add, range, group read, claim)', async () => {
      const bytes = Buffer.from([0, 255, 10, 13, 0x80, 0xfe]);
      const base64 = bytes.toString('base64');
      await t.redis.xgroup('CREATE', sk('bin'), 'g', '$', 'MKSTREAM');
      const written = await add('bin', {
        fields: { blob: base64, text: 'aGk=' },
        encoding: 'base64',
      });
      expect(written.statusCode).toBe(201);
      const { id } = written.json();
      const [[storedId, stored]] = await t.redis.xrangeBuffer(sk('bin'), '-', '+');
      expect(storedId.toString()).toBe(id);
      expect(stored).toEqual([Buffer.from('blob'), bytes, Buffer.from('text'), Buffer.from('hi')]);
      const entry = { id, fields: { blob: base64, text: 'aGk=' } };
      expect((await range('bin', { encoding: 'base64' })).json()).toEqual({
        key: 'bin',
        entries: [entry],
      });
      expect((await read('bin', 'g', { consumer: 'c1', encoding: 'base64' })).json()).toEqual({
        entries: [entry],
      });
      expect(
        (await claim('bin', 'g', { consumer: 'c2', minIdleMs: 0, encoding: 'base64' })).json(),
      ).toEqual({ entries: [entry], nextStart: '0-0', deletedIds: [] });
    });

    it('stores keys and field names with slashes, spaces and non-ASCII text', async () => {
      for (const name of ['a/b/c', 'with space', 'émoji-🔑', 'q?x=1#frag', 'entries', 'groups']) {
        const response = await add(name, { fields: { [name]: name } });
        expect(response.json()).toEqual({ key: name, id: expect.stringMatching(ENTRY_ID) });
        expect((await xrange(name))[0].fields).toEqual({ [name]: name });
        expect((await range(name)).json().entries[0].fields).toEqual({ [name]: name });
      }
    });

    it('answers 409 WRONG_TYPE on a string or a list (I-7) and leaves them as they were', async () => {
      await aString('str-add');
      await t.redis.rpush(sk('list-add'), 'x');
      for (const key of ['str-add', 'list-add']) {
        expectProblem(await add(key, { fields: { a: '1' } }), 409, 'WRONG_TYPE');
        expectProblem(
          await add(key, { fields: { a: '1' } }, { idempotencyKey: `wt-${key}` }),
          409,
          'WRONG_TYPE',
        );
      }
      expect(await t.redis.get(sk('str-add'))).toBe('a string');
      expect(await t.redis.lrange(sk('list-add'), 0, -1)).toEqual(['x']);
    });

    describe('Idempotency-Key (X-3)', () => {
      it('adds once: a retry with the same key and body answers the same id', async () => {
        const body = { fields: { order: '1001' } };
        const first = await add('idem', body, { idempotencyKey: 'order-1001' });
        expect(first.statusCode).toBe(201);
        const retry = await add('idem', body, { idempotencyKey: 'order-1001' });
        expect(retry.statusCode).toBe(201);
        expect(retry.json()).toEqual(first.json());
        expect(await xlen('idem')).toBe(1);
        // The record lives in the gateway's own namespace, not beside the caller's keys.
        const keys = await t.storedKeys();
        expect(keys.filter((key) => key.startsWith('__gw:idem:')).length).toBeGreaterThan(0);
        // A new key is a new entry.
        const next = await add('idem', body, { idempotencyKey: 'order-1002' });
        expect(next.json().id).not.toBe(first.json().id);
        expect(await xlen('idem')).toBe(2);
      });

      it('adds once when the retries race each other', async () => {
        const body = { fields: { order: 'race' } };
        const responses = await Promise.all(
          Array.from({ length: 10 }, () => add('idem-race', body, { idempotencyKey: 'race-1' })),
        );
        expect(responses.map((response) => response.statusCode)).toEqual(Array(10).fill(201));
        expect(new Set(responses.map((response) => response.json<{ id: string }>().id)).size).toBe(
          1,
        );
        expect(await xlen('idem-race')).toBe(1);
      });

      it('answers 409 IDEMPOTENCY_KEY_REUSED for the same key with another body, writing nothing', async () => {
        await add('idem-reuse', { fields: { a: '1' } }, { idempotencyKey: 'k-1' });
        for (const body of [
          { fields: { a: '2' } },
          { fields: { a: '1' }, maxLen: 10 },
          { fields: { a: '1', b: '2' } },
        ]) {
          expectProblem(
            await add('idem-reuse', body, { idempotencyKey: 'k-1' }),
            409,
            'IDEMPOTENCY_KEY_REUSED',
          );
        }
        expect(await xlen('idem-reuse')).toBe(1);
      });

      it('keeps keys apart per caller (token subject) and per stream', async () => {
        const body = { fields: { a: '1' } };
        const mine = (await add('idem-who', body, { idempotencyKey: 'shared' })).json();
        const otherToken = await t.token({ clientId: 'other-client', scopes: [SCOPES.write] });
        const theirs = await add('idem-who', body, { idempotencyKey: 'shared', token: otherToken });
        expect(theirs.statusCode).toBe(201);
        expect(theirs.json().id).not.toBe(mine.id);
        expect(await xlen('idem-who')).toBe(2);
        const again = await add('idem-who', body, { idempotencyKey: 'shared', token: otherToken });
        expect(again.json().id).toBe(theirs.json().id);
        expect(await xlen('idem-who')).toBe(2);
        const elsewhere = await add('idem-who-2', body, { idempotencyKey: 'shared' });
        expect(elsewhere.statusCode).toBe(201);
        expect(await xlen('idem-who-2')).toBe(1);
      });

      it.each([
        ['empty', ''],
        ['with a space', 'has space'],
        ['over 255 characters', 'k'.repeat(256)],
      ])('refuses a key %s with 400, writing nothing', async (_label, idempotencyKey) => {
        const response = await add('idem-bad', { fields: { a: '1' } }, { idempotencyKey });
        expectProblem(response, 400, 'VALIDATION_FAILED');
        expect(response.json().errors).toEqual([
          { field: 'Idempotency-Key', message: expect.any(String) },
        ]);
        expect(await exists('idem-bad')).toBe(0);
      });

      it('accepts 255 printable ASCII characters', async () => {
        const idempotencyKey = '!~'.repeat(127) + 'x';
        const response = await add('idem-long', { fields: { a: '1' } }, { idempotencyKey });
        expect(response.statusCode).toBe(201);
      });
    });
  });

  describe('GET /redis/streams/{key}/entries', () => {
    beforeAll(async () => {
      await seed('ten', 10);
    });

    it('answers every entry, oldest first, with its fields', async () => {
      const response = await range('ten');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'ten',
        entries: Array.from({ length: 10 }, (_, i) => ({
          id: `${i + 1}-0`,
          fields: { n: String(i + 1) },
        })),
      });
    });

    it('takes inclusive and exclusive bounds, count and reverse', async () => {
      expect(entryIds(await range('ten', { start: '3', end: '5-0' }))).toEqual([
        '3-0',
        '4-0',
        '5-0',
      ]);
      expect(entryIds(await range('ten', { start: '(3-0', end: '(6-0' }))).toEqual(['4-0', '5-0']);
      expect(entryIds(await range('ten', { start: '(8' }))).toEqual(['9-0', '10-0']);
      expect(entryIds(await range('ten', { count: '3' }))).toEqual(['1-0', '2-0', '3-0']);
      expect(entryIds(await range('ten', { start: '(2-0', count: '2' }))).toEqual(['3-0', '4-0']);
      expect(entryIds(await range('ten', { reverse: 'true', count: '3' }))).toEqual([
        '10-0',
        '9-0',
        '8-0',
      ]);
      expect(entryIds(await range('ten', { reverse: 'true', start: '(3-0', end: '(6-0' }))).toEqual(
        ['5-0', '4-0'],
      );
      expect(entryIds(await range('ten', { reverse: 'true', end: '(5-0', count: '2' }))).toEqual([
        '4-0',
        '3-0',
      ]);
      expect(entryIds(await range('ten', { reverse: 'false', count: '1' }))).toEqual(['1-0']);
      expect(entryIds(await range('ten', { start: '11' }))).toEqual([]);
      expect(entryIds(await range('ten', { start: '5', end: '4' }))).toEqual([]);
    });

    it('answers 100 entries at most by default, never more than limits.maxScanCount', async () => {
      await seed('many', 120);
      expect(entryIds(await range('many'))).toHaveLength(50);
      expect(entryIds(await range('many', { count: '50' }))).toHaveLength(50);
      await withApp({ issuer: t.issuer }, async (wide) => {
        const pipeline = wide.redis.pipeline();
        for (let i = 1; i <= 120; i++) {
          pipeline.xadd(`${wide.prefix}many`, `${i}-0`, 'n', String(i));
        }
        await pipeline.exec();
        const response = await wide.call('GET', `${at('many')}/entries`, {
          token: wide.tokens.read,
        });
        expect(response.json().entries).toHaveLength(100);
      });
    });

    it('answers an empty list for a stream with no entries', async () => {
      await t.redis.xgroup('CREATE', sk('empty'), 'g', '$', 'MKSTREAM');
      expect((await range('empty')).json()).toEqual({ key: 'empty', entries: [] });
    });

    it('answers 404 NOT_FOUND when the stream is absent', async () => {
      expectProblem(await range('absent'), 404, 'NOT_FOUND');
      expectProblem(await range('absent', { reverse: 'true' }), 404, 'NOT_FOUND');
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-range');
      expectProblem(await range('str-range'), 409, 'WRONG_TYPE');
    });

    it('refuses values that are not UTF-8 as text (406 NOT_UTF8), and gives them in base64', async () => {
      const bytes = Buffer.from([0xe9, 0x74, 0xe9]);
      await t.redis.xadd(sk('latin1'), '1-0', 'f', bytes);
      expectProblem(await range('latin1'), 406, 'NOT_UTF8');
      expect((await range('latin1', { encoding: 'base64' })).json()).toEqual({
        key: 'latin1',
        entries: [{ id: '1-0', fields: { f: bytes.toString('base64') } }],
      });
    });

    it('answers a field named __proto__ as an ordinary field', async () => {
      await t.redis.xadd(sk('proto'), '1-0', '__proto__', 'p', 'constructor', 'c');
      expect((await range('proto')).json().entries).toEqual([
        { id: '1-0', fields: JSON.parse('{"__proto__":"p","constructor":"c"}') },
      ]);
    });

    it('names the bad bound in the errors list', async () => {
      const response = await range('ten', { start: `(${MAX_ID}`, end: '(0-0' });
      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.json().errors).toEqual([
        { field: 'start', message: expect.any(String) },
        { field: 'end', message: expect.any(String) },
      ]);
      // Without a sequence these are fine: ( after <ms>-0, and ( before <ms>-<max>.
      expect(entryIds(await range('ten', { start: '(18446744073709551615' }))).toEqual([]);
      expect(entryIds(await range('ten', { end: '(0' }))).toEqual([]);
    });

    it('refuses field names that are not UTF-8 (names are text, even with base64)', async () => {
      await t.redis.xadd(sk('latin1-name'), '1-0', Buffer.from([0xff, 0x61]), 'v');
      expectProblem(await range('latin1-name'), 406, 'NOT_UTF8');
      expectProblem(await range('latin1-name', { encoding: 'base64' }), 406, 'NOT_UTF8');
    });

    it.each([
      ['count over limits.maxScanCount', { count: '51' }],
      ['count 0', { count: '0' }],
      ['count -1', { count: '-1' }],
      ['count 1.5', { count: '1.5' }],
      ['count of text', { count: 'ten' }],
      ['a start of text', { start: 'abc' }],
      ['a start of (-', { start: '(-' }],
      ['an end of (+', { end: '(+' }],
      ['a double ((', { start: '((1' }],
      ['an id of three parts', { start: '1-2-3' }],
      ['an empty end', { end: '' }],
      ['a start past 64 bits', { start: '18446744073709551616' }],
      ['an exclusive start after the largest id', { start: `(${MAX_ID}` }],
      ['an exclusive end before 0-0', { end: '(0-0' }],
      ['reverse, an exclusive end before 0-0', { end: '(0-0', reverse: 'true' }],
      ['reverse of text', { reverse: 'maybe' }],
      ['a bad encoding', { encoding: 'hex' }],
      ['an unknown parameter', { limit: '5' }],
    ])('refuses %s with 400', async (_label, query) => {
      expectProblem(await range('ten', query), 400, 'VALIDATION_FAILED');
    });
  });

  describe('GET /redis/streams/{key}', () => {
    it('answers the length, first and last id and the group count', async () => {
      await seed('described', 4);
      await t.redis.xgroup('CREATE', sk('described'), 'a', '$');
      await t.redis.xgroup('CREATE', sk('described'), 'b', '0');
      const response = await info('described');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'described',
        length: 4,
        firstId: '1-0',
        lastId: '4-0',
        groups: 2,
      });
    });

    it('answers null ids for an empty stream', async () => {
      await t.redis.xgroup('CREATE', sk('empty-info'), 'g', '$', 'MKSTREAM');
      expect((await info('empty-info')).json()).toEqual({
        key: 'empty-info',
        length: 0,
        firstId: null,
        lastId: null,
        groups: 1,
      });
    });

    it('answers 404 when the stream is absent and 409 WRONG_TYPE on a string', async () => {
      expectProblem(await info('absent'), 404, 'NOT_FOUND');
      await aString('str-info');
      expectProblem(await info('str-info'), 409, 'WRONG_TYPE');
    });
  });

  describe('DELETE /redis/streams/{key}/entries/{id}', () => {
    it('deletes one entry with 204, then 404; the others stay', async () => {
      await seed('del', 3);
      const deleted = await deleteEntry('del', '2-0');
      expect(deleted.statusCode).toBe(204);
      expect(deleted.body).toBe('');
      expect((await xrange('del')).map((entry) => entry.id)).toEqual(['1-0', '3-0']);
      expectProblem(await deleteEntry('del', '2-0'), 404, 'NOT_FOUND');
      expect((await deleteEntry('del', '3')).statusCode).toBe(204);
      expect((await xrange('del')).map((entry) => entry.id)).toEqual(['1-0']);
    });

    it('answers 404 when the stream is absent, creating nothing', async () => {
      expectProblem(await deleteEntry('absent', '1-0'), 404, 'NOT_FOUND');
      expect(await exists('absent')).toBe(0);
    });

    it.each([
      ['text', 'abc'],
      ['three parts', '1-2-3'],
      ['an exclusive id', '(1'],
      ['a special id', '%2B'],
      ['past 64 bits', '18446744073709551616-0'],
    ])('refuses an id of %s with 400', async (_label, id) => {
      await seed('del-bad', 1);
      expectProblem(await deleteEntry('del-bad', id), 400, 'VALIDATION_FAILED');
      expect(await xlen('del-bad')).toBe(1);
    });

    it('answers 409 WRONG_TYPE on a string and leaves it', async () => {
      await aString('str-del');
      expectProblem(await deleteEntry('str-del', '1-0'), 409, 'WRONG_TYPE');
      expect(await t.redis.get(sk('str-del'))).toBe('a string');
    });
  });

  describe('POST /redis/streams/{key}/trim', () => {
    it('trims exactly to maxLen and answers how many were removed', async () => {
      await seed('trim-len', 10);
      const response = await trim('trim-len', { maxLen: 4 });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ key: 'trim-len', trimmed: 6 });
      expect((await xrange('trim-len')).map((entry) => entry.id)).toEqual([
        '7-0',
        '8-0',
        '9-0',
        '10-0',
      ]);
      expect((await trim('trim-len', { maxLen: 4, approximate: false })).json()).toEqual({
        key: 'trim-len',
        trimmed: 0,
      });
      expect((await trim('trim-len', { maxLen: 0 })).json().trimmed).toBe(4);
      expect(await xlen('trim-len')).toBe(0);
    });

    it('trims by minId', async () => {
      await seed('trim-id', 10);
      expect((await trim('trim-id', { minId: '8-0' })).json()).toEqual({
        key: 'trim-id',
        trimmed: 7,
      });
      expect((await xrange('trim-id')).map((entry) => entry.id)).toEqual(['8-0', '9-0', '10-0']);
    });

    it('trims only whole nodes with approximate: true', async () => {
      await seed('trim-approx', 10);
      expect((await trim('trim-approx', { maxLen: 5, approximate: true })).json()).toEqual({
        key: 'trim-approx',
        trimmed: 0,
      });
      expect(await xlen('trim-approx')).toBe(10);
    });

    it('answers 404 when the stream is absent and creates none', async () => {
      expectProblem(await trim('absent', { maxLen: 1 }), 404, 'NOT_FOUND');
      expectProblem(await trim('absent', { minId: '1-0' }), 404, 'NOT_FOUND');
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-trim');
      expectProblem(await trim('str-trim', { maxLen: 1 }), 409, 'WRONG_TYPE');
      expect(await t.redis.get(sk('str-trim'))).toBe('a string');
    });

    it.each([
      ['an empty body', {}],
      ['approximate alone', { approximate: true }],
      ['both maxLen and minId', { maxLen: 1, minId: '5-0' }],
      ['maxLen -1', { maxLen: -1 }],
      ['maxLen 1.5', { maxLen: 1.5 }],
      ['maxLen as text', { maxLen: '1' }],
      ['minId of text', { minId: 'abc' }],
      ['an exclusive minId', { minId: '(5' }],
      ['minId past 64 bits', { minId: '18446744073709551616' }],
      ['approximate as text', { maxLen: 1, approximate: 'true' }],
      ['an unknown field', { maxLen: 1, strategy: 'MAXLEN' }],
    ])('refuses %s with 400 and trims nothing', async (_label, body) => {
      await seed('trim-bad', 10);
      expectProblem(await trim('trim-bad', body), 400, 'VALIDATION_FAILED');
      expect(await xlen('trim-bad')).toBe(10);
    });
  });

  describe('POST /redis/streams/{key}/groups', () => {
    it('creates a group at the end of the stream by default (201 { key, group })', async () => {
      await seed('grp', 3);
      const response = await createGroup('grp', { group: 'workers' });
      expect(response.statusCode).toBe(201);
      expect(response.json()).toEqual({ key: 'grp', group: 'workers' });
      expect(await xgroups('grp')).toEqual([
        expect.objectContaining({ name: 'workers', 'last-delivered-id': '3-0', pending: 0 }),
      ]);
      expect((await read('grp', 'workers', { consumer: 'c' })).json()).toEqual({ entries: [] });
    });

    it('starts from 0 or an id when asked', async () => {
      await seed('grp-from', 3);
      expect((await createGroup('grp-from', { group: 'all', from: '0' })).statusCode).toBe(201);
      expect((await createGroup('grp-from', { group: 'late', from: '2-0' })).statusCode).toBe(201);
      const all = await read('grp-from', 'all', { consumer: 'c' });
      expect(entryIds(all)).toEqual(['1-0', '2-0', '3-0']);
      expect(entryIds(await read('grp-from', 'late', { consumer: 'c' }))).toEqual(['3-0']);
    });

    it('creates the stream when absent (mkStream by default)', async () => {
      expect((await createGroup('grp-new', { group: 'g' })).statusCode).toBe(201);
      expect(await t.redis.type(sk('grp-new'))).toBe('stream');
      expect(await xlen('grp-new')).toBe(0);
      expect((await createGroup('grp-new-2', { group: 'g', mkStream: true })).statusCode).toBe(201);
      expect(await t.redis.type(sk('grp-new-2'))).toBe('stream');
    });

    it('answers 404 with mkStream: false when the stream is absent, creating nothing', async () => {
      expectProblem(
        await createGroup('grp-absent', { group: 'g', mkStream: false }),
        404,
        'NOT_FOUND',
      );
      expect(await exists('grp-absent')).toBe(0);
      await seed('grp-present', 1);
      expect((await createGroup('grp-present', { group: 'g', mkStream: false })).statusCode).toBe(
        201,
      );
    });

    it('answers 409 GROUP_EXISTS for an existing group, keeping its position', async () => {
      await seed('grp-dup', 2);
      await createGroup('grp-dup', { group: 'g', from: '1-0' });
      expectProblem(await createGroup('grp-dup', { group: 'g', from: '0' }), 409, 'GROUP_EXISTS');
      expect((await xgroups('grp-dup'))[0]['last-delivered-id']).toBe('1-0');
    });

    it('answers 409 WRONG_TYPE on a string and leaves it', async () => {
      await aString('str-grp');
      expectProblem(await createGroup('str-grp', { group: 'g' }), 409, 'WRONG_TYPE');
      expect(await t.redis.get(sk('str-grp'))).toBe('a string');
    });

    it.each([
      ['an empty group name', { group: '' }],
      ['a group name with a control character', { group: 'a\u0007b' }],
      ['a group name with a line break', { group: 'a\nb' }],
      ['a group name with DEL', { group: 'a\u007f' }],
      ['a group name over limits.maxKeyBytes', { group: 'g'.repeat(1025) }],
      ['no group', {}],
      ['a number group', { group: 1 }],
      ['from of text', { group: 'g', from: 'abc' }],
      ['from as >', { group: 'g', from: '>' }],
      ['from past 64 bits', { group: 'g', from: '18446744073709551616' }],
      ['mkStream as text', { group: 'g', mkStream: 'false' }],
      ['an unknown field', { group: 'g', start: '0' }],
    ])('refuses %s with 400 and creates nothing', async (_label, body) => {
      expectProblem(await createGroup('grp-bad', body), 400, 'VALIDATION_FAILED');
      expect(await exists('grp-bad')).toBe(0);
    });
  });

  describe('GET /redis/streams/{key}/groups', () => {
    it('answers each group with its consumers, pending count, last delivered id and lag', async () => {
      await seedWithGroup('groups', 5, 'a');
      await t.redis.xgroup('CREATE', sk('groups'), 'b', '$');
      await read('groups', 'a', { consumer: 'c1', count: 2 });
      await read('groups', 'a', { consumer: 'c2', count: 1 });
      const response = await listGroups('groups');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        key: 'groups',
        groups: [
          { name: 'a', consumers: 2, pending: 3, lastDeliveredId: '3-0', lag: 2 },
          { name: 'b', consumers: 0, pending: 0, lastDeliveredId: '5-0', lag: 0 },
        ],
      });
    });

    it('answers lag null when Redis cannot tell (an entry deleted after the group position)', async () => {
      await seedWithGroup('groups-lag', 3);
      await t.redis.xdel(sk('groups-lag'), '2-0');
      const [group] = (await listGroups('groups-lag')).json().groups;
      expect(group).toEqual({
        name: 'g',
        consumers: 0,
        pending: 0,
        lastDeliveredId: '0-0',
        lag: null,
      });
    });

    it('answers an empty list for a stream without groups', async () => {
      await seed('no-groups', 1);
      expect((await listGroups('no-groups')).json()).toEqual({ key: 'no-groups', groups: [] });
    });

    it('answers 404 when the stream is absent and 409 WRONG_TYPE on a string', async () => {
      expectProblem(await listGroups('absent'), 404, 'NOT_FOUND');
      await aString('str-groups');
      expectProblem(await listGroups('str-groups'), 409, 'WRONG_TYPE');
    });
  });

  describe('DELETE /redis/streams/{key}/groups/{group}', () => {
    it('deletes a group with 204, then 404; the stream and other groups stay', async () => {
      await seedWithGroup('grp-del', 2);
      await t.redis.xgroup('CREATE', sk('grp-del'), 'keep', '0');
      const deleted = await deleteGroup('grp-del', 'g');
      expect(deleted.statusCode).toBe(204);
      expect(deleted.body).toBe('');
      expect((await xgroups('grp-del')).map((group) => group.name)).toEqual(['keep']);
      expect(await xlen('grp-del')).toBe(2);
      expectProblem(await deleteGroup('grp-del', 'g'), 404, 'NOT_FOUND');
    });

    it('answers 404 when the stream is absent, creating nothing', async () => {
      expectProblem(await deleteGroup('absent', 'g'), 404, 'NOT_FOUND');
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string and leaves it', async () => {
      await aString('str-grp-del');
      expectProblem(await deleteGroup('str-grp-del', 'g'), 409, 'WRONG_TYPE');
      expect(await t.redis.get(sk('str-grp-del'))).toBe('a string');
    });

    it.each([
      ['a control character', 'a%07b'],
      ['a line break', 'a%0Ab'],
      ['DEL', 'a%7F'],
      ['invalid UTF-8', 'a%FF'],
    ])('refuses a group name with %s (400), deleting nothing', async (_label, encoded) => {
      await seedWithGroup('grp-del-bad', 1);
      const response = await t.call('DELETE', `${at('grp-del-bad')}/groups/${encoded}`, {
        token: t.tokens.write,
      });
      expect(response.statusCode).toBe(400);
      expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      expect(await xgroups('grp-del-bad')).toHaveLength(1);
    });
  });

  describe('POST /redis/streams/{key}/groups/{group}/read', () => {
    it('delivers new entries to the consumer and moves them to its pending list', async () => {
      await seedWithGroup('rd', 3);
      const response = await read('rd', 'g', { consumer: 'c1' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        entries: [
          { id: '1-0', fields: { n: '1' } },
          { id: '2-0', fields: { n: '2' } },
          { id: '3-0', fields: { n: '3' } },
        ],
      });
      expect(await xpending('rd', 'g')).toEqual([3, '1-0', '3-0', [['c1', '3']]]);
      // Only new entries (`>`): nothing is delivered twice.
      expect((await read('rd', 'g', { consumer: 'c2' })).json()).toEqual({ entries: [] });
    });

    it('delivers at most count entries (10 by default)', async () => {
      await seedWithGroup('rd-count', 15);
      expect(
        (await read('rd-count', 'g', { consumer: 'c', count: 2 })).json().entries,
      ).toHaveLength(2);
      expect((await read('rd-count', 'g', { consumer: 'c' })).json().entries).toHaveLength(10);
      expect((await xpending('rd-count', 'g'))[0]).toBe(12);
    });

    it('tracks nothing as pending with noAck', async () => {
      await seedWithGroup('rd-noack', 2);
      const response = await read('rd-noack', 'g', { consumer: 'c', noAck: true });
      expect(response.json().entries).toHaveLength(2);
      expect((await xpending('rd-noack', 'g'))[0]).toBe(0);
      expect((await xgroups('rd-noack'))[0]['last-delivered-id']).toBe('2-0');
    });

    it('answers 404 when the stream or the group is absent (NOGROUP), with or without blockMs', async () => {
      await seedWithGroup('rd-nogroup', 1);
      expectProblem(await read('absent', 'g', { consumer: 'c' }), 404, 'NOT_FOUND');
      expectProblem(await read('rd-nogroup', 'other', { consumer: 'c' }), 404, 'NOT_FOUND');
      expectProblem(
        await read('rd-nogroup', 'other', { consumer: 'c', blockMs: 100 }),
        404,
        'NOT_FOUND',
      );
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string, with or without blockMs', async () => {
      await aString('str-read');
      expectProblem(await read('str-read', 'g', { consumer: 'c' }), 409, 'WRONG_TYPE');
      expectProblem(
        await read('str-read', 'g', { consumer: 'c', blockMs: 100 }),
        409,
        'WRONG_TYPE',
      );
      expect(await t.redis.get(sk('str-read'))).toBe('a string');
    });

    it('answers 406 NOT_UTF8 for a value that is not text', async () => {
      await seedWithGroup('rd-bin', 0);
      await t.redis.xadd(sk('rd-bin'), '1-0', 'f', Buffer.from([0xff]));
      expectProblem(await read('rd-bin', 'g', { consumer: 'c' }), 406, 'NOT_UTF8');
      // XREADGROUP has delivered it before the answer was refused: it is pending, not lost,
      // and a claim in base64 gets it.
      expect(await pendingOwners('rd-bin', 'g')).toEqual([['1-0', 'c']]);
      const claimed = await claim('rd-bin', 'g', {
        consumer: 'c',
        minIdleMs: 0,
        encoding: 'base64',
      });
      expect(claimed.json().entries).toEqual([{ id: '1-0', fields: { f: '/w==' } }]);
    });

    it('is a write: a read-only token gets 403 insufficient_scope and nothing is delivered', async () => {
      await seedWithGroup('rd-scope', 2);
      const response = await read('rd-scope', 'g', { consumer: 'c' }, t.tokens.read);
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:write"',
      );
      expect(await xpending('rd-scope', 'g')).toEqual([0, null, null, null]);
    });

    it.each([
      ['no consumer', {}],
      ['an empty consumer', { consumer: '' }],
      ['a consumer with a control character', { consumer: 'c\u0001' }],
      ['a consumer with DEL', { consumer: 'c\u007f' }],
      ['a consumer over limits.maxKeyBytes', { consumer: 'c'.repeat(1025) }],
      ['a number consumer', { consumer: 7 }],
      ['count over limits.maxScanCount', { consumer: 'c', count: 51 }],
      ['count 0', { consumer: 'c', count: 0 }],
      ['count 1.5', { consumer: 'c', count: 1.5 }],
      ['blockMs -1', { consumer: 'c', blockMs: -1 }],
      ['blockMs 1.5', { consumer: 'c', blockMs: 1.5 }],
      ['blockMs as text', { consumer: 'c', blockMs: '100' }],
      ['blockMs past 2^31-1', { consumer: 'c', blockMs: 2 ** 31 }],
      ['noAck as text', { consumer: 'c', noAck: 'yes' }],
      ['a bad encoding', { consumer: 'c', encoding: 'hex' }],
      ['an unknown field', { consumer: 'c', id: '0' }],
    ])('refuses %s with 400 and delivers nothing', async (_label, body) => {
      await seedWithGroup('rd-bad', 2);
      expectProblem(await read('rd-bad', 'g', body), 400, 'VALIDATION_FAILED');
      expect(await xpending('rd-bad', 'g')).toEqual([0, null, null, null]);
      expect((await xgroups('rd-bad'))[0].consumers).toBe(0);
    });

    it('refuses a group name with a control character (400)', async () => {
      const response = await t.call('POST', `${at('rd-bad')}/groups/g%1B/read`, {
        token: t.tokens.write,
        body: { consumer: 'c' },
      });
      expectProblem(response, 400, 'VALIDATION_FAILED');
    });

    describe('blockMs', () => {
      it('waits for blockMs and answers an empty list when nothing arrives', async () => {
        await seedWithGroup('blk-empty', 0);
        const started = Date.now();
        const response = await read('blk-empty', 'g', { consumer: 'c', blockMs: 200 });
        const elapsed = Date.now() - started;
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ entries: [] });
        expect(elapsed).toBeGreaterThanOrEqual(180);
        expect(elapsed).toBeLessThan(1200);
      });

      it('caps blockMs at limits.maxBlockMs instead of refusing it', async () => {
        await seedWithGroup('blk-cap', 0);
        const started = Date.now();
        const response = await read('blk-cap', 'g', { consumer: 'c', blockMs: 60000 });
        const elapsed = Date.now() - started;
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ entries: [] });
        expect(elapsed).toBeGreaterThanOrEqual(280);
        expect(elapsed).toBeLessThan(300 + 1000);
      });

      it('answers at once when entries are there, without waiting', async () => {
        await seedWithGroup('blk-ready', 1);
        const started = Date.now();
        const response = await read('blk-ready', 'g', { consumer: 'c', blockMs: 300 });
        expect(response.json().entries).toHaveLength(1);
        expect(Date.now() - started).toBeLessThan(250);
      });

      it('uses the bounded blocking pool: past redis.blockingPoolSize waiting reads, 503', async () => {
        await withApp(
          {
            issuer: t.issuer,
            config: { limits: { maxBlockMs: 300 }, redis: { blockingPoolSize: 1 } },
          },
          async (small) => {
            await small.redis.xgroup('CREATE', `${small.prefix}pool`, 'g', '$', 'MKSTREAM');
            const readPool = () =>
              small.call('POST', `${groupAt('pool', 'g')}/read`, {
                token: small.tokens.write,
                body: { consumer: 'c', blockMs: 300 },
              });
            const first = readPool();
            await sleep(50);
            const second = await readPool();
            expectProblem(second, 503, 'BLOCKING_POOL_EXHAUSTED');
            expect(second.headers['retry-after']).toBeDefined();
            // Reads without blockMs and other routes do not use the pool.
            const plain = await small.call('POST', `${groupAt('pool', 'g')}/read`, {
              token: small.tokens.write,
              body: { consumer: 'c' },
            });
            expect(plain.json()).toEqual({ entries: [] });
            expect((await first).json()).toEqual({ entries: [] });
            expect((await readPool()).statusCode).toBe(200);
          },
        );
      });

      it('returns an entry added while it waits', async () => {
        await seedWithGroup('blk-wake', 0);
        const started = Date.now();
        const waiting = read('blk-wake', 'g', { consumer: 'c', blockMs: 300 });
        await sleep(100);
        const added = (await add('blk-wake', { fields: { late: 'yes' } })).json();
        const response = await waiting;
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ entries: [{ id: added.id, fields: { late: 'yes' } }] });
        expect(Date.now() - started).toBeLessThan(300);
        expect(await pendingOwners('blk-wake', 'g')).toEqual([[added.id, 'c']]);
      });
    });
  });

  describe('POST /redis/streams/{key}/groups/{group}/ack', () => {
    it('acknowledges pending entries and answers how many', async () => {
      await seedWithGroup('ack', 3);
      await read('ack', 'g', { consumer: 'c' });
      const response = await ack('ack', 'g', { ids: ['1-0', '3'] });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ acknowledged: 2 });
      expect(await pendingOwners('ack', 'g')).toEqual([['2-0', 'c']]);
      // Already acknowledged, never delivered or unknown ids count 0.
      expect((await ack('ack', 'g', { ids: ['1-0', '9-0', '12345-6'] })).json()).toEqual({
        acknowledged: 0,
      });
      expect(await pendingOwners('ack', 'g')).toEqual([['2-0', 'c']]);
    });

    it('answers 404 when the stream or the group is absent, creating nothing', async () => {
      await seedWithGroup('ack-nogroup', 1);
      expectProblem(await ack('absent', 'g', { ids: ['1-0'] }), 404, 'NOT_FOUND');
      expectProblem(await ack('ack-nogroup', 'other', { ids: ['1-0'] }), 404, 'NOT_FOUND');
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-ack');
      expectProblem(await ack('str-ack', 'g', { ids: ['1-0'] }), 409, 'WRONG_TYPE');
    });

    it.each([
      ['no ids', {}],
      ['an empty list', { ids: [] }],
      ['more ids than limits.maxBatchKeys', { ids: ['1', '2', '3', '4', '5', '6'] }],
      ['ids not a list', { ids: '1-0' }],
      ['an id of text', { ids: ['1-0', 'abc'] }],
      ['a number id', { ids: [1] }],
      ['an exclusive id', { ids: ['(1-0'] }],
      ['an id past 64 bits', { ids: ['18446744073709551616-0'] }],
      ['an unknown field', { ids: ['1-0'], group: 'g' }],
    ])('refuses %s with 400 and acknowledges nothing', async (_label, body) => {
      await seedWithGroup('ack-bad', 2);
      await read('ack-bad', 'g', { consumer: 'c' });
      expectProblem(await ack('ack-bad', 'g', body), 400, 'VALIDATION_FAILED');
      expect((await xpending('ack-bad', 'g'))[0]).toBe(2);
    });
  });

  describe('GET /redis/streams/{key}/groups/{group}/pending', () => {
    beforeAll(async () => {
      await seedWithGroup('pend', 4);
      await read('pend', 'g', { consumer: 'old', count: 2 });
      await sleep(150);
      await read('pend', 'g', { consumer: 'new', count: 2 });
    });

    it('answers the summary per consumer and the pending entries, oldest first', async () => {
      const response = await pending('pend', 'g');
      expect(response.statusCode).toBe(200);
      const body = response.json();
      expect(body).toEqual({
        count: 4,
        minId: '1-0',
        maxId: '4-0',
        consumers: [
          { name: 'new', pending: 2 },
          { name: 'old', pending: 2 },
        ],
        pending: [
          { id: '1-0', consumer: 'old', idleMs: expect.any(Number), deliveries: 1 },
          { id: '2-0', consumer: 'old', idleMs: expect.any(Number), deliveries: 1 },
          { id: '3-0', consumer: 'new', idleMs: expect.any(Number), deliveries: 1 },
          { id: '4-0', consumer: 'new', idleMs: expect.any(Number), deliveries: 1 },
        ],
      });
      expect(body.pending[0].idleMs).toBeGreaterThanOrEqual(140);
    });

    it('filters by consumer, by minIdleMs and limits with count', async () => {
      const ids = (response: Response) =>
        response.json<{ pending: { id: string }[] }>().pending.map((entry) => entry.id);
      expect(ids(await pending('pend', 'g', { consumer: 'new' }))).toEqual(['3-0', '4-0']);
      expect(ids(await pending('pend', 'g', { minIdleMs: '120' }))).toEqual(['1-0', '2-0']);
      expect(ids(await pending('pend', 'g', { minIdleMs: '120', consumer: 'new' }))).toEqual([]);
      expect(ids(await pending('pend', 'g', { count: '3' }))).toEqual(['1-0', '2-0', '3-0']);
      expect(ids(await pending('pend', 'g', { consumer: 'nobody' }))).toEqual([]);
      // The summary stays the whole group's.
      expect((await pending('pend', 'g', { consumer: 'new' })).json().count).toBe(4);
    });

    it('answers an empty summary for a group with nothing pending', async () => {
      await seedWithGroup('pend-none', 1);
      expect((await pending('pend-none', 'g')).json()).toEqual({
        count: 0,
        minId: null,
        maxId: null,
        consumers: [],
        pending: [],
      });
    });

    it('answers 404 when the stream or the group is absent, and 409 WRONG_TYPE on a string', async () => {
      expectProblem(await pending('absent', 'g'), 404, 'NOT_FOUND');
      expectProblem(await pending('pend', 'other'), 404, 'NOT_FOUND');
      await aString('str-pend');
      expectProblem(await pending('str-pend', 'g'), 409, 'WRONG_TYPE');
    });

    it.each([
      ['count over limits.maxScanCount', { count: '51' }],
      ['count 0', { count: '0' }],
      ['count of text', { count: 'all' }],
      ['minIdleMs -1', { minIdleMs: '-1' }],
      ['minIdleMs 1.5', { minIdleMs: '1.5' }],
      ['an empty consumer', { consumer: '' }],
      ['a consumer with a control character', { consumer: 'c\u0007' }],
      ['an unknown parameter', { start: '-' }],
    ])('refuses %s with 400', async (_label, query) => {
      expectProblem(await pending('pend', 'g', query), 400, 'VALIDATION_FAILED');
    });
  });

  describe('POST /redis/streams/{key}/groups/{group}/claim', () => {
    it('moves entries idle for minIdleMs to the claiming consumer', async () => {
      await seedWithGroup('clm', 3);
      await read('clm', 'g', { consumer: 'a' });
      // Not idle long enough: nothing moves.
      expect((await claim('clm', 'g', { consumer: 'b', minIdleMs: 60000 })).json()).toEqual({
        entries: [],
        nextStart: '0-0',
        deletedIds: [],
      });
      expect((await pendingOwners('clm', 'g')).map(([, owner]) => owner)).toEqual(['a', 'a', 'a']);
      await sleep(60);
      const response = await claim('clm', 'g', { consumer: 'b', minIdleMs: 50 });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        entries: [
          { id: '1-0', fields: { n: '1' } },
          { id: '2-0', fields: { n: '2' } },
          { id: '3-0', fields: { n: '3' } },
        ],
        nextStart: '0-0',
        deletedIds: [],
      });
      expect(await pendingOwners('clm', 'g')).toEqual([
        ['1-0', 'b'],
        ['2-0', 'b'],
        ['3-0', 'b'],
      ]);
      const [, , , consumers] = await xpending('clm', 'g');
      expect(consumers).toEqual([['b', '3']]);
    });

    it('pages with count and nextStart', async () => {
      await seedWithGroup('clm-page', 3);
      await read('clm-page', 'g', { consumer: 'a' });
      const first = await claim('clm-page', 'g', { consumer: 'b', minIdleMs: 0, count: 2 });
      expect(entryIds(first)).toEqual(['1-0', '2-0']);
      const { nextStart } = first.json<{ nextStart: string }>();
      expect(nextStart).toBe('3-0');
      const rest = await claim('clm-page', 'g', {
        consumer: 'b',
        minIdleMs: 0,
        count: 2,
        start: nextStart,
      });
      expect(entryIds(rest)).toEqual(['3-0']);
      expect(rest.json().nextStart).toBe('0-0');
      expect((await pendingOwners('clm-page', 'g')).map(([, owner]) => owner)).toEqual([
        'b',
        'b',
        'b',
      ]);
    });

    it('reports pending entries that were deleted in deletedIds and drops them', async () => {
      await seedWithGroup('clm-del', 3);
      await read('clm-del', 'g', { consumer: 'a' });
      await t.redis.xdel(sk('clm-del'), '2-0');
      const response = await claim('clm-del', 'g', { consumer: 'b', minIdleMs: 0 });
      expect(response.json()).toEqual({
        entries: [
          { id: '1-0', fields: { n: '1' } },
          { id: '3-0', fields: { n: '3' } },
        ],
        nextStart: '0-0',
        deletedIds: ['2-0'],
      });
      expect(await pendingOwners('clm-del', 'g')).toEqual([
        ['1-0', 'b'],
        ['3-0', 'b'],
      ]);
    });

    it('answers 404 when the stream or the group is absent, creating nothing', async () => {
      await seedWithGroup('clm-nogroup', 1);
      expectProblem(await claim('absent', 'g', { consumer: 'b', minIdleMs: 0 }), 404, 'NOT_FOUND');
      expectProblem(
        await claim('clm-nogroup', 'other', { consumer: 'b', minIdleMs: 0 }),
        404,
        'NOT_FOUND',
      );
      expect(await exists('absent')).toBe(0);
    });

    it('answers 409 WRONG_TYPE on a string', async () => {
      await aString('str-claim');
      expectProblem(
        await claim('str-claim', 'g', { consumer: 'b', minIdleMs: 0 }),
        409,
        'WRONG_TYPE',
      );
    });

    it('answers 406 NOT_UTF8 for a value that is not text', async () => {
      await seedWithGroup('clm-bin', 0);
      await t.redis.xadd(sk('clm-bin'), '1-0', 'f', Buffer.from([0xff]));
      await t.redis.xreadgroup('GROUP', 'g', 'a', 'STREAMS', sk('clm-bin'), '>');
      expectProblem(await claim('clm-bin', 'g', { consumer: 'b', minIdleMs: 0 }), 406, 'NOT_UTF8');
    });

    it.each([
      ['no consumer', { minIdleMs: 0 }],
      ['an empty consumer', { consumer: '', minIdleMs: 0 }],
      ['a consumer with a control character', { consumer: 'b\u0000', minIdleMs: 0 }],
      ['no minIdleMs', { consumer: 'b' }],
      ['minIdleMs -1', { consumer: 'b', minIdleMs: -1 }],
      ['minIdleMs as text', { consumer: 'b', minIdleMs: '0' }],
      ['minIdleMs past 2^31-1', { consumer: 'b', minIdleMs: 2 ** 31 }],
      ['count over limits.maxScanCount', { consumer: 'b', minIdleMs: 0, count: 51 }],
      ['count 0', { consumer: 'b', minIdleMs: 0, count: 0 }],
      ['start of text', { consumer: 'b', minIdleMs: 0, start: 'abc' }],
      ['start past 64 bits', { consumer: 'b', minIdleMs: 0, start: '18446744073709551616' }],
      ['an unknown field', { consumer: 'b', minIdleMs: 0, justId: true }],
    ])('refuses %s with 400 and moves nothing', async (_label, body) => {
      await seedWithGroup('clm-bad', 2);
      await read('clm-bad', 'g', { consumer: 'a' });
      expectProblem(await claim('clm-bad', 'g', body), 400, 'VALIDATION_FAILED');
      expect((await pendingOwners('clm-bad', 'g')).map(([, owner]) => owner)).toEqual(['a', 'a']);
    });
  });

  describe('scopes', () => {
    it.each([
      ['POST', '/redis/streams/s/entries', 'write'],
      ['GET', '/redis/streams/s/entries', 'read'],
      ['GET', '/redis/streams/s', 'read'],
      ['DELETE', '/redis/streams/s/entries/1-0', 'write'],
      ['POST', '/redis/streams/s/trim', 'write'],
      ['POST', '/redis/streams/s/groups', 'write'],
      ['GET', '/redis/streams/s/groups', 'read'],
      ['DELETE', '/redis/streams/s/groups/g', 'write'],
      ['POST', '/redis/streams/s/groups/g/read', 'write'],
      ['POST', '/redis/streams/s/groups/g/ack', 'write'],
      ['GET', '/redis/streams/s/groups/g/pending', 'read'],
      ['POST', '/redis/streams/s/groups/g/claim', 'write'],
    ] as const)('%s %s needs redis:%s and a token', async (method, url, scope) => {
      const body = method === 'POST' ? {} : undefined;
      await expectScopeGuarded(t, method, url, scope, body);
      const allowed = await t.call(method, url, { token: t.tokens.both, body });
      expect([200, 201, 204, 400, 404]).toContain(allowed.statusCode);
    });

    it('a write-only token cannot read (nothing leaks) and a read token adds nothing', async () => {
      await seed('scoped', 1);
      expectProblem(
        await add('scoped', { fields: { a: '1' } }, { token: t.tokens.read }),
        403,
        'INSUFFICIENT_SCOPE',
      );
      expect(await xlen('scoped')).toBe(1);
      const response = await t.call('GET', `${at('scoped')}/entries`, { token: t.tokens.write });
      expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
      expect(response.body).not.toContain('"n"');
    });
  });

  describe('key patterns (redis_keys) and the reserved namespace', () => {
    const appOnly = () => t.token({ scopes: [SCOPES.read, SCOPES.write], keyPatterns: ['app:*'] });

    /** One request per route against `key`, with a body that would pass validation. */
    const everyRoute = (token: string, key: string) => [
      t.call('POST', `${at(key)}/entries`, { token, body: { fields: { a: 'x' } } }),
      t.call('POST', `${at(key)}/entries`, {
        token,
        body: { fields: { a: 'x' } },
        headers: { 'idempotency-key': 'k' },
      }),
      t.call('GET', `${at(key)}/entries`, { token }),
      t.call('GET', at(key), { token }),
      t.call('DELETE', `${at(key)}/entries/1-0`, { token }),
      t.call('POST', `${at(key)}/trim`, { token, body: { maxLen: 0 } }),
      t.call('POST', `${at(key)}/groups`, { token, body: { group: 'new', from: '0' } }),
      t.call('GET', `${at(key)}/groups`, { token }),
      t.call('DELETE', groupAt(key, 'g'), { token }),
      t.call('POST', `${groupAt(key, 'g')}/read`, { token, body: { consumer: 'thief' } }),
      t.call('POST', `${groupAt(key, 'g')}/read`, {
        token,
        body: { consumer: 'thief', blockMs: 100 },
      }),
      t.call('POST', `${groupAt(key, 'g')}/ack`, { token, body: { ids: ['1-0', '2-0'] } }),
      t.call('GET', `${groupAt(key, 'g')}/pending`, { token }),
      t.call('POST', `${groupAt(key, 'g')}/claim`, {
        token,
        body: { consumer: 'thief', minIdleMs: 0 },
      }),
    ];

    /** The stream `key` with 3 entries, group g, 2 of them pending for consumer a. */
    const victim = async (key: string) => {
      await seedWithGroup(key, 3);
      await t.redis.xreadgroup('GROUP', 'g', 'a', 'COUNT', 2, 'STREAMS', sk(key), '>');
    };
    const expectUntouched = async (key: string) => {
      expect((await xrange(key)).map((entry) => entry.id)).toEqual(['1-0', '2-0', '3-0']);
      expect((await xgroups(key)).map((group) => group.name)).toEqual(['g']);
      expect(await pendingOwners(key, 'g')).toEqual([
        ['1-0', 'a'],
        ['2-0', 'a'],
      ]);
      expect((await xgroups(key))[0]['last-delivered-id']).toBe('2-0');
    };

    it('allows streams that match a pattern', async () => {
      const token = await appOnly();
      expect((await add('app:s', { fields: { a: '1' } }, { token })).statusCode).toBe(201);
      const created = await t.call('POST', `${at('app:s')}/groups`, {
        token,
        body: { group: 'g', from: '0' },
      });
      expect(created.statusCode).toBe(201);
      const delivered = await read('app:s', 'g', { consumer: 'c' }, token);
      expect(delivered.json().entries).toHaveLength(1);
    });

    it('refuses a stream outside the patterns on every route (403 KEY_FORBIDDEN), changing nothing (X-6)', async () => {
      const token = await appOnly();
      await victim('other:s');
      for (const response of await Promise.all(everyRoute(token, 'other:s'))) {
        expectProblem(response, 403, 'KEY_FORBIDDEN');
        expect(response.body).not.toContain('"n"');
      }
      await expectUntouched('other:s');
    });

    it('refuses names in __gw: even with both scopes and no pattern claim', async () => {
      await victim('__gw:s');
      for (const response of await Promise.all(everyRoute(t.tokens.both, '__gw:s'))) {
        expectProblem(response, 403, 'KEY_FORBIDDEN');
      }
      await expectUntouched('__gw:s');
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
      const responses = await Promise.all([
        t.call('POST', `/redis/streams/${encoded}/entries`, {
          token: t.tokens.write,
          body: { fields: { a: 'v' } },
        }),
        t.call('POST', `/redis/streams/${encoded}/groups`, {
          token: t.tokens.write,
          body: { group: 'g' },
        }),
        t.call('GET', `/redis/streams/${encoded}`, { token: t.tokens.read }),
      ]);
      for (const response of responses) {
        expect(response.statusCode).toBe(400);
        expect(['VALIDATION_FAILED', 'BAD_REQUEST']).toContain(response.json().code);
      }
      const keys = await t.storedKeys();
      expect(keys.filter((key) => key.startsWith('bad'))).toEqual([]);
    });

    it('accepts a key of limits.maxKeyBytes bytes and refuses one byte more', async () => {
      expect((await add('k'.repeat(1024), { fields: { a: 'v' } })).statusCode).toBe(201);
      expectProblem(
        await add(`bad${'k'.repeat(1022)}`, { fields: { a: 'v' } }),
        400,
        'VALIDATION_FAILED',
      );
      expect(await exists(`bad${'k'.repeat(1022)}`)).toBe(0);
    });
  });
});

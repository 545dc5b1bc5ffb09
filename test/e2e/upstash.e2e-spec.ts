import { Redis as Upstash } from '@upstash/redis';
import { SCOPES } from '../../src/auth/scopes';
import { NO_CALLER_LIMITS, TestApp } from '../support/app';
import { redisCli } from '../support/topology';

/**
 * The Upstash-compatible endpoint driven by the unmodified @upstash/redis SDK from npm, over
 * real HTTP, with real tokens, against the Redis of this test project (standalone, sentinel or
 * cluster): what the SDK does works, and what a token may not do is refused with the SDK's
 * error, writing nothing, never touching a key outside the gateway's prefix.
 */
describe('Upstash-compatible endpoint (@upstash/redis SDK)', () => {
  let t: TestApp;
  let rw: Upstash;
  let plain: Upstash;
  let readOnly: Upstash;
  let confined: Upstash;
  let url: string;
  /** Every name a test uses: none of them may exist outside the prefix. */
  const names = new Set<string>();
  const name = (text: string) => {
    names.add(text);
    return text;
  };
  const stored = (key: string) => t.redis.get(t.prefix + key);

  /** Options of the SDK's Node.js client (its config type is not exported). */
  type SdkOptions = {
    enableAutoPipelining?: boolean;
    responseEncoding?: false | 'base64';
  };
  const sdk = (token: string, options: SdkOptions = {}) =>
    new Upstash({ url, token, enableTelemetry: false, retry: false, ...options });

  /** A request the SDK cannot make (an arbitrary command), as raw HTTP. */
  const post = async (path: string, token: string | undefined, body: unknown, base64 = false) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token && { authorization: `Bearer ${token}` }),
        ...(base64 && { 'upstash-encoding': 'base64' }),
      },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { ...NO_CALLER_LIMITS, upstash: { enabled: true, maxPipelineCommands: 300 } },
    });
    url = `${t.baseUrl}/redis/upstash`;
    // One request per command here; the auto-pipelining test turns it on (the SDK's default).
    const single = { enableAutoPipelining: false };
    rw = sdk(t.tokens.both, single);
    plain = sdk(t.tokens.both, { ...single, responseEncoding: false });
    readOnly = sdk(t.tokens.read, single);
    confined = sdk(
      await t.token({ scopes: [SCOPES.read, SCOPES.write], keyPatterns: ['app:*'] }),
      single,
    );
  });

  afterAll(async () => {
    try {
      // No name a test used exists outside the prefix: every command went under it.
      const outside = await Promise.all([...names].map((key) => t.redis.exists(key)));
      expect(outside.reduce((sum, count) => sum + count, 0)).toBe(0);
      // And as redis-cli lists every server's whole keyspace (the address the test client is
      // connected to, which Sentinel chose): the keys are there, all under the prefix.
      const listings = await Promise.all(
        t
          .servers()
          .map(({ stream, options }) =>
            redisCli([
              '-h',
              stream.remoteAddress ?? '127.0.0.1',
              '-p',
              String(stream.remotePort),
              ...(options.password ? ['--no-auth-warning', '--pass', options.password] : []),
              '--scan',
            ]),
          ),
      );
      const listed = listings.join('\n').split('\n');
      expect(listed.filter((key) => names.has(key))).toEqual([]);
      const prefixed = listed.filter((key) => names.has(key.slice(t.prefix.length)));
      expect(prefixed.length).toBeGreaterThan(5);
    } finally {
      await t.close();
    }
  });

  it('strings with a TTL, JSON values, counters and mget', async () => {
    expect(await rw.set(name('s:1'), 'hello', { ex: 60 })).toBe('OK');
    expect(await rw.get(name('s:1'))).toBe('hello');
    expect(await rw.ttl('s:1')).toBeGreaterThan(55);
    expect(await t.redis.ttl(`${t.prefix}s:1`)).toBeGreaterThan(55);
    expect(await stored('s:1')).toBe('hello');

    await rw.set(name('s:json'), { user: 'ada', tags: ['a', 'b'], n: 1.5 });
    expect(await rw.get('s:json')).toEqual({ user: 'ada', tags: ['a', 'b'], n: 1.5 });

    expect(await rw.incr(name('s:count'))).toBe(1);
    expect(await rw.incrby('s:count', 41)).toBe(42);
    expect(await rw.decr('s:count')).toBe(41);
    expect(await rw.incrbyfloat(name('s:float'), 0.5)).toBe(0.5);
    expect(await stored('s:count')).toBe('41');
    // One hash tag, so that MGET also works in cluster mode.
    await rw.mset({ [name('{m}:a')]: 'x', [name('{m}:b')]: 2 });
    expect(await rw.mget('{m}:a', '{m}:b', name('{m}:absent'))).toEqual(['x', 2, null]);
  });

  it('in cluster mode a command across hash slots gets CROSSSLOT, as from Redis itself', async () => {
    const across = rw.mget('s:1', 's:count', 's:json');
    if (t.topology === 'cluster') {
      await expect(across).rejects.toThrow(/^CROSSSLOT/);
      // In a pipeline it fails alone; the others still run.
      const kept = await rw
        .pipeline()
        .mget('s:1', 's:count', 's:json')
        .set(name('cs:1'), 'x')
        .exec({ keepErrors: true });
      expect(kept[0].error).toMatch(/^CROSSSLOT/);
      expect(await stored('cs:1')).toBe('x');
      // A transaction across slots is refused whole: nothing written.
      await expect(rw.multi().set(name('cs:a'), '1').set(name('cs:b'), '2').exec()).rejects.toThrow(
        /^CROSSSLOT/,
      );
      expect(await stored('cs:a')).toBeNull();
    } else {
      expect(await across).toEqual(['hello', 41, { user: 'ada', tags: ['a', 'b'], n: 1.5 }]);
    }
  });

  it('hashes, lists, sets and sorted sets', async () => {
    expect(await rw.hset(name('h:1'), { name: 'Ada', visits: 1 })).toBe(2);
    expect(await rw.hget('h:1', 'name')).toBe('Ada');
    expect(await rw.hincrby('h:1', 'visits', 2)).toBe(3);
    expect(await rw.hgetall('h:1')).toEqual({ name: 'Ada', visits: 3 });
    expect(await t.redis.hgetall(`${t.prefix}h:1`)).toEqual({ name: 'Ada', visits: '3' });

    expect(await rw.rpush(name('l:1'), 'a', 'b', 'c')).toBe(3);
    expect(await rw.lpush('l:1', 'z')).toBe(4);
    expect(await rw.lrange('l:1', 0, -1)).toEqual(['z', 'a', 'b', 'c']);
    expect(await rw.lpop('l:1')).toBe('z');

    expect(await rw.sadd(name('set:1'), 'x', 'y', 'x')).toBe(2);
    expect((await rw.smembers('set:1')).sort()).toEqual(['x', 'y']);
    expect(await rw.sismember('set:1', 'y')).toBe(1);

    expect(await rw.zadd(name('z:1'), { score: 2, member: 'b' }, { score: 1, member: 'a' })).toBe(
      2,
    );
    expect(await rw.zrange('z:1', 0, -1, { withScores: true })).toEqual(['a', 1, 'b', 2]);
    expect(await rw.zscore('z:1', 'b')).toBe(2);
    expect(await t.redis.zcard(`${t.prefix}z:1`)).toBe(2);
  });

  it('streams: XADD, XRANGE, XLEN, XREAD (its reply names keys without the prefix)', async () => {
    const id = await rw.xadd(name('st:1'), '*', { order: '1234', total: '9.90' });
    expect(id).toMatch(/^\d+-\d+$/);
    expect(await rw.xlen('st:1')).toBe(1);
    expect(await rw.xrange('st:1', '-', '+')).toEqual({ [id]: { order: 1234, total: 9.9 } });
    const read = (await rw.xread('st:1', '0')) as unknown[][];
    expect(read[0][0]).toBe('st:1');
    expect(await t.redis.xlen(`${t.prefix}st:1`)).toBe(1);
  });

  it('a blocking BLPOP through the blocking pool answers with the key as the caller named it', async () => {
    await rw.rpush(name('bl:1'), 'job');
    const reply = await post('', t.tokens.both, ['blpop', 'bl:1', 1]);
    expect(reply).toEqual({ status: 200, body: { result: ['bl:1', 'job'] } });
    // A block without an end, or longer than limits.maxBlockMs, is refused.
    const forever = await post('', t.tokens.both, ['blpop', 'bl:1', 0]);
    expect(forever.status).toBe(400);
    expect(forever.body.error).toMatch(/^ERR a blocking command must block/);
  });

  it('SCAN is confined to the prefix: it lists only this app keys, named without the prefix', async () => {
    await Promise.all(['scan:a', 'scan:b', 'scan:c'].map((key) => rw.set(name(key), '1')));
    // A key outside the prefix whose name would otherwise match.
    await t.redis.set(`scan:outside:${t.prefix}`, '1', 'EX', 60);
    const found = new Set<string>();
    let cursor = '0';
    let rounds = 0;
    do {
      const [next, keys] = await rw.scan(cursor, { match: 'scan:*', count: 100 });
      keys.forEach((key) => found.add(key));
      cursor = String(next);
      rounds += 1;
    } while (cursor !== '0' && rounds < 1000);
    expect([...found].sort()).toEqual(['scan:a', 'scan:b', 'scan:c']);
    await t.redis.del(`scan:outside:${t.prefix}`);
  });

  it('an explicit pipeline: replies in order, each command on its own', async () => {
    const results = await rw
      .pipeline()
      .set(name('p:1'), 'one')
      .get('p:1')
      .incr(name('p:n'))
      .hset(name('p:h'), { f: 'v' })
      .get(name('p:none'))
      .exec();
    expect(results).toEqual(['OK', 'one', 1, 1, null]);

    // A command that fails fails alone (the SDK's keepErrors shows it), the others still run.
    const kept = await rw
      .pipeline()
      .hget('p:1', 'x')
      .set(name('p:2'), 'two')
      .exec({ keepErrors: true });
    expect(kept[0].error).toMatch(/^WRONGTYPE/);
    expect(kept[1].result).toBe('OK');
    expect(await stored('p:2')).toBe('two');
  });

  it('a transaction (MULTI/EXEC) applies every command', async () => {
    const results = await rw
      .multi()
      .set(name('{tx}:a'), '1')
      .incr('{tx}:a')
      .rpush(name('{tx}:l'), 'x')
      .exec();
    expect(results).toEqual(['OK', 2, 1]);
    expect(await stored('{tx}:a')).toBe('2');
    // A command that fails at EXEC fails alone, as in Redis; one refused while queueing aborts all.
    const failing = await rw.multi().hget('{tx}:a', 'f').incr('{tx}:a').exec({ keepErrors: true });
    expect(failing[0].error).toMatch(/^WRONGTYPE/);
    expect(failing[1].result).toBe(3);
    const aborted = await post('/multi-exec', t.tokens.both, [
      ['incr', '{tx}:a'],
      ['set', '{tx}:a'],
    ]);
    expect(aborted.status).toBe(400);
    expect(aborted.body.error).toMatch(/wrong number of arguments/);
    expect(await stored('{tx}:a')).toBe('3');
  });

  it('auto-pipelining under a burst of 200 calls: every answer right, in a few requests', async () => {
    const auto = sdk(t.tokens.both, { enableAutoPipelining: true });
    const writes = Array.from({ length: 100 }, () => auto.incr(name('auto:n')));
    const reads = Array.from({ length: 100 }, (_, i) => auto.set(name(`auto:${i % 10}`), i));
    const answers = await Promise.all([...writes, ...reads]);
    expect(answers.slice(0, 100).sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    expect(answers.slice(100).every((answer) => answer === 'OK')).toBe(true);
    expect(await stored('auto:n')).toBe('100');
    const requests = (auto as unknown as { pipelineCounter: number }).pipelineCounter;
    expect(requests).toBeGreaterThanOrEqual(1);
    expect(requests).toBeLessThan(10);
  });

  it('base64 on (the SDK default) and off carry the same text, unicode included', async () => {
    const text = 'héllo wörld ✓ 🚀';
    await plain.set(name('enc:1'), text);
    expect(await rw.get('enc:1')).toBe(text);
    expect(await plain.get('enc:1')).toBe(text);
    // On the wire: every string in base64 but a top-level OK, nested strings too.
    const raw = await post('', t.tokens.both, ['get', 'enc:1'], true);
    expect(raw.body.result).toBe(Buffer.from(text).toString('base64'));
    expect((await post('', t.tokens.both, ['set', 'enc:2', 'OK'], true)).body.result).toBe('OK');
    names.add('enc:2');
    const nested = await post('', t.tokens.both, ['lrange', 'l:1', 0, 0], true);
    expect(nested.body.result).toEqual([Buffer.from('a').toString('base64')]);
    const unencoded = await post('', t.tokens.both, ['lrange', 'l:1', 0, 0]);
    expect(unencoded.body.result).toEqual(['a']);
  });

  describe('refusals: the SDK error, nothing written', () => {
    it('a read-only token reads but cannot write', async () => {
      await rw.set(name('ro:1'), 'kept');
      expect(await readOnly.get('ro:1')).toBe('kept');
      await expect(readOnly.set('ro:1', 'changed')).rejects.toThrow(/NOPERM SET changes Redis/);
      await expect(readOnly.set(name('ro:new'), 'x')).rejects.toThrow(/NOPERM/);
      // In a pipeline the read is not run either: the whole request is refused first.
      await expect(readOnly.pipeline().get('ro:1').del('ro:1').exec()).rejects.toThrow(/NOPERM/);
      expect(await stored('ro:1')).toBe('kept');
      expect(await stored('ro:new')).toBeNull();
      const raw = await post('', t.tokens.read, ['del', 'ro:1']);
      expect(raw).toMatchObject({ status: 403, body: { code: 'INSUFFICIENT_SCOPE' } });
    });

    it('a token confined by key patterns, alone and inside a pipeline, nothing executed', async () => {
      expect(await confined.set(name('app:1'), 'mine')).toBe('OK');
      await rw.set(name('other:1'), 'theirs');
      await expect(confined.get('other:1')).rejects.toThrow(/NOPERM/);
      await expect(confined.set('other:1', 'x')).rejects.toThrow(/NOPERM/);
      // MSET names two keys; one outside the patterns refuses the whole command.
      await expect(confined.mset({ [name('app:2')]: 'a', 'other:2': 'b' })).rejects.toThrow(
        /NOPERM/,
      );
      await expect(
        confined.pipeline().set(name('app:3'), 'x').set('other:1', 'x').exec(),
      ).rejects.toThrow(/NOPERM/);
      await expect(confined.multi().incr(name('app:4')).del('other:1').exec()).rejects.toThrow(
        /NOPERM/,
      );
      expect(await stored('other:1')).toBe('theirs');
      for (const key of ['app:2', 'other:2', 'app:3', 'app:4']) {
        names.add(key);
        expect(await stored(key)).toBeNull();
      }
      // SCAN shows a confined token only its own keys; DBSIZE, which counts all, is refused.
      const [, keys] = await confined.scan(0, { match: '*', count: 1000 });
      expect(keys.every((key) => key.startsWith('app:'))).toBe(true);
      await expect(confined.dbsize()).rejects.toThrow(/NOPERM/);
      expect(await rw.dbsize()).toBeGreaterThan(0);
    });

    it('the gateway namespace __gw: is out of reach', async () => {
      await expect(rw.set('__gw:lock', 'x')).rejects.toThrow(/NOPERM/);
      await expect(rw.get('__gw:anything')).rejects.toThrow(/NOPERM/);
      await expect(rw.pipeline().set(name('gw:ok'), '1').del('__gw:x').exec()).rejects.toThrow(
        /NOPERM/,
      );
      expect(await stored('gw:ok')).toBeNull();
      expect(await t.redis.exists(`${t.prefix}__gw:lock`)).toBe(0);
    });

    it.each([
      [['flushall']],
      [['flushdb']],
      [['config', 'set', 'maxmemory', '1']],
      [['keys', '*']],
      [['client', 'list']],
      [['monitor']],
      [['debug', 'sleep', '0']],
      [['select', '1']],
      [['migrate', 'h', '1', 'k', '0', '1']],
      [['wait', '0', '0']],
      [['randomkey']],
      [['sort', 'l:1', 'by', 'nosort', 'get', '*']],
      [['script', 'flush']],
      [['eval', 'return 1', '0']],
    ])('refuses %j with 400 {error}', async (command) => {
      const raw = await post('', t.tokens.both, command);
      expect(raw.status).toBe(400);
      expect(raw.body).toMatchObject({ code: 'BAD_REQUEST' });
      expect(String(raw.body.error)).toMatch(/^ERR (command|script)/);
    });

    it('refuses FLUSHALL and KEYS through the SDK, the data still there', async () => {
      await rw.set(name('keep:1'), 'x');
      await expect(rw.flushall()).rejects.toThrow(/ERR command 'flushall' is not available/);
      await expect(rw.keys('*')).rejects.toThrow(/ERR command 'keys' is not available/);
      expect(await stored('keep:1')).toBe('x');
    });

    it('passes Redis error replies through as they are', async () => {
      await rw.set(name('wt:1'), 'text');
      await expect(rw.hget('wt:1', 'f')).rejects.toThrow(/WRONGTYPE Operation against a key/);
      const arity = await post('', t.tokens.both, ['get']);
      expect(arity).toMatchObject({ status: 400 });
      expect(arity.body.error).toBe("ERR wrong number of arguments for 'get' command");
    });

    it('answers bad input, no token and too long a pipeline in the {error} shape', async () => {
      expect(await post('', undefined, ['get', 'x'])).toMatchObject({
        status: 401,
        body: { code: 'INVALID_TOKEN', error: expect.stringMatching(/^ERR /) },
      });
      for (const body of [{}, [], [1, 2], ['get', { a: 1 }], ['get', null]]) {
        const answer = await post('', t.tokens.both, body);
        expect(answer.status).toBe(400);
        expect(answer.body.error).toMatch(/^ERR a command/);
      }
      const long = Array.from({ length: 301 }, (_, i) => ['set', `long:${i}`, '1']);
      const refused = await post('/pipeline', t.tokens.both, long);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatch(/upstash.maxPipelineCommands/);
      expect(await stored('long:0')).toBeNull();
    });
  });
});

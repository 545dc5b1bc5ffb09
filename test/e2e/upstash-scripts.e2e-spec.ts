import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ratelimit } from '@upstash/ratelimit';
import { Redis as Upstash } from '@upstash/redis';
import { SCOPES } from '../../src/auth/scopes';
import { NO_CALLER_LIMITS, TestApp } from '../support/app';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/** A script that writes the key it declares. */
const SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])";
const UNLISTED = "return redis.call('GET', KEYS[1])";

/**
 * The scripts @upstash/ratelimit sends, read from the package as installed: its sliding window
 * script's text and the SHA-1 it sends with EVALSHA, which is what an operator allowlists.
 */
const RATELIMIT_SOURCE = readFileSync(require.resolve('@upstash/ratelimit'), 'utf8');
const SLIDING_WINDOW = /var slidingWindowLimitScript = `([^`]*)`;/.exec(RATELIMIT_SOURCE)?.[1];
const SLIDING_WINDOW_SHA = /slidingWindowLimitScript,\s*hash: "([0-9a-f]{40})"/.exec(
  RATELIMIT_SOURCE,
)?.[1];

/**
 * Scripts through the Upstash-compatible endpoint: EVAL, EVALSHA and SCRIPT LOAD run only the
 * scripts whose SHA-1 is on upstash.allowedScripts, with their declared keys prefixed and
 * authorised like any other; and @upstash/ratelimit's sliding window decides right with its
 * script allowlisted.
 */
describe('Upstash-compatible endpoint: scripts', () => {
  let t: TestApp;
  let url: string;
  const sdk = (token: string) =>
    new Upstash({ url, token, enableTelemetry: false, retry: false, enableAutoPipelining: false });

  beforeAll(async () => {
    expect(SLIDING_WINDOW && SLIDING_WINDOW_SHA).toBeTruthy();
    t = await TestApp.create({
      listen: true,
      config: {
        ...NO_CALLER_LIMITS,
        upstash: { enabled: true, allowedScripts: [sha1(SET_SCRIPT), SLIDING_WINDOW_SHA!] },
      },
    });
    url = `${t.baseUrl}/redis/upstash`;
  });

  afterAll(async () => {
    await t.close();
  });

  it('the SHA-1 ratelimit sends is the SHA-1 of the script text it sends', () => {
    expect(sha1(SLIDING_WINDOW!)).toBe(SLIDING_WINDOW_SHA);
  });

  it('runs an allowlisted script by EVAL, SCRIPT LOAD and EVALSHA, its keys under the prefix', async () => {
    const redis = sdk(t.tokens.both);
    expect(await redis.eval(SET_SCRIPT, ['sc:1'], ['one'])).toBe('OK');
    expect(await t.redis.get(`${t.prefix}sc:1`)).toBe('one');
    expect(await t.redis.exists('sc:1')).toBe(0);
    expect(await redis.scriptLoad(SET_SCRIPT)).toBe(sha1(SET_SCRIPT));
    expect(await redis.evalsha(sha1(SET_SCRIPT), ['sc:2'], ['two'])).toBe('OK');
    expect(await t.redis.get(`${t.prefix}sc:2`)).toBe('two');
  });

  it('refuses a script that is not allowlisted, by EVAL, EVALSHA or SCRIPT LOAD', async () => {
    const redis = sdk(t.tokens.both);
    await expect(redis.eval(UNLISTED, ['sc:1'], [])).rejects.toThrow(
      /is not on upstash.allowedScripts/,
    );
    await expect(redis.evalsha(sha1(UNLISTED), ['sc:1'], [])).rejects.toThrow(
      /is not on upstash.allowedScripts/,
    );
    await expect(redis.scriptLoad(UNLISTED)).rejects.toThrow(/is not on upstash.allowedScripts/);
    expect(await t.redis.call('SCRIPT', 'EXISTS', sha1(UNLISTED))).toEqual([0]);
  });

  it('authorises the declared keys of an allowlisted script like any others', async () => {
    const confined = sdk(
      await t.token({ scopes: [SCOPES.read, SCOPES.write], keyPatterns: ['app:*'] }),
    );
    expect(await confined.eval(SET_SCRIPT, ['app:s'], ['x'])).toBe('OK');
    await expect(confined.eval(SET_SCRIPT, ['other:s'], ['x'])).rejects.toThrow(/NOPERM/);
    await expect(sdk(t.tokens.both).eval(SET_SCRIPT, ['__gw:s'], ['x'])).rejects.toThrow(/NOPERM/);
    // A script may write: a read-only token cannot run it.
    await expect(sdk(t.tokens.read).eval(SET_SCRIPT, ['sc:ro'], ['x'])).rejects.toThrow(/NOPERM/);
    expect(await t.redis.exists(`${t.prefix}other:s`, `${t.prefix}sc:ro`, 'other:s')).toBe(0);
  });

  it('@upstash/ratelimit sliding window: 5 per window allowed, the rest refused', async () => {
    const limiter = new Ratelimit({
      redis: sdk(t.tokens.both),
      limiter: Ratelimit.slidingWindow(5, '60 s'),
      prefix: 'rl',
      analytics: false,
      ephemeralCache: false,
    });
    const decisions: boolean[] = [];
    for (let i = 0; i < 8; i += 1) {
      decisions.push((await limiter.limit('user-1')).success);
    }
    expect(decisions).toEqual([true, true, true, true, true, false, false, false]);
    // Another identifier has its own window.
    expect((await limiter.limit('user-2')).success).toBe(true);
    const keys = await t.storedKeys();
    expect(keys.filter((key) => key.startsWith('rl:user-1:'))).toHaveLength(1);
  });
});

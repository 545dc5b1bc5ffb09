import { Redis as Upstash } from '@upstash/redis';
import { SCOPES } from '../../src/auth/scopes';
import { SseRegistry } from '../../src/sse/sse-registry';
import { NO_CALLER_LIMITS, TestApp } from '../support/app';
import { eventually } from '../support/ports';

/** What one of the SDK's Subscriber objects received, by event type. */
interface Received {
  confirmed: number[];
  messages: unknown[];
  errors: Error[];
}

/**
 * The SDK's `subscribe()` and `psubscribe()` against the gateway, over real HTTP with real tokens:
 * its SSE frames (`subscribe,ch,1`, `message,ch,msg`, `pmessage,pat,ch,msg`) through the one
 * subscriber connection of the pub/sub routes, under the same key patterns and limits.
 */
describe('Upstash-compatible endpoint: subscribe and psubscribe (@upstash/redis SDK)', () => {
  let t: TestApp;
  let rw: Upstash;
  let url: string;

  const sdk = (token: string) =>
    new Upstash({ url, token, enableTelemetry: false, retry: false, enableAutoPipelining: false });

  /** Registers listeners for `events` on an SDK subscriber and collects what they receive. */
  const collect = (
    subscriber: { on(type: string, listener: (data: never) => void): void },
    events: string[],
  ): Received => {
    const received: Received = { confirmed: [], messages: [], errors: [] };
    for (const type of events) {
      subscriber.on(type, (data: never) => {
        if (type === 'subscribe' || type === 'psubscribe') {
          received.confirmed.push(data);
        } else {
          received.messages.push(data);
        }
      });
    }
    subscriber.on('error', (error: never) => received.errors.push(error));
    return received;
  };

  /** Redis subscriptions of this app's channel, added up over every master of a cluster. */
  const redisSubscribers = async (channel: string) => {
    const counts = await Promise.all(
      t.servers().map(async (node) => {
        const [, count] = (await node.pubsub('NUMSUB', t.prefix + channel)) as [string, number];
        return count;
      }),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  };
  const openStreams = () => t.app.get(SseRegistry).size;

  beforeAll(async () => {
    // The SDK logs its own abort of a stream (unsubscribe) as an error on Node 20: hide only that.
    const log = console.error.bind(console);
    jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      if (args[0] !== 'Stream reading error:' || !String(args[1]).includes('AbortError')) {
        log(...args);
      }
    });
    t = await TestApp.create({
      listen: true,
      config: { ...NO_CALLER_LIMITS, upstash: { enabled: true } },
    });
    url = `${t.baseUrl}/redis/upstash`;
    rw = sdk(t.tokens.both);
  });

  afterAll(async () => {
    await t.close();
    jest.restoreAllMocks();
  });

  it('subscribe: confirmed once, then every message published through the SDK, JSON and text', async () => {
    const subscriber = rw.subscribe(['news']);
    const received = collect(subscriber, ['subscribe', 'message']);
    await eventually(() => expect(received.confirmed).toEqual([1]));
    expect(await redisSubscribers('news')).toBe(1);

    expect(await rw.publish('news', { headline: 'ok', n: 2 })).toBeGreaterThanOrEqual(0);
    expect(await rw.publish('news', 'plain, with commas')).toBeGreaterThanOrEqual(0);
    await eventually(() =>
      expect(received.messages).toEqual([
        { channel: 'news', message: { headline: 'ok', n: 2 } },
        { channel: 'news', message: 'plain, with commas' },
      ]),
    );
    // The message went to Redis under the prefix: a raw subscriber of the prefixed name saw it.
    expect(await t.redis.pubsub('NUMSUB', 'news')).toEqual(['news', 0]);

    await subscriber.unsubscribe();
    // The SDK aborts its request: the stream closes and the Redis subscription ends with it.
    await eventually(async () => {
      expect(openStreams()).toBe(0);
      expect(await redisSubscribers('news')).toBe(0);
    });
    expect(received.errors).toEqual([]);
  });

  it('psubscribe: pmessage frames name the pattern and the channel the caller sees', async () => {
    const subscriber = rw.psubscribe(['orders:*']);
    const received = collect(subscriber, ['psubscribe', 'pmessage']);
    await eventually(() => expect(received.confirmed).toEqual([1]));

    await rw.publish('orders:eu', { id: 1 });
    // The SDK parses a pmessage as JSON (and a plain string it publishes as is): send JSON.
    await rw.publish('orders:us', ['two']);
    await rw.publish('other', 'not matched');
    await eventually(() =>
      expect(received.messages).toEqual([
        { pattern: 'orders:*', channel: 'orders:eu', message: { id: 1 } },
        { pattern: 'orders:*', channel: 'orders:us', message: ['two'] },
      ]),
    );
    await subscriber.unsubscribe();
    await eventually(() => expect(openStreams()).toBe(0));
    expect(received.errors).toEqual([]);
  });

  it('a confined token hears the channels of its key patterns and is refused the others', async () => {
    const confined = sdk(
      await t.token({ scopes: [SCOPES.read, SCOPES.write], keyPatterns: ['app:*'] }),
    );
    const own = confined.psubscribe(['app:*']);
    const heard = collect(own, ['psubscribe', 'pmessage']);
    await eventually(() => expect(heard.confirmed).toEqual([1]));
    await rw.publish('secret', 1);
    await rw.publish('app:1', 2);
    await eventually(() =>
      expect(heard.messages).toEqual([{ pattern: 'app:*', channel: 'app:1', message: 2 }]),
    );

    // A channel outside its patterns, or a pattern wider than them: the SDK's error, no stream,
    // no Redis subscription.
    const refused = [confined.subscribe(['secret']), confined.psubscribe(['*'])];
    const outside = refused.map((subscriber) =>
      collect(subscriber, ['subscribe', 'psubscribe', 'message', 'pmessage']),
    );
    for (const { errors, confirmed } of outside) {
      await eventually(() => expect(errors).toHaveLength(1));
      expect(errors[0].message).toMatch(/^NOPERM /);
      expect(confirmed).toEqual([]);
    }
    expect(await redisSubscribers('secret')).toBe(0);

    for (const subscriber of [own, ...refused]) {
      await subscriber.unsubscribe();
    }
    await eventually(() => expect(openStreams()).toBe(0));
  });

  it('refuses a pattern past limits.maxPatternBytes and a token without redis:read', async () => {
    const long = rw.psubscribe([`*[${'b'.repeat(300)}]x`]);
    const tooLong = collect(long, ['psubscribe']);
    await eventually(() => expect(tooLong.errors).toHaveLength(1));
    expect(tooLong.errors[0].message).toMatch(/^ERR .*maxPatternBytes/);

    const writer = sdk(await t.token({ scopes: [SCOPES.write] }));
    const noRead = writer.subscribe(['news']);
    const refused = collect(noRead, ['subscribe']);
    await eventually(() => expect(refused.errors).toHaveLength(1));
    expect(refused.errors[0].message).toMatch(/^NOPERM /);

    for (const subscriber of [long, noRead]) {
      await subscriber.unsubscribe();
    }
    expect(tooLong.confirmed).toEqual([]);
    expect(refused.confirmed).toEqual([]);
    expect(openStreams()).toBe(0);
  });
});

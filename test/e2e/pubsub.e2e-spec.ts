import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { createParser } from 'eventsource-parser';
import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import fc from 'fast-check';
import { frame } from '../../src/sse/sse-stream';
import { SseRegistry } from '../../src/sse/sse-registry';
import { TestApp, type Response } from '../support/app';
import { eventually, sleep } from '../support/ports';
import { RedisServer } from '../support/redis';
import {
  SseClient,
  bearer,
  channelEvents,
  expectStreamHeaders,
  patternEvents,
  type SseMessage,
} from '../support/sse';

/**
 * Pub/sub (`/redis/pubsub/...`) and stream tickets (`POST /redis/tickets`) against a real Redis
 * and real tokens: publish and its refusals, channel and pattern subscriptions over SSE, framing
 * of any payload (S-1), headers (S-2), heartbeats (S-3), expiry (S-10), authorisation of
 * channels and patterns (S-11), error events (S-12), the stream limits, and browser tickets.
 */

/** The `data` of an `event: message`. */
interface Received {
  channel: string;
  message: string;
  pattern?: string;
  encoding?: 'base64';
}

interface Problem {
  code: string;
  status: number;
  errors?: { field: string; message: string }[];
}

const MiB = 1024 * 1024;
const WRITE = ['redis:write'];
const READ = ['redis:read'];

const messagesOf = (name: string) => `/redis/pubsub/channels/${encodeURIComponent(name)}/messages`;

/** Opens an SSE path of `t` (with a bearer token unless `token` is null). */
function listen(
  t: TestApp,
  path: string,
  options: { token?: string | null; headers?: Record<string, string> } = {},
): Promise<SseClient> {
  const token = options.token === undefined ? t.tokens.read : options.token;
  return SseClient.open(`${t.baseUrl}${path}`, {
    headers: { ...(token === null ? {} : bearer(token)), ...options.headers },
  });
}

function publish(t: TestApp, channel: string, body: unknown, token = t.tokens.write) {
  return t.call('POST', messagesOf(channel), { token, body });
}

/** Publishes and expects 200; answers Redis's receiver count. */
async function published(t: TestApp, channel: string, message: string): Promise<number> {
  const response = await publish(t, channel, { message });
  expect(response.statusCode).toBe(200);
  return response.json<{ receivers: number }>().receivers;
}

const received = (client: SseClient): Received[] =>
  client.named('message').map((event) => JSON.parse(event.data) as Received);

/** The problem+json body of a refused request or stream. */
function problem(response: Response | SseClient): Problem {
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return JSON.parse(response.body) as Problem;
}

/** A refusal before any stream byte: a problem+json answer, never an event stream. */
function expectRefused(client: SseClient, status: number, code: string): void {
  expect({ status: client.status, code: problem(client).code }).toEqual({ status, code });
  expect(client.body).not.toMatch(/^(retry|event|data|id):/m);
}

/**
 * Every line of the stream is one the gateway itself writes: its one `retry:` first, then
 * `event: message` + one `data:` line per message and `: ping` comments. Nothing a payload
 * holds can make another line (an `id:`, a `retry:`, another event type).
 */
function expectCleanFraming(client: SseClient): void {
  expect(client.raw).toMatch(/^retry: \d+\n\n/);
  const lines = client.raw.split(/\r\n|\r|\n/);
  const foreign = lines.filter(
    (line, index) =>
      !(
        line === '' ||
        line === 'event: message' ||
        line === ': ping' ||
        line.startsWith('data: ') ||
        (index === 0 && /^retry: \d+$/.test(line))
      ),
  );
  expect(foreign).toEqual([]);
  const messages = client.named('message').length;
  expect(lines.filter((line) => line === 'event: message')).toHaveLength(messages);
  expect(lines.filter((line) => line.startsWith('data: '))).toHaveLength(messages);
  expect(client.events.every((event) => event.event === 'message' && event.id === undefined)).toBe(
    true,
  );
}

/** The claims of a JWT (to read its `exp`). */
function claims(token: string): { exp: number; sub: string } {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as {
    exp: number;
    sub: string;
  };
}

const openStreams = (t: TestApp): number => t.app.get(SseRegistry).size;

/**
 * Redis subscriptions of this app's channel (PUBSUB NUMSUB), added up over every master of a
 * cluster: a cluster node counts only the subscribers connected to it.
 */
async function redisSubscribers(t: TestApp, channel: string): Promise<number> {
  const counts = await Promise.all(
    t.servers().map(async (node) => {
      const [, count] = (await node.pubsub('NUMSUB', t.prefix + channel)) as [string, number];
      return count;
    }),
  );
  return counts.reduce((sum, count) => sum + count, 0);
}

/**
 * The server that takes the gateway's PUBLISH of a channel: the one server, or in a cluster the
 * master of the channel's hash slot (where the gateway sends a channel's messages).
 */
function publishingNode(t: TestApp, channel: string): Redis {
  const masters = t.servers();
  if (!(t.redis instanceof Cluster)) {
    return masters[0];
  }
  const owner = t.redis.slots[calculateSlot(t.prefix + channel)][0];
  const node = masters.find(({ options }) => `${options.host}:${options.port}` === owner);
  if (!node) {
    throw new Error(`no master serves the slot of ${channel}`);
  }
  return node;
}

/**
 * The `receivers` a gateway publish of `channel` answers when `n` subscriptions of this app's
 * gateway match it. With one server, n. A cluster node counts only the subscriptions of its own
 * clients, so there n when the gateway's subscriber connection is on the publishing node (it
 * shows there in PUBSUB NUMSUB, as the channel is subscribed) and 0 when it is on another.
 */
async function gatewayReceivers(t: TestApp, channel: string, n: number): Promise<number> {
  if (t.topology !== 'cluster') {
    return n;
  }
  const node = publishingNode(t, channel);
  const [, local] = (await node.pubsub('NUMSUB', t.prefix + channel)) as [string, number];
  return local > 0 ? n : 0;
}

/** Channels with subscribers matching `pattern` (PUBSUB CHANNELS), from every master. */
async function redisChannels(t: TestApp, pattern: string): Promise<string[]> {
  const lists = await Promise.all(
    t.servers().map(async (node) => (await node.pubsub('CHANNELS', pattern)) as string[]),
  );
  return [...new Set(lists.flat())].sort();
}

/**
 * PUBLISH straight to Redis, as another Redis client would; answers how many subscriptions got
 * it. A cluster node counts only the subscribers connected to it (and forwards the message to
 * the other nodes), so in a cluster it is published once on every master and the counts add up:
 * then every subscriber receives it once per master.
 */
async function publishEverywhere(t: TestApp, channel: string, message: string): Promise<number> {
  const counts = await Promise.all(t.servers().map((node) => node.publish(channel, message)));
  return counts.reduce((sum, count) => sum + count, 0);
}

describe('publish: POST /redis/pubsub/channels/{channel}/messages', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { sse: { maxClientsPerSubject: 100, maxClients: 100 } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers {channel, receivers}: 0 with nobody, 1 however many SSE clients of the gateway listen', async () => {
    expect((await publish(t, 'recv', { message: 'hi' })).json()).toEqual({
      channel: 'recv',
      receivers: 0,
    });
    const clients = await Promise.all([1, 2, 3].map(() => listen(t, channelEvents('recv'))));
    try {
      expect(clients.map((c) => c.status)).toEqual([200, 200, 200]);
      expect(await published(t, 'recv', 'to all')).toBe(await gatewayReceivers(t, 'recv', 1));
      await Promise.all(clients.map((c) => c.until((x) => x.named('message').length === 1)));
      for (const client of clients) {
        expect(received(client)).toEqual([{ channel: 'recv', message: 'to all' }]);
      }
      // A matching pattern subscription is one more Redis receiver.
      const pattern = await listen(t, patternEvents('rec*'));
      try {
        expect(await published(t, 'recv', 'twice')).toBe(await gatewayReceivers(t, 'recv', 2));
        await pattern.until((c) => c.named('message').length === 1);
        expect(received(pattern)).toEqual([{ channel: 'recv', message: 'twice', pattern: 'rec*' }]);
      } finally {
        pattern.close();
      }
    } finally {
      clients.forEach((c) => c.close());
    }
    // The last client gone, the gateway unsubscribes: nothing is left behind in Redis.
    await eventually(async () => {
      expect(await redisSubscribers(t, 'recv')).toBe(0);
      expect(await published(t, 'recv', 'nobody')).toBe(0);
    });
  });

  it('publishes to the prefixed channel in Redis, literally', async () => {
    // On the server that takes the publish: a cluster node counts only its own subscribers.
    const direct = publishingNode(t, 'raw:a*').duplicate();
    const got: [string, string][] = [];
    try {
      await direct.subscribe(`${t.prefix}raw:a*`);
      direct.on('message', (channel: string, message: string) => got.push([channel, message]));
      expect(await published(t, 'raw:a*', 'literal')).toBe(1);
      expect(await published(t, 'raw:ab', 'not for a*')).toBe(0);
      await eventually(() => expect(got).toEqual([[`${t.prefix}raw:a*`, 'literal']]));
    } finally {
      direct.disconnect();
    }
  });

  it('carries base64 messages as the same bytes', async () => {
    const bytes = Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x0a, 0x0d, 0x80]);
    const client = await listen(t, channelEvents('bytes'));
    const asBase64 = await listen(t, `${channelEvents('bytes')}?encoding=base64`);
    try {
      const response = await publish(t, 'bytes', {
        message: bytes.toString('base64'),
        encoding: 'base64',
      });
      expect(response.json()).toEqual({
        channel: 'bytes',
        receivers: await gatewayReceivers(t, 'bytes', 1),
      });
      // Base64 of valid UTF-8 text arrives as that text.
      await publish(t, 'bytes', {
        message: Buffer.from('héllo').toString('base64'),
        encoding: 'base64',
      });
      await client.until((c) => c.named('message').length === 2);
      await asBase64.until((c) => c.named('message').length === 2);
      const [binary, text] = received(client);
      expect(binary).toEqual({
        channel: 'bytes',
        message: bytes.toString('base64'),
        encoding: 'base64',
      });
      expect(Buffer.from(binary.message, 'base64').equals(bytes)).toBe(true);
      expect(text).toEqual({ channel: 'bytes', message: 'héllo' });
      expect(received(asBase64)).toEqual([
        { channel: 'bytes', message: bytes.toString('base64'), encoding: 'base64' },
        { channel: 'bytes', message: Buffer.from('héllo').toString('base64'), encoding: 'base64' },
      ]);
      expect(await redisSubscribers(t, 'bytes')).toBe(1);
    } finally {
      client.close();
      asBase64.close();
    }
  });

  it('refuses a bad body with 400, each field named', async () => {
    const cases: [unknown, string][] = [
      [{}, 'message'],
      [{ message: 5 }, 'message'],
      [{ message: null }, 'message'],
      [{ message: ['a'] }, 'message'],
      [{ message: 'x', extra: 1 }, 'extra'],
      [{ message: 'x', encoding: 'hex' }, 'encoding'],
      [{ message: '!!not base64!!', encoding: 'base64' }, 'message'],
      [{ message: 'aGk', encoding: 'base64' }, 'message'], // unpadded: not canonical
      [{ message: 'lone \ud800 surrogate' }, 'message'],
      [[], 'body'],
      [null, 'body'],
    ];
    for (const [body, field] of cases) {
      const response = await publish(t, 'bad', body);
      const details = problem(response);
      expect({ body, status: response.statusCode, code: details.code }).toEqual({
        body,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
      expect(details.errors?.map((e) => e.field)).toContain(field);
    }
    for (const raw of ['{"message":', '"text"']) {
      const response = await t.call('POST', messagesOf('bad'), {
        token: t.tokens.write,
        body: raw,
        headers: { 'content-type': 'application/json' },
      });
      expect({ raw, status: response.statusCode }).toEqual({ raw, status: 400 });
    }
  });

  it('refuses bad channel names with 400: control characters, too long, malformed encoding', async () => {
    const max = t.config.limits.maxKeyBytes;
    for (const name of [
      'a\u0001b',
      '\u0000',
      'tab\there',
      'del\u007f',
      'x'.repeat(max + 1),
      'é'.repeat(max / 2 + 1),
    ]) {
      const response = await publish(t, name, { message: 'x' });
      expect({ name, status: response.statusCode, code: problem(response).code }).toEqual({
        name,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
    const malformed = await t.call('POST', '/redis/pubsub/channels/%E0%A4%A/messages', {
      token: t.tokens.write,
      body: { message: 'x' },
    });
    expect(malformed.statusCode).toBe(400);
    // The longest name allowed is fine, in bytes of UTF-8.
    expect(await published(t, 'é'.repeat(max / 2), 'x')).toBe(0);
    expect(await published(t, 'x'.repeat(max), 'x')).toBe(0);
  });

  it('refuses without a valid token (401), without redis:write (403), outside the key patterns (403)', async () => {
    const anonymous = await t.call('POST', messagesOf('auth'), { body: { message: 'x' } });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    const garbage = await publish(t, 'auth', { message: 'x' }, 'not.a.jwt');
    expect(garbage.statusCode).toBe(401);

    for (const token of [t.tokens.read, t.tokens.none]) {
      const response = await publish(t, 'auth', { message: 'x' }, token);
      expect(response.statusCode).toBe(403);
      expect(problem(response).code).toBe('INSUFFICIENT_SCOPE');
      expect(response.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:write"',
      );
    }

    const narrow = await t.token({ scopes: WRITE, keyPatterns: ['news:*'] });
    const outside = await publish(t, 'other', { message: 'x' }, narrow);
    expect(outside.statusCode).toBe(403);
    expect(problem(outside).code).toBe('KEY_FORBIDDEN');
    expect(outside.headers['www-authenticate']).toBeUndefined();
    expect((await publish(t, 'news:1', { message: 'x' }, narrow)).statusCode).toBe(200);
  });

  it("refuses the gateway's own namespace with 403, whatever the token", async () => {
    const direct = t.duplicateRedis();
    const got: string[] = [];
    try {
      await direct.psubscribe(`${t.prefix}__gw:*`);
      direct.on('pmessage', (_pattern: string, channel: string) => got.push(channel));
      for (const name of ['__gw:x', '__gw:ticket:abc', '__gw:']) {
        const response = await publish(t, name, { message: 'x' });
        expect({ name, status: response.statusCode, code: problem(response).code }).toEqual({
          name,
          status: 403,
          code: 'KEY_FORBIDDEN',
        });
      }
      const wide = await t.token({ scopes: WRITE, keyPatterns: ['*'] });
      expect((await publish(t, '__gw:x', { message: 'x' }, wide)).statusCode).toBe(403);
      await sleep(50);
      expect(got).toEqual([]);
    } finally {
      direct.disconnect();
    }
  });

  it('refuses a message over limits.maxValueBytes (after base64 decoding) with 413', async () => {
    const max = t.config.limits.maxValueBytes;
    expect(max).toBe(MiB);
    const tooBig = await publish(t, 'big', { message: 'x'.repeat(max + 1) });
    expect(tooBig.statusCode).toBe(413);
    expect(problem(tooBig).code).toBe('PAYLOAD_TOO_LARGE');
    const multibyte = await publish(t, 'big', { message: 'é'.repeat(max / 2) + 'x' });
    expect(multibyte.statusCode).toBe(413);
    const base64 = await publish(t, 'big', {
      message: Buffer.alloc(max + 1).toString('base64'),
      encoding: 'base64',
    });
    expect(base64.statusCode).toBe(413);
    expect(await published(t, 'big', 'x'.repeat(max))).toBe(0);
    const overBody = await publish(t, 'big', {
      message: 'x'.repeat(t.config.server.bodyLimitBytes),
    });
    expect(overBody.statusCode).toBe(413);
  });
});

describe('subscriptions: GET /redis/pubsub/{channels,patterns}/{name}/events', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { sse: { heartbeatMs: 300, maxClientsPerSubject: 100, maxClients: 100 } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it('answers 200 text/event-stream with headers that keep proxies from buffering, at once (S-2)', async () => {
    for (const path of [channelEvents('hdr'), patternEvents('hdr:*')]) {
      const started = Date.now();
      const client = await listen(t, path, { headers: { 'accept-encoding': 'gzip, br, deflate' } });
      const firstByteMs = Date.now() - started;
      try {
        expectStreamHeaders(client);
        expect(firstByteMs).toBeLessThan(250);
        await client.until((c) => c.raw.length > 0);
        expect(client.raw).toMatch(/^retry: \d+\n\n/);
      } finally {
        client.close();
      }
    }
  });

  it('sends each message as event: message with data {channel, message} (and pattern)', async () => {
    const channel = await listen(t, channelEvents('fmt:1'));
    const pattern = await listen(t, patternEvents('fmt:*'));
    try {
      await published(t, 'fmt:1', 'one');
      await published(t, 'fmt:2', 'two');
      await channel.until((c) => c.named('message').length === 1);
      await pattern.until((c) => c.named('message').length === 2);
      expect(channel.named('message')).toEqual([
        { event: 'message', data: '{"channel":"fmt:1","message":"one"}' },
      ]);
      expect(pattern.named('message')).toEqual([
        { event: 'message', data: '{"channel":"fmt:1","message":"one","pattern":"fmt:*"}' },
        { event: 'message', data: '{"channel":"fmt:2","message":"two","pattern":"fmt:*"}' },
      ]);
      await sleep(50);
      expect(channel.named('message')).toHaveLength(1);
    } finally {
      channel.close();
      pattern.close();
    }
  });

  it('treats glob metacharacters in a channel name literally (S-11)', async () => {
    const names = ['g:a*', 'g:a?', 'g:[ab]', 'g:\\x', 'g:*'];
    const clients = await Promise.all(names.map((name) => listen(t, channelEvents(name))));
    try {
      expect(clients.map((c) => c.status)).toEqual(names.map(() => 200));
      // Each would match these if it were a pattern; as channels they match nothing.
      for (const other of ['g:ab', 'g:a', 'g:b', 'g:x', 'g:\\\\x', 'g:anything']) {
        expect({ other, receivers: await published(t, other, other) }).toEqual({
          other,
          receivers: 0,
        });
      }
      for (const name of names) {
        expect(await published(t, name, name)).toBe(await gatewayReceivers(t, name, 1));
      }
      await Promise.all(clients.map((c) => c.until((x) => x.named('message').length >= 1)));
      await sleep(50);
      clients.forEach((client, i) => {
        expect(received(client)).toEqual([{ channel: names[i], message: names[i] }]);
      });
    } finally {
      clients.forEach((c) => c.close());
    }
  });

  it('refuses before any stream bytes: 401, 403 scope, 403 key pattern and namespace, 400 (S-11)', async () => {
    const none = await listen(t, channelEvents('refused'), { token: null });
    expectRefused(none, 401, 'INVALID_TOKEN');
    expect(none.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    const garbage = await listen(t, patternEvents('refused:*'), { token: 'x.y.z' });
    expectRefused(garbage, 401, 'INVALID_TOKEN');

    for (const path of [channelEvents('refused'), patternEvents('refused:*')]) {
      const writeOnly = await listen(t, path, { token: t.tokens.write });
      expectRefused(writeOnly, 403, 'INSUFFICIENT_SCOPE');
      expect(writeOnly.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:read"',
      );
    }

    const narrow = await t.token({ scopes: READ, keyPatterns: ['allowed:*'] });
    expectRefused(await listen(t, channelEvents('other'), { token: narrow }), 403, 'KEY_FORBIDDEN');
    expectRefused(await listen(t, channelEvents('__gw:x')), 403, 'KEY_FORBIDDEN');
    expectRefused(await listen(t, patternEvents('__gw:*')), 403, 'KEY_FORBIDDEN');

    const max = t.config.limits.maxKeyBytes;
    for (const path of [
      channelEvents('a\u0001b'),
      channelEvents('x'.repeat(max + 1)),
      patternEvents('a\u007f*'),
      patternEvents('x'.repeat(max) + '*'),
      `${channelEvents('ok')}?encoding=hex`,
      `${channelEvents('ok')}?unknown=1`,
      `${patternEvents('ok:*')}?encoding=utf16`,
    ]) {
      const refused = await listen(t, path);
      expect({ path, status: refused.status }).toEqual({ path, status: 400 });
      expectRefused(refused, 400, 'VALIDATION_FAILED');
    }
    // Nothing was subscribed or opened for any of them.
    expect(openStreams(t)).toBe(0);
    expect(await redisSubscribers(t, 'refused')).toBe(0);
  });

  it('sends a heartbeat comment every sse.heartbeatMs (S-3)', async () => {
    const client = await listen(t, channelEvents('quiet'));
    try {
      await client.until((c) => c.comments.length >= 4, 3000);
      expect(client.comments.every((comment) => comment.text.trim() === 'ping')).toBe(true);
      const gaps = client.comments.slice(1).map((c, i) => c.at - client.comments[i].at);
      for (const gap of gaps) {
        expect(gap).toBeGreaterThan(150);
        expect(gap).toBeLessThan(900);
      }
      expect(client.events).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('ends a stream with event: expired within 1 s of its token expiry (S-10)', async () => {
    const shortLived = await t.token({ scopes: READ, ttlS: 2 });
    const expiresAt = claims(shortLived).exp * 1000;
    const channel = await listen(t, channelEvents('expiring'), { token: shortLived });
    const pattern = await listen(t, patternEvents('expiring*'), { token: shortLived });
    try {
      expect([channel.status, pattern.status]).toEqual([200, 200]);
      await published(t, 'expiring', 'before');
      for (const client of [channel, pattern]) {
        await client.until((c) => c.ended, 5000);
        const ended = Date.now();
        expect(ended).toBeGreaterThanOrEqual(expiresAt - 100);
        expect(ended).toBeLessThan(expiresAt + 1000);
        expect(client.events.map((e) => e.event)).toEqual(['message', 'expired']);
        expect(JSON.parse(client.named('expired')[0].data)).toEqual({ reason: 'expired' });
      }
      await eventually(async () => expect(await redisSubscribers(t, 'expiring')).toBe(0));
    } finally {
      channel.close();
      pattern.close();
    }
  });

  it('gives back every subscription when many clients come and go', async () => {
    for (let round = 0; round < 3; round++) {
      const clients = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          listen(
            t,
            i % 2 === 0 ? channelEvents(`churn:${i % 3}`) : patternEvents(`churn:${i % 3}*`),
          ),
        ),
      );
      expect(clients.every((c) => c.status === 200)).toBe(true);
      clients.forEach((c) => c.close());
    }
    // Clients that leave while the request is still being authorised and subscribed.
    const url = new URL(t.baseUrl);
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const socket = connect(Number(url.port), url.hostname);
        const path = i % 2 === 0 ? channelEvents('churn:0') : patternEvents('churn:1*');
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${t.tokens.read}\r\n\r\n`,
        );
        socket.on('error', () => undefined);
        await sleep(i % 6);
        socket.destroy();
      }),
    );
    await eventually(
      async () => {
        expect(openStreams(t)).toBe(0);
        expect(await redisChannels(t, `${t.prefix}churn*`)).toEqual([]);
        expect(await published(t, 'churn:0', 'x')).toBe(0);
      },
      3000,
      50,
    );
  });
});

describe('framing of any payload (S-1)', () => {
  let t: TestApp;

  beforeAll(async () => {
    // maxValueBytes and the buffer bound let a 1 MiB message through to a client that keeps up.
    t = await TestApp.create({
      listen: true,
      config: { limits: { maxValueBytes: MiB }, sse: { maxBufferBytes: 4 * MiB } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it('delivers each hostile payload as exactly the message published, one event each', async () => {
    const payloads = [
      'line1\nline2',
      'a\rb',
      'a\r\nb',
      '\n\nevent: admin\ndata: x',
      '\r\n\r\nevent: admin\r\ndata: x\r\n\r\n',
      'id: 999',
      '\nid: 999\n',
      '\nretry: 1\n\n',
      ': comment\n\n',
      'data: {"channel":"x"}',
      'a\0b',
      '\0',
      '',
      ' ',
      '"}\\',
      '\u2028\u2029\u0085',
      '\uFEFFstarts with a byte order mark',
      '😀 \u{10FFFF}',
      'ab\ncd\r\n'.repeat(MiB / 8),
    ];
    const client = await listen(t, channelEvents('hostile'));
    try {
      for (const [index, message] of payloads.entries()) {
        expect(await published(t, 'hostile', message)).toBe(
          await gatewayReceivers(t, 'hostile', 1),
        );
        await client.until((c) => c.named('message').length === index + 1);
      }
      const got = received(client).map((r) => r.message);
      got.forEach((message, index) => {
        expect({ index, message }).toEqual({ index, message: payloads[index] });
      });
      expect(received(client).every((r) => r.channel === 'hostile' && !('encoding' in r))).toBe(
        true,
      );
      expectCleanFraming(client);
    } finally {
      client.close();
    }
  });

  it('round-trips 500 generated strings in order (fast-check)', async () => {
    const client = await listen(t, channelEvents('generated'));
    const sent: string[] = [];
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.string({ unit: 'binary' }).filter((s) => s.isWellFormed()),
          async (message) => {
            const response = await publish(t, 'generated', { message });
            if (response.statusCode !== 200) {
              throw new Error(`publish answered ${response.statusCode}: ${response.body}`);
            }
            sent.push(message);
          },
        ),
        { numRuns: 500 },
      );
      await client.until((c) => c.named('message').length >= sent.length, 10000);
      expect(received(client).map((r) => r.message)).toEqual(sent);
      expectCleanFraming(client);
    } finally {
      client.close();
    }
  });

  it('sends bytes that are not UTF-8 in base64, marked, without breaking the frame', async () => {
    const client = await listen(t, channelEvents('raw'));
    const pattern = await listen(t, patternEvents('ra*'));
    const payloads = [
      Buffer.from([0xff, 0xfe]),
      Buffer.from([0x80]),
      Buffer.from([0xc3]), // a truncated two-byte sequence
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate (CESU-8): not UTF-8
      Buffer.concat([Buffer.from('ok\n\nevent: admin\ndata: x\n\n'), Buffer.from([0xff])]),
      Buffer.from('valid text\r\nid: 1\0', 'utf8'),
    ];
    // One server, so the payloads keep their order (a cluster client would spread them).
    const [server] = t.servers();
    try {
      for (const bytes of payloads) {
        const receivers = await server.publish(`${t.prefix}raw`, bytes);
        // A cluster node counts only its own subscribers; the deliveries below are the check.
        if (t.topology !== 'cluster') {
          expect(receivers).toBe(2);
        }
      }
      await client.until((c) => c.named('message').length === payloads.length);
      await pattern.until((c) => c.named('message').length === payloads.length);
      const asText = payloads.length - 1;
      for (const [name, stream] of [
        ['channel', client],
        ['pattern', pattern],
      ] as const) {
        const got = received(stream);
        got.slice(0, asText).forEach((message, index) => {
          expect({ name, index, message }).toEqual({
            name,
            index,
            message: {
              channel: 'raw',
              message: payloads[index].toString('base64'),
              encoding: 'base64',
              ...(name === 'pattern' ? { pattern: 'ra*' } : {}),
            },
          });
        });
        expect(got[asText]).toMatchObject({ message: 'valid text\r\nid: 1\0' });
        expect(got[asText].encoding).toBeUndefined();
        expectCleanFraming(stream);
      }
    } finally {
      client.close();
      pattern.close();
    }
  });
});

describe('pattern authorisation (S-11)', () => {
  let t: TestApp;
  let news: string;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { sse: { maxClientsPerSubject: 100, maxClients: 100 } },
    });
    news = await t.token({ scopes: READ, keyPatterns: ['news:*'] });
  });

  afterAll(async () => {
    await t.close();
  });

  it('allows a pattern equal to or inside the granted one', async () => {
    const whole = await listen(t, patternEvents('news:*'), { token: news });
    const sport = await listen(t, patternEvents('news:sport:*'), { token: news });
    const channel = await listen(t, channelEvents('news:1'), { token: news });
    try {
      expect([whole.status, sport.status, channel.status]).toEqual([200, 200, 200]);
      await published(t, 'news:sport:1', 'goal');
      await published(t, 'news:1', 'headline');
      await published(t, 'other', 'not news');
      await whole.until((c) => c.named('message').length === 2);
      await sport.until((c) => c.named('message').length === 1);
      await channel.until((c) => c.named('message').length === 1);
      await sleep(50);
      expect(received(whole)).toEqual([
        { channel: 'news:sport:1', message: 'goal', pattern: 'news:*' },
        { channel: 'news:1', message: 'headline', pattern: 'news:*' },
      ]);
      expect(received(sport)).toEqual([
        { channel: 'news:sport:1', message: 'goal', pattern: 'news:sport:*' },
      ]);
      expect(received(channel)).toEqual([{ channel: 'news:1', message: 'headline' }]);
    } finally {
      [whole, sport, channel].forEach((c) => c.close());
    }
  });

  it('refuses with 403 a pattern or channel that reaches outside the grant', async () => {
    for (const pattern of ['*', 'n*', 'news*', 'new?:*', '[n]ews:*', 'news\\:*', '?*', '__gw:*']) {
      const refused = await listen(t, patternEvents(pattern), { token: news });
      expect({ pattern, status: refused.status }).toEqual({ pattern, status: 403 });
      expectRefused(refused, 403, 'KEY_FORBIDDEN');
    }
    for (const name of ['other', 'news', '__gw:news:1']) {
      const refused = await listen(t, channelEvents(name), { token: news });
      expectRefused(refused, 403, 'KEY_FORBIDDEN');
    }
    const unrestricted = await listen(t, patternEvents('__gw:*'));
    expectRefused(unrestricted, 403, 'KEY_FORBIDDEN');
    expect(openStreams(t)).toBe(0);
  });

  it("never delivers the gateway's own channels to a pattern that matches them", async () => {
    const all = await listen(t, patternEvents('*'));
    const underscore = await listen(t, patternEvents('_*'));
    try {
      expect([all.status, underscore.status]).toEqual([200, 200]);
      // Straight to Redis, as the gateway's own machinery (or an intruder) would publish.
      expect(await publishEverywhere(t, `${t.prefix}__gw:x`, 'secret')).toBe(2);
      expect(await publishEverywhere(t, `${t.prefix}__gw:ticket:y`, 'secret')).toBe(2);
      await published(t, '_visible', 'visible');
      await all.until((c) => c.named('message').length >= 1);
      await underscore.until((c) => c.named('message').length >= 1);
      await sleep(50);
      expect(received(all)).toEqual([{ channel: '_visible', message: 'visible', pattern: '*' }]);
      expect(received(underscore)).toEqual([
        { channel: '_visible', message: 'visible', pattern: '_*' },
      ]);
      expect(all.raw).not.toContain('secret');
    } finally {
      all.close();
      underscore.close();
    }
  });

  it('delivers to a restricted pattern only the channels the grant allows', async () => {
    // A grant of two patterns: a pattern inside one of them sees only that one's channels.
    const two = await t.token({ scopes: READ, keyPatterns: ['news:*', 'sport:*'] });
    const client = await listen(t, patternEvents('sport:*'), { token: two });
    try {
      expect(client.status).toBe(200);
      expectRefused(await listen(t, patternEvents('*'), { token: two }), 403, 'KEY_FORBIDDEN');
      await published(t, 'sport:1', 'a');
      await client.until((c) => c.named('message').length === 1);
      expect(received(client)).toEqual([{ channel: 'sport:1', message: 'a', pattern: 'sport:*' }]);
    } finally {
      client.close();
    }
  });
});

describe('stream tickets: POST /redis/tickets and ?ticket=', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      captureLogs: true,
      config: { sse: { maxClientsPerSubject: 100, maxClients: 100 } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  async function ticketFor(path: string, token = t.tokens.read) {
    const response = await t.call('POST', '/redis/tickets', { token, body: { path } });
    expect({ path, status: response.statusCode }).toEqual({ path, status: 200 });
    return response.json<{ ticket: string; expiresAt: string }>();
  }
  /** Opens a path with a ticket and no Authorization header, as a browser's EventSource does. */
  const withTicket = (path: string, ticket: string, query = '') =>
    listen(t, `${path}?ticket=${encodeURIComponent(ticket)}${query}`, { token: null });

  it('issues a ticket valid for 30 s that opens its path once, without a header', async () => {
    const path = channelEvents('tk:1');
    const before = Date.now();
    const { ticket, expiresAt } = await ticketFor(path);
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const expiry = Date.parse(expiresAt);
    expect(expiry).toBeGreaterThanOrEqual(before + 29000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 30000);
    // Only its hash is stored, under the gateway's namespace.
    const stored = (await t.storedKeys()).filter((key) => key.startsWith('__gw:ticket:'));
    expect(stored.length).toBeGreaterThanOrEqual(1);
    expect(stored.some((key) => key.includes(ticket))).toBe(false);

    const client = await withTicket(path, ticket);
    try {
      expect(client.status).toBe(200);
      expect(client.headers['content-type']).toMatch(/^text\/event-stream/);
      await published(t, 'tk:1', 'by ticket');
      await client.until((c) => c.named('message').length === 1);
      expect(received(client)).toEqual([{ channel: 'tk:1', message: 'by ticket' }]);

      const again = await withTicket(path, ticket);
      expectRefused(again, 401, 'INVALID_TOKEN');
      expect(again.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    } finally {
      client.close();
    }
  });

  it('opens a pattern path, and a path written with other percent-encoding of the same name', async () => {
    const pattern = patternEvents('tk:*');
    const patternClient = await withTicket(pattern, (await ticketFor(pattern)).ticket);
    const { ticket } = await ticketFor('/redis/pubsub/channels/tk%3Aenc/events');
    const channelClient = await withTicket('/redis/pubsub/channels/tk:enc/events', ticket);
    try {
      expect([patternClient.status, channelClient.status]).toEqual([200, 200]);
      await published(t, 'tk:enc', 'x');
      await patternClient.until((c) => c.named('message').length === 1);
      await channelClient.until((c) => c.named('message').length === 1);
    } finally {
      patternClient.close();
      channelClient.close();
    }
  });

  it('refuses a ticket for another path (401), and that ticket is used up', async () => {
    const { ticket } = await ticketFor(channelEvents('tk:a'));
    expectRefused(await withTicket(channelEvents('tk:b'), ticket), 401, 'INVALID_TOKEN');
    expectRefused(await withTicket(patternEvents('tk:a'), ticket), 401, 'INVALID_TOKEN');
    expectRefused(await withTicket(channelEvents('tk:a'), ticket), 401, 'INVALID_TOKEN');
  });

  it('refuses an expired ticket (401): a ticket never outlives its token', async () => {
    const shortLived = await t.token({ scopes: READ, ttlS: 2, clientId: 'other-client' });
    const path = channelEvents('tk:late');
    const { ticket, expiresAt } = await ticketFor(path, shortLived);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(claims(shortLived).exp * 1000);
    await sleep(Date.parse(expiresAt) - Date.now() + 300);
    expectRefused(await withTicket(path, ticket), 401, 'INVALID_TOKEN');
  });

  it('refuses a ticket together with an Authorization header (400)', async () => {
    const path = channelEvents('tk:both');
    const { ticket } = await ticketFor(path);
    const both = await listen(t, `${path}?ticket=${ticket}`);
    expectRefused(both, 400, 'BAD_REQUEST');
  });

  it('is no credential anywhere else: other routes, the Authorization header, an access token as ticket', async () => {
    const path = channelEvents('tk:else');
    const { ticket } = await ticketFor(path);
    const kv = await t.call('GET', `/redis/kv/x?ticket=${ticket}`);
    expect(kv.statusCode).toBe(401);
    const publishing = await t.call('POST', `${messagesOf('tk:else')}?ticket=${ticket}`, {
      body: { message: 'x' },
    });
    expect(publishing.statusCode).toBe(401);
    const status = await t.call('GET', `/redis/status?ticket=${ticket}`);
    expect(status.statusCode).toBe(401);
    expectRefused(await listen(t, path, { token: ticket }), 401, 'INVALID_TOKEN');
    // Not spent by any of those: it still opens its own path.
    const client = await withTicket(path, ticket);
    expect(client.status).toBe(200);
    client.close();

    expectRefused(await withTicket(path, t.tokens.read), 401, 'INVALID_TOKEN');
    expectRefused(
      await listen(t, `${path}?access_token=${t.tokens.read}`, { token: null }),
      401,
      'INVALID_TOKEN',
    );
    expectRefused(await withTicket(path, ''), 401, 'INVALID_TOKEN');
    expectRefused(await withTicket(path, 'A'.repeat(43)), 401, 'INVALID_TOKEN');
  });

  it('refuses to issue a ticket for anything but one SSE path (400), or without a token', async () => {
    for (const path of [
      '/redis/kv/x',
      '/redis/pubsub/channels/a/b/events',
      '/redis/pubsub/channels//events',
      '/redis/pubsub/channels/a/messages',
      '/redis/pubsub/channels/a/events?from=0',
      '/redis/pubsub/channels/%ZZ/events',
      '/redis/streams/a/entries',
      'http://evil.example/redis/pubsub/channels/a/events',
      '//evil.example/redis/pubsub/channels/a/events',
      'redis/pubsub/channels/a/events',
      '',
    ]) {
      const response = await t.call('POST', '/redis/tickets', {
        token: t.tokens.read,
        body: { path },
      });
      expect({ path, status: response.statusCode, code: problem(response).code }).toEqual({
        path,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
    for (const body of [{}, { path: 5 }, { path: channelEvents('a'), extra: 1 }]) {
      const response = await t.call('POST', '/redis/tickets', { token: t.tokens.read, body });
      expect(response.statusCode).toBe(400);
    }
    const body = { path: channelEvents('a') };
    expect((await t.call('POST', '/redis/tickets', { body })).statusCode).toBe(401);
    const writeOnly = await t.call('POST', '/redis/tickets', { token: t.tokens.write, body });
    expect(writeOnly.statusCode).toBe(403);
  });

  it('opens a stream tail too', async () => {
    const path = '/redis/streams/tk%3Atail/events';
    const added = await t.call('POST', '/redis/streams/tk:tail/entries', {
      token: t.tokens.write,
      body: { fields: { n: '1' } },
    });
    expect(added.statusCode).toBe(201);
    const client = await withTicket(path, (await ticketFor(path)).ticket, '&from=0');
    try {
      expect(client.status).toBe(200);
      await client.until((c) => c.named('entry').length === 1);
      expect(JSON.parse(client.named('entry')[0].data)).toMatchObject({ fields: { n: '1' } });
    } finally {
      client.close();
    }
  });

  it("carries the token's key patterns: a ticket for a channel outside them opens nothing (403)", async () => {
    const narrow = await t.token({ scopes: READ, keyPatterns: ['news:*'] });
    const outside = await ticketFor(channelEvents('other'), narrow);
    expectRefused(await withTicket(channelEvents('other'), outside.ticket), 403, 'KEY_FORBIDDEN');
    const widePattern = await ticketFor(patternEvents('*'), narrow);
    expectRefused(await withTicket(patternEvents('*'), widePattern.ticket), 403, 'KEY_FORBIDDEN');
    const inside = await ticketFor(channelEvents('news:1'), narrow);
    const client = await withTicket(channelEvents('news:1'), inside.ticket);
    expect(client.status).toBe(200);
    client.close();
  });

  it('never writes a ticket or a token to the logs', async () => {
    const path = channelEvents('tk:log');
    const { ticket } = await ticketFor(path);
    const mismatched = await ticketFor(channelEvents('tk:log2'));
    const client = await withTicket(path, ticket);
    expect(client.status).toBe(200);
    client.close();
    expectRefused(await withTicket(path, ticket), 401, 'INVALID_TOKEN');
    expectRefused(await withTicket(path, mismatched.ticket), 401, 'INVALID_TOKEN');
    expect((await t.call('GET', `/redis/kv/x?ticket=${ticket}`)).statusCode).toBe(401);
    await eventually(() =>
      expect(t.logs.filter((line) => line.includes('"status":401')).length).toBeGreaterThan(2),
    );
    await sleep(100);
    const lines = t.logs.join('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const secret of [ticket, mismatched.ticket, t.tokens.read, t.tokens.write]) {
      expect(lines).not.toContain(secret);
    }
    expect(lines).not.toContain('ticket=');
    expect(lines).toContain('/redis/pubsub/channels/:channel/events');
  });
});

describe('slow consumers and error events (S-12)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: { sse: { maxBufferBytes: 65536, maxClientsPerSubject: 100, maxClients: 100 } },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it('frames an error event with its stable code only', () => {
    expect(frame({ event: 'error', data: JSON.stringify({ code: 'SLOW_CONSUMER' }) })).toBe(
      'event: error\ndata: {"code":"SLOW_CONSUMER"}\n\n',
    );
    // Whatever an event name or id held, it stays one line of its own.
    expect(frame({ event: 'a\nb\r\nc\rd', data: 'x\ny', id: '1\n2\r3\0' })).toBe(
      'id: 123\nevent: abcd\ndata: x\ndata: y\n\n',
    );
  });

  it('ends a client that does not read with event: error SLOW_CONSUMER; the others get everything', async () => {
    const path = channelEvents('firehose');
    const reader = await listen(t, path);
    const slow = await pausedStream(`${t.baseUrl}${path}`, t.tokens.read);
    const value = 'x'.repeat(100000);
    let sent = 0;
    try {
      expect(slow.statusCode).toBe(200);
      await eventually(() => expect(openStreams(t)).toBe(2), 3000, 20);
      // The reader keeps up (each message is read before the next one); the paused one falls behind.
      const receivers = await gatewayReceivers(t, 'firehose', 1);
      while (openStreams(t) === 2 && sent < 1000) {
        expect(await published(t, 'firehose', `${sent}:${value}`)).toBe(receivers);
        sent += 1;
        await reader.until((c) => c.named('message').length === sent);
      }
      expect(openStreams(t)).toBe(1);
      expect(reader.ended).toBe(false);
      expect(received(reader).map((r) => r.message.split(':')[0])).toEqual(
        Array.from({ length: sent }, (_, i) => String(i)),
      );

      // Reading at last, the slow client finds whole messages, then the error with its code only.
      const text = await readAll(slow);
      const events = parseEvents(text);
      const last = events[events.length - 1];
      expect(last).toEqual({ event: 'error', data: '{"code":"SLOW_CONSUMER"}' });
      expect(text.endsWith('event: error\ndata: {"code":"SLOW_CONSUMER"}\n\n')).toBe(true);
      const before = events.slice(0, -1);
      expect(before.length).toBeLessThan(sent);
      before.forEach((event, i) => {
        expect(event.event).toBe('message');
        expect(JSON.parse(event.data)).toEqual({ channel: 'firehose', message: `${i}:${value}` });
      });
      // The slow client's leaving gave back nothing twice: the reader still has its subscription
      // (asked while the reader is still open: its own leaving would race the question).
      await eventually(() => expect(openStreams(t)).toBe(1));
      expect(await redisSubscribers(t, 'firehose')).toBe(1);
    } finally {
      reader.close();
      slow.destroy();
    }
  });
});

describe('stream limits', () => {
  let t: TestApp;
  // A Redis of its own, which this suite may pause without slowing anyone else's.
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
    t = await TestApp.create({
      listen: true,
      redisUrl: server.url,
      config: { sse: { maxClients: 3, maxClientsPerSubject: 2 } },
    });
  });

  afterAll(async () => {
    await t.close();
    await server.stop();
  });

  it('refuses a subject past sse.maxClientsPerSubject (429) and everyone past sse.maxClients (503)', async () => {
    const other = await t.token({ scopes: READ, clientId: 'other-client' });
    const opened: SseClient[] = [];
    try {
      opened.push(await listen(t, channelEvents('lim:1')));
      opened.push(await listen(t, patternEvents('lim:*')));
      expect(opened.map((c) => c.status)).toEqual([200, 200]);

      const third = await listen(t, channelEvents('lim:3'));
      expectRefused(third, 429, 'TOO_MANY_SUBJECT_STREAMS');
      expect(third.headers['retry-after']).toBeDefined();
      // Refused before subscribing: nothing was left behind in Redis.
      expect(await redisSubscribers(t, 'lim:3')).toBe(0);

      // Another subject may still open one; a stream tail counts with pub/sub streams.
      const tail = await listen(t, '/redis/streams/lim:s/events', { token: other });
      opened.push(tail);
      expect(tail.status).toBe(200);
      expect(openStreams(t)).toBe(3);

      const full = await listen(t, channelEvents('lim:4'), { token: other });
      expectRefused(full, 503, 'TOO_MANY_STREAMS');
      expect(full.headers['retry-after']).toBeDefined();
      expectRefused(
        await listen(t, patternEvents('lim:4*'), { token: other }),
        503,
        'TOO_MANY_STREAMS',
      );
      expect(await redisSubscribers(t, 'lim:4')).toBe(0);

      // A place freed is a place to take.
      opened.shift()?.close();
      await eventually(() => expect(openStreams(t)).toBe(2));
      const again = await listen(t, channelEvents('lim:4'), { token: other });
      opened.push(again);
      expect(again.status).toBe(200);
      // Its channel and the first subject's pattern lim:* are two Redis receivers.
      expect(await published(t, 'lim:4', 'in')).toBe(2);
      await again.until((c) => c.named('message').length === 1);
    } finally {
      opened.forEach((c) => c.close());
    }
    await eventually(() => expect(openStreams(t)).toBe(0));
  });

  it('does not count a client that left while its subscription was being made (S-7 window)', async () => {
    const url = new URL(t.baseUrl);
    const admin = server.client();
    try {
      // Redis holds the SUBSCRIBEs while the clients give up and go.
      await admin.call('CLIENT', 'PAUSE', '300', 'ALL');
      const sockets = ['gone:1', 'gone:2', 'gone:3'].map((name) => {
        const socket = connect(Number(url.port), url.hostname);
        socket.on('error', () => undefined);
        socket.write(
          `GET ${channelEvents(name)} HTTP/1.1\r\nHost: ${url.host}\r\n` +
            `Authorization: Bearer ${t.tokens.read}\r\n\r\n`,
        );
        return socket;
      });
      await sleep(100);
      sockets.forEach((socket) => socket.destroy());
      await sleep(400);
      await eventually(async () => {
        expect(openStreams(t)).toBe(0);
        expect(await admin.pubsub('NUMSUB', `${t.prefix}gone:1`)).toEqual([`${t.prefix}gone:1`, 0]);
      });
      // Their places are free: this subject can open its two streams.
      const clients = await Promise.all([1, 2].map((i) => listen(t, channelEvents(`gone:${i}`))));
      try {
        expect(clients.map((c) => c.status)).toEqual([200, 200]);
      } finally {
        clients.forEach((c) => c.close());
      }
    } finally {
      admin.disconnect();
    }
  });
});

/** A stream whose client reads nothing until told: its socket buffers fill up and stay full. */
function pausedStream(url: string, token: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...bearer(token) } });
    req.on('error', reject);
    req.on('response', (res) => {
      res.pause();
      resolve(res);
    });
    req.end();
  });
}

/** Everything the response still holds, to its end. */
function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    res.on('end', () => resolve(text));
    res.on('error', reject);
    res.resume();
  });
}

function parseEvents(text: string): SseMessage[] {
  const events: SseMessage[] = [];
  const parser = createParser({
    onEvent: (message) => events.push({ event: message.event ?? 'message', data: message.data }),
  });
  parser.feed(text);
  return events;
}

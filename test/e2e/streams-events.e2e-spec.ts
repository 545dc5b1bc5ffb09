import { connect } from 'node:net';
import { EventSource } from 'eventsource';
import { RedisConnections } from '../../src/redis/connections';
import { SseRegistry } from '../../src/sse/sse-registry';
import { TestApp, withApp } from '../support/app';
import { eventually, sleep } from '../support/ports';
import { SseClient, bearer, expectStreamHeaders, streamEvents } from '../support/sse';

/**
 * SSE tails of streams (`GET /redis/streams/{key}/events`) against a real Redis and real tokens:
 * framing and headers, where a tail starts, resumption with Last-Event-ID with nothing lost or
 * repeated, the limits, the shared blocking connections and their release, expiry, shutdown.
 */
describe('stream tails over Server-Sent Events', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      config: {
        sse: { heartbeatMs: 300, maxClientsPerSubject: 1000, maxClients: 1000 },
        redis: { blockingPoolSize: 4 },
        // One subject fills the pool here; its share of it is the limits suite's.
        quotas: { blockingPerSubject: 0 },
      },
    });
  });

  afterAll(async () => {
    await t.close();
  });

  const tail = (name: string, options: { query?: string; headers?: Record<string, string> } = {}) =>
    SseClient.open(`${t.baseUrl}${streamEvents(name)}${options.query ?? ''}`, {
      headers: { ...bearer(t.tokens.read), ...options.headers },
    });
  const add = async (name: string, fields: Record<string, string>) => {
    const response = await t.call('POST', `/redis/streams/${encodeURIComponent(name)}/entries`, {
      token: t.tokens.write,
      body: { fields },
    });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  };
  const entries = (client: SseClient) =>
    client.named('entry').map((event) => {
      const data = JSON.parse(event.data) as { id: string; fields: Record<string, string> };
      expect(event.id).toBe(data.id);
      return data;
    });
  /** Blocking-pool connections as Redis sees them (on every master of a cluster). */
  const blockingClients = async () => {
    const lists = await Promise.all(
      t.servers().map(async (node) => (await node.call('CLIENT', 'LIST')) as string),
    );
    return lists
      .join('\n')
      .split('\n')
      .filter((line) => line.includes('name=redis-gateway:blocking')).length;
  };
  const gauge = async (name: string) => {
    const text = (await t.call('GET', '/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1]);
  };
  const streamClients = () => openStreams(t);

  it('answers 200 text/event-stream with headers that keep proxies from buffering (S-2)', async () => {
    const client = await tail('hdr', { headers: { 'accept-encoding': 'gzip, br' } });
    try {
      expectStreamHeaders(client);
    } finally {
      client.close();
    }
  });

  it('starts with new entries by default (from=$), and replays all with from=0', async () => {
    const first = await add('start', { n: '1' });
    const live = await tail('start');
    const replay = await tail('start', { query: '?from=0' });
    const afterFirst = await tail('start', { query: `?from=${first}` });
    try {
      const second = await add('start', { n: '2' });
      await live.until((c) => c.named('entry').length >= 1);
      await replay.until((c) => c.named('entry').length >= 2);
      await afterFirst.until((c) => c.named('entry').length >= 1);
      expect(entries(live)).toEqual([{ id: second, fields: { n: '2' } }]);
      expect(entries(replay).map((e) => e.id)).toEqual([first, second]);
      expect(entries(afterFirst).map((e) => e.id)).toEqual([second]);
    } finally {
      [live, replay, afterFirst].forEach((c) => c.close());
    }
  });

  it('resumes after a dropped connection with Last-Event-ID, losing and repeating nothing', async () => {
    const name = 'resume';
    let adding = true;
    const added: string[] = [];
    const writer = (async () => {
      for (let i = 0; adding && i < 2000; i++) {
        added.push(await add(name, { seq: String(i) }));
      }
    })();
    const received: string[] = [];
    let lastId = '0';
    try {
      // Five connections, each dropped mid-stream while entries keep arriving; each reconnect
      // names the last id it saw, as EventSource does.
      for (let round = 0; round < 5; round++) {
        const client = await tail(name, { query: '?from=0', headers: { 'last-event-id': lastId } });
        expect(client.status).toBe(200);
        await client.until((c) => c.named('entry').length >= 20, 10000);
        client.close();
        const got = entries(client).map((e) => e.id);
        received.push(...got);
        lastId = got[got.length - 1];
        await sleep(50); // entries are added while no client is connected
      }
    } finally {
      adding = false;
      await writer;
    }
    const final = await tail(name, { headers: { 'last-event-id': lastId } });
    try {
      const remaining = added.length - received.length;
      await final.until((c) => c.named('entry').length >= remaining, 10000);
      received.push(...entries(final).map((e) => e.id));
    } finally {
      final.close();
    }
    expect(received).toEqual(added);
    expect(new Set(received).size).toBe(received.length);
  });

  it("resumes by itself in a browser's EventSource after the server drops it", async () => {
    const name = 'browser';
    const firstId = await add(name, { n: '0' });
    const token = t.tokens.read;
    const seen: string[] = [];
    const lastEventIds: (string | null)[] = [];
    const source = new EventSource(`${t.baseUrl}${streamEvents(name)}?from=0`, {
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        lastEventIds.push(headers.get('last-event-id'));
        headers.set('authorization', `Bearer ${token}`);
        return fetch(input, { ...init, headers });
      },
    });
    try {
      source.addEventListener('entry', (event) => seen.push(event.lastEventId));
      await eventually(() => expect(seen).toEqual([firstId]), 5000, 20);
      // Every connection of the server is cut: the browser reconnects after `retry:`.
      (t.app.getHttpServer() as { closeAllConnections(): void }).closeAllConnections();
      const whileAway = [await add(name, { n: '1' }), await add(name, { n: '2' })];
      await eventually(() => expect(seen).toEqual([firstId, ...whileAway]), 10000, 50);
      expect(lastEventIds).toEqual([null, firstId]);
    } finally {
      source.close();
    }
  });

  it('treats a Last-Event-ID that is not an entry id as absent, with event: gap (never 500)', async () => {
    for (const bad of ['abc', `${'9'.repeat(30)}`, '1-2-3', 'x'.repeat(10240)]) {
      const client = await tail('gap', { headers: { 'last-event-id': bad } });
      try {
        expect(client.status).toBe(200);
        await client.until((c) => c.named('gap').length === 1);
      } finally {
        client.close();
      }
    }
  });

  it('frames any content safely: an entry is one event whatever its fields hold (S-1)', async () => {
    const hostile = '\n\nevent: admin\ndata: x\r\nid: 999\rretry: 1\n\0';
    const client = await tail('framing');
    try {
      const id = await add('framing', { 'event: admin': hostile, '"}': '\u2028\u2029' });
      await client.until((c) => c.named('entry').length === 1);
      expect(client.events.filter((e) => e.event !== 'entry')).toEqual([]);
      expect(entries(client)).toEqual([
        { id, fields: { 'event: admin': hostile, '"}': '\u2028\u2029' } },
      ]);
    } finally {
      client.close();
    }
  });

  it('sends an entry that is not UTF-8 text in base64, and says so', async () => {
    const client = await tail('binary');
    try {
      await t.redis.xadd(`${t.prefix}binary`, '*', 'blob', Buffer.from([0xff, 0xfe, 0x00]));
      await client.until((c) => c.named('entry').length === 1);
      expect(JSON.parse(client.named('entry')[0].data)).toMatchObject({
        encoding: 'base64',
        fields: { [Buffer.from('blob').toString('base64')]: '//4A' },
      });
    } finally {
      client.close();
    }
  });

  it('sends a heartbeat comment every sse.heartbeatMs (S-3)', async () => {
    const client = await tail('quiet');
    try {
      await client.until((c) => c.comments.length >= 3, 3000);
      expect(client.comments.every((comment) => comment.text.trim() === 'ping')).toBe(true);
      const gaps = client.comments.slice(1).map((c, i) => c.at - client.comments[i].at);
      for (const gap of gaps) {
        expect(gap).toBeGreaterThan(150);
        expect(gap).toBeLessThan(900);
      }
    } finally {
      client.close();
    }
  });

  it('refuses before any stream bytes: 401, 403 scope, 403 key pattern, 400, 409 (S-11)', async () => {
    const none = await SseClient.open(`${t.baseUrl}${streamEvents('refused')}`);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/invalid_token/);

    const writeOnly = await tail('refused', { headers: bearer(t.tokens.write) });
    expect(writeOnly.status).toBe(403);
    expect(writeOnly.headers['www-authenticate']).toMatch(/insufficient_scope.*redis:read/);

    const narrow = await t.token({ scopes: ['redis:read'], keyPatterns: ['allowed:*'] });
    expect((await tail('other', { headers: bearer(narrow) })).status).toBe(403);
    const allowed = await tail('allowed:1', { headers: bearer(narrow) });
    expect(allowed.status).toBe(200);
    allowed.close();
    expect((await tail('__gw:lock:x')).status).toBe(403);

    const badFrom = await tail('refused', { query: '?from=yesterday' });
    expect(badFrom.status).toBe(400);
    expect(JSON.parse(badFrom.body)).toMatchObject({ code: 'VALIDATION_FAILED' });

    await t.redis.set(`${t.prefix}a-string`, 'x');
    const wrongType = await tail('a-string');
    expect(wrongType.status).toBe(409);
    expect(JSON.parse(wrongType.body)).toMatchObject({ code: 'WRONG_TYPE' });
  });

  it('shares one blocking connection per tailed stream, and refuses a stream past the pool (503)', async () => {
    const baseline = await blockingClients();
    const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => tail(`pool:${i % 4}`)));
    try {
      expect(clients.map((c) => c.status)).toEqual(Array(40).fill(200));
      if (t.topology === 'cluster') {
        // Each leased connection is a cluster client: besides the master serving its stream it
        // may keep the one that answered CLUSTER SLOTS, so 4 leases hold 4 to 4 × masters.
        const held = (await blockingClients()) - baseline;
        expect(held).toBeGreaterThanOrEqual(4);
        expect(held).toBeLessThanOrEqual(4 * t.servers().length);
      } else {
        expect(await blockingClients()).toBe(baseline + 4);
      }
      expect(await gauge('redis_gateway_blocking_pool_in_use')).toBe(4);

      const refused = await tail('pool:5');
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBeDefined();
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'BLOCKING_POOL_EXHAUSTED' });
      // A group read finds nothing to read at once, and then no connection to wait on.
      const group = await t.call('POST', '/redis/streams/pool:0/groups', {
        token: t.tokens.write,
        body: { group: 'g' },
      });
      expect(group.statusCode).toBe(201);
      const blockedRead = await t.call('POST', '/redis/streams/pool:0/groups/g/read', {
        token: t.tokens.write,
        body: { consumer: 'c', blockMs: 1000 },
      });
      expect(blockedRead.statusCode).toBe(503);
      expect(blockedRead.json()).toMatchObject({ code: 'BLOCKING_POOL_EXHAUSTED' });

      const id = await add('pool:1', { n: '1' });
      const onOne = clients.filter((_, i) => i % 4 === 1);
      await Promise.all(onOne.map((c) => c.until((x) => x.named('entry').length === 1)));
      expect(onOne.every((c) => entries(c)[0].id === id)).toBe(true);
    } finally {
      clients.forEach((c) => c.close());
    }
  });

  it('frees everything when 200 tails are opened and dropped (no leaked connection or client)', async () => {
    // The tails of the previous cases give their connections back as their sockets close.
    await eventually(() => expect(t.app.get(RedisConnections).blocking.leased).toBe(0));
    const baseline = await blockingClients();
    for (let round = 0; round < 4; round++) {
      const clients = await Promise.all(
        Array.from({ length: 50 }, (_, i) => tail(`churn:${i % 3}`)),
      );
      expect(clients.every((c) => c.status === 200)).toBe(true);
      clients.forEach((c) => c.close());
    }
    await eventually(
      async () => {
        expect(streamClients()).toBe(0);
        // None may be left over. Fewer is no leak: a tail dropped while its XREAD blocks
        // discards its connection rather than reuse it, and which of the baseline's idle
        // connections the churn took depends on timing (on a busy machine, all of them); a
        // cluster client also closes its node connections after it is discarded.
        expect(await blockingClients()).toBeLessThanOrEqual(baseline);
        expect(t.app.get(RedisConnections).blocking.leased).toBe(0);
      },
      3000,
      50,
    );
  });

  it('ends a stream with event: expired when its token expires (S-10)', async () => {
    const shortLived = await t.token({ scopes: ['redis:read'], ttlS: 2 });
    const client = await tail('expiring', { headers: bearer(shortLived) });
    const opened = Date.now();
    await client.until((c) => c.ended, 5000);
    expect(client.named('expired')).toHaveLength(1);
    expect(Date.now() - opened).toBeLessThan(3500);
  });

  it('tells a client that does not read (slow consumer) and closes it; others keep up', async () => {
    await withApp(
      {
        issuer: t.issuer,
        listen: true,
        config: { sse: { maxBufferBytes: 65536 } },
      },
      async (slow) => {
        const url = new URL(`${slow.baseUrl}${streamEvents('firehose')}`);
        // A raw socket that sends the request and then never reads a byte.
        const socket = connect(Number(url.port), url.hostname);
        socket.write(
          `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${slow.tokens.read}\r\n\r\n`,
        );
        socket.pause();
        const reader = await SseClient.open(url.toString(), { headers: bearer(slow.tokens.read) });
        await eventually(() => expect(openStreams(slow)).toBe(2), 3000, 20);
        const value = 'x'.repeat(100000);
        const ids: string[] = [];
        for (let i = 0; i < 100; i++) {
          const response = await slow.call('POST', '/redis/streams/firehose/entries', {
            token: slow.tokens.write,
            body: { fields: { value } },
          });
          ids.push(response.json<{ id: string }>().id);
          // The reader keeps up: each entry is read before the next is added. Otherwise entries
          // added faster than the tail re-arms its XREAD (slower in a cluster) arrive in one
          // batch of several 100 KB entries, past the reader's 64 KB bound as well.
          await reader.until((c) => c.named('entry').length === i + 1);
        }
        await eventually(() => expect(openStreams(slow)).toBe(1), 10000, 50);
        await reader.until((c) => c.named('entry').length === 100, 10000);
        expect(entries(reader).map((e) => e.id)).toEqual(ids);
        reader.close();
        socket.destroy();
      },
    );
  });

  it('a blocked group read never delays plain requests', async () => {
    await t.call('POST', '/redis/streams/blocked/groups', {
      token: t.tokens.write,
      body: { group: 'g' },
    });
    let blockedDone = false;
    const blocked = t
      .call('POST', '/redis/streams/blocked/groups/g/read', {
        token: t.tokens.write,
        body: { consumer: 'c', blockMs: 1500 },
      })
      .then((response) => {
        blockedDone = true;
        return response;
      });
    await sleep(50);
    for (let i = 0; i < 20; i++) {
      const response = await t.call('GET', '/redis/streams/blocked', { token: t.tokens.read });
      expect(response.statusCode).toBe(200);
    }
    expect(blockedDone).toBe(false);
    expect((await blocked).json()).toEqual({ entries: [] });
  });

  it('ends every stream with event: shutdown when the application closes', async () => {
    const closing = await TestApp.create({
      issuer: t.issuer,
      listen: true,
      config: { sse: { maxClientsPerSubject: 100 } },
    });
    const clients = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        SseClient.open(`${closing.baseUrl}${streamEvents(`bye:${i % 2}`)}`, {
          headers: bearer(closing.tokens.read),
        }),
      ),
    );
    expect(clients.map((c) => c.status)).toEqual(Array(20).fill(200));
    await closing.close();
    await Promise.all(clients.map((c) => c.until((x) => x.ended, 5000)));
    expect(clients.map((c) => c.named('shutdown').length)).toEqual(Array(20).fill(1));
  });
});

/** Open SSE streams of one app (the metrics registry is shared by every app in the process). */
function openStreams(app: TestApp): number {
  return app.app.get(SseRegistry).size;
}

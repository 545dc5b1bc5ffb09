/**
 * Pub/sub over SSE under load and failure (S-5, S-6, S-7, S-9, S-13, S-14 and R-8, R-9, R-18),
 * against real redis-servers this suite starts and stops, real tokens and real HTTP
 * connections. Figures print with FAILURES_REPORT=1.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { LocalIssuer } from '../../src/dev/local-issuer';
import { Subscriptions } from '../../src/subscriptions/subscriptions';
import { RedisConnections } from '../../src/redis/connections';
import { SseRegistry } from '../../src/sse/sse-registry';
import { TestApp, withApp, type TestAppOptions } from '../support/app';
import { FaultProxy } from '../support/fault-proxy';
import { eventually, sleep } from '../support/ports';
import { withRedisServer } from '../support/redis';
import { ServiceProcess } from '../support/service-process';
import { SseClient, bearer, channelEvents, patternEvents } from '../support/sse';
import { report } from '../support/figures';

/**
 * How long S-14 holds its stream: Node checks the request and headers timeouts of its
 * connections every 30 s (connectionsCheckingInterval), so a shorter stream would never meet
 * that check. S14_SECONDS=12 shortens it.
 */
const S14_MS = Number(process.env.S14_SECONDS ?? 32) * 1000;

const elapsed = (since: number) => Math.round(performance.now() - since);
const mb = (bytes: number) => (bytes / 1048576).toFixed(1);

interface Published {
  channel: string;
  message: string;
  pattern?: string;
}

const messages = (client: SseClient): Published[] =>
  client.named('message').map((event) => JSON.parse(event.data) as Published);

/** CLIENT LIST as one record per connection. */
async function clientList(redis: Redis): Promise<Record<string, string>[]> {
  const text = (await redis.call('CLIENT', 'LIST')) as string;
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) =>
      Object.fromEntries(
        line
          .trim()
          .split(' ')
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      ),
    );
}

async function numsub(redis: Redis, channels: string[]): Promise<number[]> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', ...channels)) as (string | number)[];
  return channels.map((_, i) => Number(reply[i * 2 + 1]));
}

async function numpat(redis: Redis): Promise<number> {
  return Number(await redis.call('PUBSUB', 'NUMPAT'));
}

/** A counter of the app's /metrics (summed over the label sets that contain `labels`). */
async function metric(t: TestApp, name: string, labels: string[]): Promise<number> {
  const text = (await t.call('GET', '/metrics')).body;
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && labels.every((l) => line.includes(l)))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/**
 * The 20 normal readers of S-5, in a child process: 20 × 10 MB of events parsed in this
 * process would dwarf the service's own memory, which is what S-5 measures. Each reader checks
 * that the sequence numbers arrive complete and in order; it prints `ready` once every
 * response head is in, and one JSON line of results when each has EXPECT messages or has been
 * closed (or at TIMEOUT_MS). It keeps its streams open until it is killed.
 */
const READERS = `
const http = require('node:http');
const n = Number(process.env.CLIENTS);
const expected = Number(process.env.EXPECT);
const clients = [];
let opened = 0;
let finished = false;
const finish = () => {
  if (!finished) {
    finished = true;
    process.stdout.write(JSON.stringify(clients) + '\\n');
  }
};
const check = () => {
  if (clients.every((c) => c.received >= expected || c.ended)) finish();
};
setTimeout(finish, Number(process.env.TIMEOUT_MS));
for (let i = 0; i < n; i++) {
  const client = { status: 0, received: 0, inOrder: true, ended: false, other: [] };
  clients.push(client);
  const req = http.request(process.env.SSE_URL, {
    agent: false,
    headers: { authorization: 'Bearer ' + process.env.TOKEN, accept: 'text/event-stream' },
  });
  req.on('error', (error) => { client.other.push(error.message); client.ended = true; });
  req.on('response', (res) => {
    client.status = res.statusCode;
    if (++opened === n) process.stdout.write('ready\\n');
    res.setEncoding('utf8');
    let buffer = '';
    res.on('data', (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\\n\\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith('event: message\\n')) {
          const match = /"message":"(\\d+):/.exec(block.slice(0, 200));
          if (!match || Number(match[1]) !== client.received) client.inOrder = false;
          client.received++;
        } else if (block.startsWith('event: ')) {
          client.other.push(block.slice(0, 200));
        }
      }
      check();
    });
    res.on('close', () => { client.ended = true; check(); });
  });
  req.end();
}
`;

interface ReaderResult {
  status: number;
  received: number;
  inOrder: boolean;
  ended: boolean;
  other: string[];
}

/** A raw socket that sends an SSE request and never reads a byte of the answer. */
function neverReads(baseUrl: string, path: string, token: string): Socket {
  const url = new URL(`${baseUrl}${path}`);
  const socket = connect(Number(url.port), url.hostname);
  socket.on('error', () => undefined);
  socket.pause();
  socket.write(
    `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n` +
      `Authorization: Bearer ${token}\r\n\r\n`,
  );
  return socket;
}

describe('pub/sub over SSE under load and failure (R-8, R-9, R-18)', () => {
  let issuer: LocalIssuer;

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
  });

  afterAll(async () => {
    await issuer.close();
  });

  /** The app on that Redis, listening (SSE clients need real connections), for withApp. */
  const appOn = (redisUrl: string, config: TestAppOptions['config']): TestAppOptions => ({
    redisUrl,
    issuer,
    config,
    listen: true,
  });

  const open = (t: TestApp, path: string, timeoutMs = 5000) =>
    SseClient.open(`${t.baseUrl}${path}`, { headers: bearer(t.tokens.read), timeoutMs });

  async function publish(t: TestApp, channel: string, message: string): Promise<number> {
    const response = await t.call(
      'POST',
      `/redis/pubsub/channels/${encodeURIComponent(channel)}/messages`,
      { token: t.tokens.write, body: { message } },
    );
    expect([response.statusCode, response.body]).toEqual([200, expect.any(String)]);
    return response.json<{ receivers: number }>().receivers;
  }

  async function ready(t: TestApp): Promise<void> {
    await eventually(async () => expect((await t.call('GET', '/readyz')).statusCode).toBe(200));
  }

  /** Streams that are still open and were never ended with an event. */
  function expectOpen(clients: SseClient[]): void {
    for (const client of clients) {
      expect(client.ended).toBe(false);
      expect(client.events.filter((e) => !['message', 'reconnected'].includes(e.event))).toEqual(
        [],
      );
    }
  }

  it('fan-out: 1,000 SSE clients add no Redis connection, all get every message in order, and the last to leave unsubscribes (S-6)', async () => {
    await withRedisServer(async (server) => {
      const sse = { maxClients: 5000, maxClientsPerSubject: 5000 };
      await withApp(appOn(server.url, { sse }), async (t) => {
        const control = server.client();
        const gateway = async () =>
          (await clientList(control)).filter((c) => c.name.startsWith('redis-gateway:'));
        const before = await gateway();
        const channels = Array.from({ length: 10 }, (_, i) => `fan:${i}`);
        const redisChannels = channels.map((c) => `${t.prefix}${c}`);
        // 900 clients on 10 channels, 100 on a pattern that matches all of them.
        const paths = Array.from({ length: 1000 }, (_, i) =>
          i < 900 ? channelEvents(channels[i % 10]) : patternEvents('fan:*'),
        );
        const clients: SseClient[] = [];
        const opening = performance.now();
        try {
          for (let start = 0; start < paths.length; start += 200) {
            const wave = paths.slice(start, start + 200).map((path) => open(t, path, 15000));
            clients.push(...(await Promise.all(wave)));
          }
          const openMs = elapsed(opening);
          expect(clients.filter((c) => c.status !== 200)).toEqual([]);
          expect(t.app.get(SseRegistry).size).toBe(1000);
          expect(t.app.get(Subscriptions).size).toBe(11);

          const after = await gateway();
          const subscribers = after.filter((c) => c.name === 'redis-gateway:subscriber');
          expect(subscribers).toHaveLength(1);
          expect([subscribers[0].sub, subscribers[0].psub]).toEqual(['10', '1']);
          expect(after.length).toBeLessThanOrEqual(before.length + 1);
          expect(await numsub(control, redisChannels)).toEqual(Array(10).fill(1));
          expect(await numpat(control)).toBe(1);

          const publishing = performance.now();
          for (let i = 0; i < 20; i++) {
            const receivers = await Promise.all(
              channels.map((channel) => publish(t, channel, `${channel}#${i}`)),
            );
            // Redis delivers each message twice (channel + pattern) to the one connection.
            expect(receivers).toEqual(Array(10).fill(2));
          }
          const expected = (channel: string) =>
            Array.from({ length: 20 }, (_, i) => `${channel}#${i}`);
          await eventually(
            () => {
              const behind = clients.filter(
                (c, i) => c.named('message').length < (i < 900 ? 20 : 200),
              );
              expect(behind.length).toBe(0);
            },
            20000,
            50,
          );
          const deliveryMs = elapsed(publishing);
          clients.forEach((client, i) => {
            const got = messages(client);
            if (i < 900) {
              const channel = channels[i % 10];
              expect(got.map((m) => m.message)).toEqual(expected(channel));
              expect(got.every((m) => m.channel === channel && m.pattern === undefined)).toBe(true);
            } else {
              expect(got).toHaveLength(200);
              for (const channel of channels) {
                const mine = got.filter((m) => m.channel === channel);
                expect(mine.map((m) => m.message)).toEqual(expected(channel));
              }
              expect(got.every((m) => m.pattern === 'fan:*')).toBe(true);
            }
          });
          expectOpen(clients);

          const registry = t.app.get(SseRegistry);
          clients.forEach((client) => client.close());
          const closing = performance.now();
          // When the service has seen the last of the 1,000 disconnects.
          let goneMs: number | undefined;
          const watch = setInterval(() => {
            goneMs ??= registry.size === 0 ? elapsed(closing) : undefined;
          }, 5);
          try {
            await eventually(
              async () => {
                expect(await numsub(control, redisChannels)).toEqual(Array(10).fill(0));
                expect(await numpat(control)).toBe(0);
              },
              5000,
              10,
            );
          } finally {
            clearInterval(watch);
          }
          const unsubscribeMs = elapsed(closing);
          expect(registry.size).toBe(0);
          expect(t.app.get(Subscriptions).size).toBe(0);
          // Within 1 s of the last close; 1,000 disconnects take the service a moment on a
          // loaded two-core machine, so the bound on the whole is looser.
          expect(unsubscribeMs - (goneMs ?? 0)).toBeLessThanOrEqual(1000);
          expect(unsubscribeMs).toBeLessThanOrEqual(2000);
          report(
            `fan-out: 1000 SSE clients (900 on 10 channels, 100 on a pattern) opened in ${openMs} ms; ` +
              `gateway connections ${before.length} -> ${after.length} (subscriber: 1, sub=10 psub=1); ` +
              `200 publishes -> ${900 * 20 + 100 * 200} events delivered in order in ${deliveryMs} ms; ` +
              `the service saw all 1000 disconnects ${goneMs ?? '?'} ms after the clients closed, ` +
              `NUMSUB/NUMPAT 0 at ${unsubscribeMs} ms`,
          );
        } finally {
          clients.forEach((client) => client.close());
        }
      });
    });
  }, 60000);

  it('R-8: resubscribes after CLIENT KILL TYPE pubsub and after a Redis restart, with event: reconnected', async () => {
    await withRedisServer(async (server) => {
      await withApp(appOn(server.url, { sse: { heartbeatMs: 500 } }), async (t) => {
        const control = server.client();
        const channels = ['r8:a', 'r8:b', 'r8:c'];
        const redisChannels = channels.map((c) => `${t.prefix}${c}`);
        const clients = await Promise.all([
          ...channels.map((channel) => open(t, channelEvents(channel))),
          open(t, patternEvents('r8:*')),
        ]);
        const pattern = clients[3];
        try {
          const restored = async (client = control) => {
            expect(await numsub(client, redisChannels)).toEqual([1, 1, 1]);
            expect(await numpat(client)).toBe(1);
          };
          await restored();
          const roundTrip = async (tag: string, round: number) => {
            await ready(t);
            for (const channel of channels) {
              expect(await publish(t, channel, `${tag}:${channel}`)).toBe(2);
            }
            for (const [i, client] of clients.slice(0, 3).entries()) {
              await client.until((c) => c.named('message').length >= round);
              expect(messages(client).pop()?.message).toBe(`${tag}:${channels[i]}`);
            }
            await pattern.until((c) => c.named('message').length >= round * 3);
            expect(
              messages(pattern)
                .slice(-3)
                .map((m) => m.message),
            ).toEqual(channels.map((channel) => `${tag}:${channel}`));
          };
          await roundTrip('before', 1);

          // 1. Redis drops the subscriber connection.
          const killing = performance.now();
          expect(await control.call('CLIENT', 'KILL', 'TYPE', 'pubsub')).toBe(1);
          await eventually(restored, 5000, 10);
          const killMs = elapsed(killing);
          await Promise.all(
            clients.map((c) => c.until((x) => x.named('reconnected').length === 1)),
          );
          const killNotifiedMs = elapsed(killing);
          expect(killMs).toBeLessThanOrEqual(1000);
          await roundTrip('after-kill', 2);
          expectOpen(clients);

          // 2. Redis restarts (down ~1 s, so the reconnect backoff reaches its cap).
          await server.kill();
          await sleep(1000);
          expectOpen(clients);
          await server.launch();
          const launched = performance.now();
          // A new client: the old one is waiting out its own reconnect backoff.
          const fresh = server.client();
          await eventually(() => restored(fresh), 5000, 10);
          const restartMs = elapsed(launched);
          await Promise.all(
            clients.map((c) => c.until((x) => x.named('reconnected').length === 2)),
          );
          const restartNotifiedMs = elapsed(launched);
          expect(restartMs).toBeLessThanOrEqual(1000);
          await roundTrip('after-restart', 3);
          expectOpen(clients);
          const reconnected = JSON.parse(clients[0].named('reconnected')[0].data) as object;
          expect(reconnected).toEqual({ reason: expect.any(String) });
          report(
            `R-8: CLIENT KILL TYPE pubsub -> NUMSUB/NUMPAT restored in ${killMs} ms, ` +
              `event: reconnected at ${killNotifiedMs} ms; Redis restart -> restored ${restartMs} ms ` +
              `after Redis answered, reconnected at ${restartNotifiedMs} ms; all 4 streams stayed open`,
          );
        } finally {
          clients.forEach((client) => client.close());
        }
      });
    });
  }, 30000);

  it('R-9: a frozen (half-open) subscriber is found by its PING check, replaced and resubscribed', async () => {
    await withRedisServer(async (server) => {
      const proxy = await FaultProxy.start({ targetPort: server.port });
      try {
        await withApp(appOn(proxy.url, { sse: { heartbeatMs: 500 } }), async (t) => {
          const control = server.client();
          const subscriber = t.app.get(RedisConnections).subscriber;
          const clients = await Promise.all([
            open(t, channelEvents('r9:a')),
            open(t, patternEvents('r9:*')),
          ]);
          try {
            expect(await publish(t, 'r9:a', 'before')).toBe(2);
            await Promise.all(clients.map((c) => c.until((x) => x.named('message').length === 1)));

            // Every connection through the proxy stops forwarding, sockets stay open.
            const accepted = proxy.accepted;
            proxy.freeze();
            const frozen = performance.now();
            // When the health check's PING went out: it waits in the command queue unanswered.
            const queue = (subscriber as Redis).commandQueue;
            let pingSent: number | undefined;
            const watch = setInterval(() => {
              const waiting = queue.toArray().some((item) => item.command.name === 'ping');
              pingSent = waiting ? (pingSent ?? performance.now()) : undefined;
            }, 5);
            try {
              await eventually(() => expect(subscriber.status).not.toBe('ready'), 12000, 5);
            } finally {
              clearInterval(watch);
            }
            const detectMs = elapsed(frozen);
            const pingMs = Math.round((pingSent ?? NaN) - frozen);
            // The PING runs every 5 s with a 2 s deadline; the bar is 2 intervals (10 s).
            expect(detectMs).toBeLessThanOrEqual(7500);
            // Dropped when the deadline passes, not closed gracefully (which waits 2 s more
            // for a FIN that a half-open path never delivers).
            expect(detectMs - pingMs).toBeGreaterThanOrEqual(1900);
            expect(detectMs - pingMs).toBeLessThanOrEqual(2500);
            // It connects again at once; the new connection is frozen too until the path heals.
            await eventually(() => expect(proxy.accepted).toBeGreaterThan(accepted), 3000, 20);
            expectOpen(clients);
            proxy.pass();
            const healed = performance.now();
            await Promise.all(
              clients.map((c) => c.until((x) => x.named('reconnected').length === 1, 5000)),
            );
            const recoverMs = elapsed(healed);
            expect(subscriber.status).toBe('ready');
            expect(await numsub(control, [`${t.prefix}r9:a`])).toEqual([1]);
            expect(await numpat(control)).toBe(1);
            const subscribers = (await clientList(control)).filter(
              (c) => c.name === 'redis-gateway:subscriber',
            );
            expect(subscribers).toHaveLength(1);
            await ready(t);
            expect(await publish(t, 'r9:a', 'after')).toBe(2);
            await Promise.all(clients.map((c) => c.until((x) => x.named('message').length === 2)));
            expect(clients.map((c) => messages(c).map((m) => m.message))).toEqual([
              ['before', 'after'],
              ['before', 'after'],
            ]);
            expectOpen(clients);
            report(
              `R-9: PING sent ${pingMs} ms after the freeze (every 5 s, 2 s deadline); frozen ` +
                `subscriber dropped at ${detectMs} ms (${detectMs - pingMs} ms after its PING), resubscribed and event: reconnected ${recoverMs} ms after the path healed`,
            );
          } finally {
            clients.forEach((client) => client.close());
          }
        });
      } finally {
        await proxy.close();
      }
    });
  }, 30000);

  it('S-5: a client that never reads is sent SLOW_CONSUMER and closed while 10 MB are published; memory stays bounded', async () => {
    await withRedisServer(async (server) => {
      const config = { sse: { maxBufferBytes: 262144, maxClientsPerSubject: 100 } };
      await withApp(appOn(server.url, config), async (t) => {
        const control = server.client();
        const publisher = server.client();
        const registry = t.app.get(SseRegistry);
        const readers = spawn(process.execPath, ['-e', READERS], {
          env: {
            PATH: process.env.PATH ?? '',
            SSE_URL: `${t.baseUrl}${channelEvents('s5')}`,
            TOKEN: t.tokens.read,
            CLIENTS: '20',
            EXPECT: '100',
            TIMEOUT_MS: '30000',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        readers.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        const slow = neverReads(t.baseUrl, channelEvents('s5'), t.tokens.read);
        try {
          await eventually(() => expect(out).toContain('ready\n'), 10000);
          await eventually(() => expect(registry.size).toBe(21), 3000, 20);
          const droppedBefore = await metric(t, 'redis_gateway_sse_events_total', [
            'result="dropped"',
          ]);

          const rss0 = process.memoryUsage().rss;
          let rssPeak = rss0;
          let omemPeak = 0;
          let slowClosedAt: number | undefined;
          const started = performance.now();
          const sampler = setInterval(() => {
            rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
            if (slowClosedAt === undefined && registry.size === 20) {
              slowClosedAt = elapsed(started);
            }
          }, 10);
          let polling = true;
          const omem = (async () => {
            while (polling) {
              const line = (await clientList(control)).find(
                (c) => c.name === 'redis-gateway:subscriber',
              );
              omemPeak = Math.max(omemPeak, Number(line?.omem ?? 0));
              await sleep(20);
            }
          })();
          try {
            const filler = 'x'.repeat(100 * 1024);
            for (let i = 0; i < 100; i++) {
              expect(await publisher.publish(`${t.prefix}s5`, `${i}:${filler}`)).toBe(1);
              await sleep(20);
            }
            const publishMs = elapsed(started);
            // The readers' results first (they keep their streams open), then the registry.
            await eventually(() => expect(out.split('\n').length).toBe(3), 30000, 10);
            const results = JSON.parse(out.split('\n')[1]) as ReaderResult[];
            expect(results).toHaveLength(20);
            expect(results.filter((r) => r.status !== 200 || r.received !== 100)).toEqual([]);
            expect(results.filter((r) => !r.inOrder || r.other.length > 0 || r.ended)).toEqual([]);
            await eventually(() => expect(registry.size).toBe(20), 10000, 10);
            const rssGrowth = rssPeak - rss0;
            expect(rssGrowth).toBeLessThan(64 * 1048576);
            expect(omemPeak).toBeLessThan(8 * 1048576);

            // What the slow client is sent last: event: error with its stable code.
            let tail = '';
            let slowBytes = 0;
            // The body ends (last chunk) or the connection closes.
            const slowEnded = new Promise<void>((resolve) => {
              slow.once('close', () => resolve());
              slow.on('data', (chunk: Buffer) => {
                slowBytes += chunk.length;
                tail = (tail + chunk.toString('latin1')).slice(-2000);
                if (tail.endsWith('\r\n0\r\n\r\n')) {
                  resolve();
                }
              });
            });
            slow.resume();
            await slowEnded;
            // The last event before the end of the body (chunked: `\r\n0\r\n\r\n`).
            expect(tail).toMatch(
              /\n\n(\r\n[0-9a-f]+\r\n)?event: error\ndata: \{"code":"SLOW_CONSUMER"\}\n\n(\r\n0\r\n\r\n)?$/,
            );
            const dropped =
              (await metric(t, 'redis_gateway_sse_events_total', ['result="dropped"'])) -
              droppedBefore;
            expect(dropped).toBeGreaterThanOrEqual(1);
            report(
              `S-5: 100 × 100 KB published in ${publishMs} ms; the non-reading client was closed ` +
                `(SLOW_CONSUMER) at ${slowClosedAt ?? '?'} ms after ${mb(slowBytes)} MB reached it; ` +
                `20 readers got 100/100 in order; RSS growth ${mb(rssGrowth)} MB (bound 64); ` +
                `subscriber omem peak ${mb(omemPeak)} MB (bound 8); dropped events +${dropped}`,
            );
          } finally {
            clearInterval(sampler);
            polling = false;
            await omem;
          }
        } finally {
          readers.kill('SIGKILL');
          slow.destroy();
        }
      });
    });
  }, 60000);

  it('S-7: 5,000 subscribe/disconnect cycles, a third aborted before the response head, leave nothing behind', async () => {
    await withRedisServer(async (server) => {
      const sse = { maxClients: 5000, maxClientsPerSubject: 5000 };
      await withApp(appOn(server.url, { sse }), async (t) => {
        const control = server.client();
        const registry = t.app.get(SseRegistry);
        const subscriptions = t.app.get(Subscriptions);
        const warnings: Error[] = [];
        const onWarning = (warning: Error) => warnings.push(warning);
        process.on('warning', onWarning);
        const loop = monitorEventLoopDelay({ resolution: 10 });
        const channels = ['churn:0', 'churn:1', 'churn:2', 'churn:3'];
        const heap0 = process.memoryUsage().heapUsed;
        // Answers by status; 0 counts the requests given up before any answer.
        const statuses: Record<number, number> = {};
        const url = new URL(t.baseUrl);
        const abort = (path: string, i: number) =>
          new Promise<void>((resolve) => {
            const socket = connect(Number(url.port), url.hostname);
            socket.on('error', () => undefined);
            socket.once('close', () => resolve());
            const request =
              `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n` +
              `Authorization: Bearer ${t.tokens.read}\r\n\r\n`;
            // Gone as soon as the request is sent, or a moment later (auth, SUBSCRIBE).
            socket.write(request, () =>
              i % 2 === 0 ? socket.destroy() : setTimeout(() => socket.destroy(), i % 7),
            );
          });
        const cycle = async (i: number) => {
          const path =
            i % 10 === 9 ? patternEvents('churn:*') : channelEvents(channels[i % channels.length]);
          if (i % 3 === 0) {
            await abort(path, i);
            statuses[0] = (statuses[0] ?? 0) + 1;
            return;
          }
          const client = await open(t, path, 10000);
          statuses[client.status] = (statuses[client.status] ?? 0) + 1;
          if (i % 4 === 0) {
            await sleep(i % 20);
          }
          client.close();
        };
        const started = performance.now();
        loop.enable();
        try {
          for (let wave = 0; wave < 20; wave++) {
            await Promise.all(Array.from({ length: 250 }, (_, i) => cycle(wave * 250 + i)));
          }
        } finally {
          loop.disable();
          process.off('warning', onWarning);
        }
        const churnMs = elapsed(started);
        const lastClose = performance.now();
        await eventually(
          async () => {
            expect(registry.size).toBe(0);
            expect(subscriptions.size).toBe(0);
            expect(
              await numsub(
                control,
                channels.map((c) => `${t.prefix}${c}`),
              ),
            ).toEqual([0, 0, 0, 0]);
            expect(await numpat(control)).toBe(0);
          },
          5000,
          10,
        );
        const cleanMs = elapsed(lastClose);
        expect(statuses[200]).toBe(5000 - Math.ceil(5000 / 3));
        expect(Object.keys(statuses).sort()).toEqual(['0', '200']);
        expect(cleanMs).toBeLessThanOrEqual(1000);
        expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
        // Still responsive, and still working.
        const tick = performance.now();
        await sleep(10);
        const tickMs = elapsed(tick);
        expect(tickMs).toBeLessThan(100);
        const client = await open(t, channelEvents('churn:0'));
        try {
          expect(await publish(t, 'churn:0', 'still here')).toBe(1);
          await client.until((c) => c.named('message').length === 1);
        } finally {
          client.close();
        }
        const heapMb = mb(process.memoryUsage().heapUsed - heap0);
        report(
          `S-7: 5000 cycles (1667 aborted right after the request) in ${churnMs} ms; ` +
            `registry, Subscriptions, NUMSUB, NUMPAT all 0 ${cleanMs} ms after the last close; ` +
            `no MaxListenersExceededWarning; event-loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(0)} ms, ` +
            `max ${(loop.max / 1e6).toFixed(0)} ms during churn; a 10 ms timer after it took ${tickMs} ms; ` +
            `heap ${heapMb} MB vs before (no forced GC)`,
        );
      });
    });
  }, 90000);

  it('S-13/R-18: SIGTERM ends 200 open streams with event: shutdown and EOF, then the process exits 0', async () => {
    await withRedisServer(async (server) => {
      const dir = mkdtempSync(join(tmpdir(), 's13-'));
      const configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, 'sse:\n  maxClientsPerSubject: 1000\n  heartbeatMs: 1000\n');
      const service = await ServiceProcess.start({
        REDIS_URL: server.url,
        REDIS_KEY_PREFIX: 's13:',
        OIDC_ISSUER: issuer.url,
        OIDC_AUDIENCE: issuer.audience,
        CONFIG_FILE: configFile,
        LOG_LEVEL: 'warn',
      });
      const clients: SseClient[] = [];
      try {
        await service.listening();
        const token = await issuer.token({});
        const headers = bearer(token);
        await eventually(async () =>
          expect((await fetch(`${service.baseUrl}/readyz`)).ok).toBe(true),
        );
        const paths = Array.from({ length: 200 }, (_, i) => {
          if (i < 160) {
            return channelEvents(`bye:${i % 8}`);
          }
          if (i < 180) {
            return patternEvents('bye:*');
          }
          return `/redis/streams/${encodeURIComponent(`tail:${i % 4}`)}/events`;
        });
        clients.push(
          ...(await Promise.all(
            paths.map((path) => SseClient.open(`${service.baseUrl}${path}`, { headers })),
          )),
        );
        expect(clients.map((c) => c.status)).toEqual(Array(200).fill(200));
        // Every stream is live: one message per channel, one entry per tailed stream.
        const post = (path: string, body: unknown) =>
          fetch(`${service.baseUrl}${path}`, {
            method: 'POST',
            headers: { ...headers, 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
        for (let i = 0; i < 8; i++) {
          expect(
            (await post(`/redis/pubsub/channels/bye:${i}/messages`, { message: 'hi' })).status,
          ).toBe(200);
        }
        for (let i = 0; i < 4; i++) {
          expect(
            (await post(`/redis/streams/tail:${i}/entries`, { fields: { n: '1' } })).status,
          ).toBe(201);
        }
        await Promise.all(
          clients.map((c, i) =>
            i < 180
              ? c.until((x) => x.named('message').length === (i < 160 ? 1 : 8))
              : c.until((x) => x.named('entry').length === 1),
          ),
        );

        const signalled = performance.now();
        service.child.kill('SIGTERM');
        let lastEof = 0;
        await Promise.all(
          clients.map(async (c) => {
            await c.until((x) => x.ended, 5000);
            lastEof = Math.max(lastEof, elapsed(signalled));
          }),
        );
        const { code, signal } = await service.exited;
        const exitMs = elapsed(signalled);
        expect({ code, signal }).toEqual({ code: 0, signal: null });
        expect(lastEof).toBeLessThanOrEqual(5000);
        expect(exitMs).toBeLessThanOrEqual(5000);
        for (const client of clients) {
          expect(client.named('shutdown')).toHaveLength(1);
          expect(client.events[client.events.length - 1].event).toBe('shutdown');
        }
        expect(service.stderr).not.toMatch(/Connection is closed|unhandled/i);
        expect(
          service.logLines().filter((l) => ['error', 'fatal'].includes(String(l.level))),
        ).toEqual([]);
        report(
          `S-13/R-18: SIGTERM with 200 streams (160 channel, 20 pattern, 20 stream tails): ` +
            `all got event: shutdown and EOF within ${lastEof} ms; exit 0 after ${exitMs} ms`,
        );
      } finally {
        clients.forEach((client) => client.close());
        await service.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }, 60000);

  it(
    `S-14: request, headers and keep-alive timeouts of 5 s never cut a stream (${S14_MS / 1000} s, heartbeat 1 s)`,
    async () => {
      const config = {
        server: { requestTimeoutMs: 5000, headersTimeoutMs: 5000, keepAliveTimeoutMs: 5000 },
        sse: { heartbeatMs: 1000 },
      };
      await withApp(appOn(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', config), async (t) => {
        const url = new URL(t.baseUrl);
        const socket = connect(Number(url.port), url.hostname);
        let text = '';
        let closedAt: number | undefined;
        const started = performance.now();
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('error', () => undefined);
        socket.on('close', () => (closedAt = elapsed(started)));
        try {
          // A plain request first, so the stream runs on a kept-alive connection whose
          // keep-alive timer was armed when that response finished.
          socket.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
          await eventually(() => expect(text).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n\{/));
          await sleep(1000);
          const streamStart = text.length;
          socket.write(
            `GET ${channelEvents('s14')} HTTP/1.1\r\nHost: ${url.host}\r\n` +
              `Accept: text/event-stream\r\nAuthorization: Bearer ${t.tokens.read}\r\n\r\n`,
          );
          await eventually(() => expect(text.slice(streamStart)).toMatch(/^HTTP\/1\.1 200 /));
          const opened = performance.now();
          await sleep(S14_MS);
          const stream = text.slice(streamStart);
          const pings = stream.split(': ping\n').length - 1;
          expect(closedAt).toBeUndefined();
          expect(pings).toBeGreaterThanOrEqual(Math.floor(S14_MS / 1000) - 2);
          expect(await publish(t, 's14', 'still open')).toBe(1);
          await eventually(() => expect(text).toContain('"message":"still open"'));
          report(
            `S-14: with request/headers/keep-alive timeouts of 5 s, a stream on a reused ` +
              `connection stayed open ${elapsed(opened)} ms with ${pings} heartbeats and still delivered`,
          );
        } finally {
          socket.destroy();
        }
      });
    },
    S14_MS + 20000,
  );

  it('S-9: 50 open streams survive a 3 s Redis outage with heartbeats; new subscriptions get 503 meanwhile', async () => {
    await withRedisServer(async (server) => {
      await withApp(
        appOn(server.url, { sse: { heartbeatMs: 500, maxClientsPerSubject: 100 } }),
        async (t) => {
          const channels = ['s9:0', 's9:1', 's9:2', 's9:3', 's9:4'];
          const clients = await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
              open(t, i < 40 ? channelEvents(channels[i % 5]) : patternEvents('s9:*')),
            ),
          );
          try {
            const deliver = async (round: number) => {
              for (const channel of channels) {
                expect(await publish(t, channel, `${channel}#${round}`)).toBe(2);
              }
              await Promise.all(
                clients.map((c, i) =>
                  c.until((x) => x.named('message').length === (i < 40 ? round : round * 5)),
                ),
              );
            };
            await deliver(1);

            await server.kill();
            const killed = performance.now();
            const pingsBefore = clients.map((c) => c.comments.length);
            await sleep(1000);
            const refusing = performance.now();
            const refused = await open(t, channelEvents('s9:new'));
            const refusedMs = elapsed(refusing);
            expect(refused.status).toBe(503);
            expect(refused.headers['retry-after']).toMatch(/^\d+$/);
            expect(JSON.parse(refused.body)).toMatchObject({
              status: 503,
              code: 'REDIS_UNAVAILABLE',
            });
            // A new client of a channel the instance already holds is answered from that.
            const joining = await open(t, channelEvents('s9:0'));
            const joiningStatus = joining.status;
            joining.close();
            await sleep(Math.max(0, 3000 - elapsed(killed)));
            const outagePings = clients.map((c, i) => c.comments.length - pingsBefore[i]);
            expect(Math.min(...outagePings)).toBeGreaterThanOrEqual(4);
            expectOpen(clients);
            expect(clients.every((c) => c.named('reconnected').length === 0)).toBe(true);

            await server.launch();
            const launched = performance.now();
            const downMs = Math.round(launched - killed);
            await Promise.all(
              clients.map((c) => c.until((x) => x.named('reconnected').length === 1)),
            );
            const reconnectedMs = elapsed(launched);
            await ready(t);
            await deliver(2);
            const resumedMs = elapsed(launched);
            expectOpen(clients);
            for (const [i, client] of clients.entries()) {
              // reconnected comes before anything published after the outage.
              const names = client.events.map((e) => e.event);
              expect(names.indexOf('reconnected')).toBe(i < 40 ? 1 : 5);
            }
            report(
              `S-9: Redis down ${downMs} ms: 50 streams kept their heartbeats ` +
                `(≥ ${Math.min(...outagePings)} each), new channel → 503 REDIS_UNAVAILABLE in ${refusedMs} ms ` +
                `(a new client of a held channel: ${joiningStatus}); event: reconnected ${reconnectedMs} ms ` +
                `after Redis was back, delivery resumed by ${resumedMs} ms`,
            );
          } finally {
            clients.forEach((client) => client.close());
          }
        },
      );
    });
  }, 30000);
});

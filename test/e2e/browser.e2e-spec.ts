import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TestApp } from '../support/app';
import { PAGE_HTML } from '../support/browser-page';
import { eventually } from '../support/ports';

/**
 * A real browser on another origin (README.md, "Browsers"): Debian's Chromium, headless, loads
 * a page from a second origin that fetches tickets (a CORS preflight, then a POST), follows a
 * pub/sub channel and a stream tail with EventSource, and after the gateway cuts every
 * connection resumes with fresh tickets, the tail with `from=` its last entry id, losing no
 * entry. A page on an origin not in server.cors.origins is blocked by the browser itself.
 * .ci/run installs chromium; without /usr/bin/chromium the suite is skipped, saying so.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(
    `browser.e2e-spec.ts skipped: ${CHROMIUM} is absent (apt-get install chromium; .ci/run does)`,
  );
}

interface Seen {
  channel: string[];
  entries: { id: string; lastEventId: string; n: string }[];
  opens: { channel: number; stream: number };
  drops: { channel: number; stream: number };
  tickets: { status: number; requestId: string | null; path: string }[];
  urls: string[];
  errors: string[];
  other: string[];
}

/** A tiny web server for the page, on its own port: another origin than the gateway's. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

(haveChromium ? describe : describe.skip)('a browser page on another origin (Chromium)', () => {
  let t: TestApp;
  let browser: Browser;
  let allowed: { server: Server; origin: string };
  let stranger: { server: Server; origin: string };
  let page: Page;

  beforeAll(async () => {
    [allowed, stranger] = await Promise.all([pageServer(), pageServer()]);
    t = await TestApp.create({
      listen: true,
      config: {
        server: { cors: { origins: [allowed.origin] } },
        sse: { maxClientsPerSubject: 20 },
        quotas: { blockingPerSubject: 10 },
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 30000,
    });
  }, 60000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await Promise.all([allowed, stranger].filter(Boolean).map(({ server }) => closeServer(server)));
  });

  beforeEach(async () => {
    page = await browser.newPage();
    page.setDefaultTimeout(10000);
  });

  afterEach(async () => {
    await page.close();
  });

  const seen = () => page.evaluate(() => (window as unknown as { seen: Seen }).seen);
  const until = (check: (s: Seen) => boolean, what: string, timeoutMs = 10000) =>
    eventually(async () => {
      const state = await seen();
      if (!check(state)) {
        throw new Error(`not yet ${what}: ${JSON.stringify(state)}`);
      }
      return state;
    }, timeoutMs);

  const addEntry = async (stream: string, n: number) => {
    const response = await t.call('POST', `/redis/streams/${stream}/entries`, {
      token: t.tokens.write,
      body: { fields: { n: String(n) } },
    });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  };
  /** Publishes until Redis counts a subscriber (the page's stream is subscribed by then). */
  const publish = (channel: string, message: string) =>
    eventually(async () => {
      const response = await t.call('POST', `/redis/pubsub/channels/${channel}/messages`, {
        token: t.tokens.write,
        body: { message },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json<{ receivers: number }>().receivers).toBeGreaterThanOrEqual(1);
    });

  it('fetches tickets, receives on a channel and a stream tail, and resumes after a drop losing no entry', async () => {
    await page.goto(`${allowed.origin}/`);
    const channel = 'browser:news';
    const stream = 'browser:orders';
    await page.evaluate(
      (options) => (window as unknown as { start: (o: unknown) => void }).start(options),
      { base: t.baseUrl, token: t.tokens.read, channel, stream },
    );
    await until((s) => s.opens.channel === 1 && s.opens.stream === 1, 'both streams open');

    const ids = [await addEntry(stream, 1), await addEntry(stream, 2), await addEntry(stream, 3)];
    await publish(channel, 'm1');
    await until((s) => s.entries.length === 3 && s.channel.length === 1, 'the first events');

    // The gateway cuts every connection; the page must not come back until entries were added.
    await page.evaluate(() => ((window as unknown as { hold: boolean }).hold = true));
    t.app.getHttpServer().closeAllConnections();
    await until((s) => s.drops.channel >= 1 && s.drops.stream >= 1, 'both streams dropped');
    for (const n of [4, 5, 6]) {
      ids.push(await addEntry(stream, n));
    }
    await page.evaluate(() => ((window as unknown as { hold: boolean }).hold = false));
    await until((s) => s.opens.channel === 2 && s.opens.stream === 2, 'both streams reopened');
    await publish(channel, 'm2');
    const state = await until(
      (s) => s.entries.length === 6 && s.channel.length === 2,
      'every event after the resume',
    );

    expect(state.entries.map((entry) => entry.n)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(state.entries.map((entry) => entry.id)).toEqual(ids);
    expect(state.entries.every((entry) => entry.id === entry.lastEventId)).toBe(true);
    expect(state.channel).toEqual(['m1', 'm2']);
    expect(state.other).toEqual([]);
    expect(state.errors).toEqual([]);
    // Four tickets (two streams, opened twice), each answer readable with its X-Request-Id.
    expect(state.tickets.map((ticket) => ticket.status)).toEqual([200, 200, 200, 200]);
    expect(state.tickets.every((ticket) => /^[\w.:-]+$/.test(ticket.requestId ?? ''))).toBe(true);
    // The tail resumed right after the last entry it had seen.
    const tails = state.urls.filter((url) => url.includes('/redis/streams/'));
    expect(tails).toEqual([
      `${t.baseUrl}/redis/streams/browser%3Aorders/events?ticket=<ticket>&from=0`,
      `${t.baseUrl}/redis/streams/browser%3Aorders/events?ticket=<ticket>&from=${encodeURIComponent(ids[2])}`,
    ]);
  }, 60000);

  it('reads a refusal on the allowed origin; a page on another origin is blocked by the browser', async () => {
    const probe = (url: string, token?: string) =>
      page.evaluate(
        ([target, bearer]) =>
          (
            window as unknown as {
              probe: (u: string, tk?: string) => Promise<Record<string, unknown>>;
            }
          ).probe(target, bearer),
        [url, token] as const,
      );
    await page.goto(`${allowed.origin}/`);
    const kv = `${t.baseUrl}/redis/kv/browser%3Anothing`;
    expect(await probe(kv)).toMatchObject({ status: 401, code: 'INVALID_TOKEN' });
    expect(await probe(kv, t.tokens.write)).toMatchObject({
      status: 403,
      code: 'INSUFFICIENT_SCOPE',
    });
    expect(await probe(kv, t.tokens.read)).toMatchObject({ status: 404, code: 'NOT_FOUND' });

    await page.goto(`${stranger.origin}/`);
    const blocked = await probe(kv, t.tokens.read);
    expect(blocked).toEqual({ blocked: expect.stringMatching(/^TypeError: Failed to fetch/) });
  });
});

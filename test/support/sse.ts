import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** The Authorization header that carries a bearer token. */
export const bearer = (token: string): { authorization: string } => ({
  authorization: `Bearer ${token}`,
});

/** The SSE path of a pub/sub channel. */
export const channelEvents = (channel: string): string =>
  `/redis/pubsub/channels/${encodeURIComponent(channel)}/events`;

/** The SSE path of a pub/sub pattern subscription. */
export const patternEvents = (pattern: string): string =>
  `/redis/pubsub/patterns/${encodeURIComponent(pattern)}/events`;

/** The SSE path of a stream tail. */
export const streamEvents = (key: string): string =>
  `/redis/streams/${encodeURIComponent(key)}/events`;

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

export interface SseOptions {
  headers?: Record<string, string>;
  /** How long to wait for the response head. */
  timeoutMs?: number;
}

/**
 * A test client for Server-Sent Events over a plain HTTP request, parsed by an independent
 * implementation of the SSE grammar (eventsource-parser). It records every event and comment.
 */
export class SseClient {
  readonly events: SseMessage[] = [];
  readonly comments: { text: string; at: number }[] = [];
  /** The raw body text received so far (for framing checks). */
  raw = '';
  ended = false;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    private readonly req: ClientRequest,
    readonly body: string,
  ) {}

  /** Opens a stream; a non-200 answer resolves too, with its body in `body`. */
  static open(url: string, options: SseOptions = {}): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...options.headers } });
      const timer = setTimeout(
        () => req.destroy(new Error('no response head in time')),
        options.timeoutMs ?? 5000,
      );
      req.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            const refused = new SseClient(res.statusCode ?? 0, res.headers, req, body);
            refused.ended = true;
            resolve(refused);
          });
          return;
        }
        const client = new SseClient(200, res.headers, req, '');
        const parser = createParser({
          onEvent: (message: EventSourceMessage) => {
            client.events.push({
              event: message.event ?? 'message',
              data: message.data,
              ...(message.id === undefined ? {} : { id: message.id }),
            });
            client.notify();
          },
          onComment: (text) => {
            client.comments.push({ text, at: Date.now() });
            client.notify();
          },
        });
        res.on('data', (chunk: string) => {
          client.raw += chunk;
          parser.feed(chunk);
        });
        const end = () => {
          client.ended = true;
          client.notify();
        };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
        resolve(client);
      });
      req.end();
    });
  }

  /** Events of one type, in order. */
  named(event: string): SseMessage[] {
    return this.events.filter((message) => message.event === event);
  }

  /** Waits until `predicate` holds (checked on every event), or fails after `timeoutMs`. */
  async until(predicate: (client: SseClient) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `SSE condition not met in ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-5))}, ended: ${this.ended}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Drops the connection (as a browser tab closing would). */
  close(): void {
    this.req.destroy();
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter();
    }
  }
}

/**
 * The head of an SSE answer: 200 text/event-stream, with the headers that keep proxies from
 * buffering or compressing it (S-2) even when the client offers compression.
 */
export function expectStreamHeaders(client: SseClient): void {
  expect(client.status).toBe(200);
  expect(client.headers['content-type']).toMatch(/^text\/event-stream/);
  expect(client.headers['cache-control']).toMatch(/no-cache/);
  expect(client.headers['cache-control']).toMatch(/no-transform/);
  expect(client.headers['x-accel-buffering']).toBe('no');
  expect(client.headers['content-encoding']).toBeUndefined();
  expect(client.headers['content-length']).toBeUndefined();
  expect(client.headers['x-request-id']).toBeDefined();
}

import type { ServerResponse } from 'node:http';
import type { SseKind } from '../observability/gateway-metrics';

/** One Server-Sent Event. `data` may hold any text: every line of it is framed on its own. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  /** The framed text, kept once made: one event fanned out to many streams is framed once. */
  wire?: string;
}

/** The stable codes an `event: error` carries (never Redis's text or a stack). */
export type SseErrorCode = 'SLOW_CONSUMER' | 'REDIS_UNAVAILABLE' | 'WRONG_TYPE' | 'INTERNAL';

/** Why a stream ended, as the last event it sends. */
export type SseEnd = 'shutdown' | 'expired' | { error: SseErrorCode };

// The only characters that end a line in the SSE grammar (WHATWG HTML §9.2).
const LINE_BREAK = /\r\n|\r|\n/;
// An id with NUL, CR or LF would be ignored by the client or break the frame.
const NOT_IN_ID = /[\0\r\n]/g;
// Every CR and LF of an event name (LINE_BREAK without `g` would replace only the first).
const NOT_IN_EVENT = /[\r\n]/g;

/** The wire form of one event: framing cannot be broken by any content of `data` (S-1). */
export function frame({ event, data, id }: SseEvent): string {
  let text = id === undefined ? '' : `id: ${id.replace(NOT_IN_ID, '')}\n`;
  text += `event: ${event.replace(NOT_IN_EVENT, '')}\n`;
  for (const line of data.split(LINE_BREAK)) {
    text += `data: ${line}\n`;
  }
  return `${text}\n`;
}

export interface SseStreamOptions {
  kind: SseKind;
  subject: string;
  maxBufferBytes: number;
  /** Called once when the stream has ended, for whatever reason. */
  onClose: (stream: SseStream) => void;
  /** Called for every event written, with whether it was delivered or dropped. */
  onEvent: (kind: SseKind, result: 'delivered' | 'dropped') => void;
}

/** How long a stream that was ended may take to flush its last event before it is cut. */
const END_FLUSH_MS = 5000;

/**
 * One open SSE response, written straight to the socket. Its unsent bytes are bounded: a client
 * that reads slower than its events arrive is sent `event: error` (SLOW_CONSUMER) and closed,
 * so one slow reader can neither hold memory nor hold back the others.
 */
export class SseStream {
  private ended = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly response: ServerResponse,
    readonly options: SseStreamOptions,
  ) {
    if (response.destroyed) {
      // The client left while the stream was being set up: its 'close' has fired already. End
      // it once the caller has registered it, or it would hold its place and subscription forever.
      queueMicrotask(() => this.closed());
    } else {
      response.once('close', () => this.closed());
    }
  }

  get kind(): SseKind {
    return this.options.kind;
  }

  get subject(): string {
    return this.options.subject;
  }

  /** Whether events can still be written. */
  get open(): boolean {
    return !this.ended && !this.response.destroyed;
  }

  /** Unsent bytes held for this client. */
  get unsentBytes(): number {
    return this.response.writableLength;
  }

  /** Runs `cleanup` once when the stream ends (the client left, or the stream was ended). */
  onEnd(cleanup: () => void): void {
    if (this.ended) {
      cleanup();
    } else {
      this.cleanups.push(cleanup);
    }
  }

  /**
   * Writes an event; false when it was not written. A client whose unsent bytes are already
   * over the bound is told (SLOW_CONSUMER) and closed instead, so it holds at most the bound
   * plus one event, and an event larger than the bound still reaches a client that keeps up.
   */
  send(event: SseEvent): boolean {
    if (this.open && this.response.writableLength > this.options.maxBufferBytes) {
      this.end({ error: 'SLOW_CONSUMER' });
    }
    if (!this.open) {
      this.options.onEvent(this.kind, 'dropped');
      return false;
    }
    event.wire ??= frame(event);
    this.response.write(event.wire);
    this.options.onEvent(this.kind, 'delivered');
    return true;
  }

  /** A comment line (`: text`): keeps proxies and idle timers from closing the stream. */
  comment(text: string): void {
    if (this.open) {
      this.response.write(`: ${text}\n\n`);
    }
  }

  /** Resolves when the client has taken the bytes held for it (or the stream has ended). */
  drained(): Promise<void> {
    if (!this.open || !this.response.writableNeedDrain) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.once('drain', done);
      this.response.once('close', done);
    });
  }

  /** Sends the reason as the last event and ends the response. */
  end(reason: SseEnd): void {
    if (!this.open) {
      return;
    }
    const event =
      typeof reason === 'string'
        ? { event: reason, data: JSON.stringify({ reason }) }
        : { event: 'error', data: JSON.stringify({ code: reason.error }) };
    this.response.end(frame(event));
    this.finish();
    // A client that does not read cannot take even the last event; do not wait for it forever.
    const cut = setTimeout(() => this.response.destroy(), END_FLUSH_MS);
    cut.unref();
    this.response.once('close', () => clearTimeout(cut));
  }

  private closed(): void {
    this.finish();
  }

  private finish(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    for (const cleanup of this.cleanups.splice(0)) {
      cleanup();
    }
    this.options.onClose(this);
  }
}

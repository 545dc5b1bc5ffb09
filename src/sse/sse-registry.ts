import type { OutgoingHttpHeaders } from 'node:http';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { GatewayMetrics, type SseKind } from '../observability/gateway-metrics';
import { recordRequest } from '../observability/http-observability';
import { REQUEST_LOGGER } from '../observability/logging.module';
import { SseStream } from './sse-stream';

/** How long a browser's EventSource waits before it reconnects by itself. */
const RECONNECT_MS = 2000;

/**
 * Every open Server-Sent Events stream of this instance, of every kind: it enforces
 * `sse.maxClients` (503) and `sse.maxClientsPerSubject` (429) before a stream opens, writes the
 * heartbeat comments, ends each stream at its token's expiry (`event: expired`) or its maximum
 * lifetime, and ends them all with `event: shutdown` when the application closes.
 */
@Injectable()
export class SseRegistry implements OnModuleDestroy {
  private readonly streams = new Set<SseStream>();
  private readonly perSubject = new Map<string, number>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: GatewayMetrics,
    @Inject(REQUEST_LOGGER) private readonly logger: Logger,
  ) {
    this.heartbeat = setInterval(() => this.ping(), config.sse.heartbeatMs);
    this.heartbeat.unref();
    for (const kind of ['channel', 'pattern', 'stream'] as const) {
      metrics.sseClients.inc({ kind }, 0);
    }
  }

  /** Open streams, all kinds together. */
  get size(): number {
    return this.streams.size;
  }

  /**
   * Refuses with 503 or 429 when a limit is reached; call it before any work that a refused
   * stream would waste, then `open` without awaiting in between.
   */
  admit(principal: Principal): void {
    const { maxClients, maxClientsPerSubject } = this.config.sse;
    if (this.streams.size >= maxClients) {
      throw new AppError(
        'TOO_MANY_STREAMS',
        `This instance holds its maximum of ${maxClients} streams (sse.maxClients).`,
      );
    }
    if ((this.perSubject.get(principal.sub) ?? 0) >= maxClientsPerSubject) {
      throw new AppError(
        'TOO_MANY_SUBJECT_STREAMS',
        `This subject holds its maximum of ${maxClientsPerSubject} streams (sse.maxClientsPerSubject).`,
      );
    }
  }

  /**
   * Takes the response over from Fastify and starts the event stream: status 200 and headers
   * that keep proxies from buffering or compressing it (S-2). The limits are checked again.
   */
  open(reply: FastifyReply, principal: Principal, kind: SseKind): SseStream {
    this.admit(principal);
    const response = reply.raw;
    reply.hijack();
    response.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store, no-transform',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    response.socket?.setNoDelay(true);
    response.socket?.setTimeout(0);
    response.write(`retry: ${RECONNECT_MS}\n\n`);
    const stream = new SseStream(response, {
      kind,
      subject: principal.sub,
      maxBufferBytes: this.config.sse.maxBufferBytes,
      onClose: (closed) => this.remove(closed),
      onEvent: (eventKind, result) => this.metrics.sseEvents.inc({ kind: eventKind, result }),
    });
    this.streams.add(stream);
    this.perSubject.set(principal.sub, (this.perSubject.get(principal.sub) ?? 0) + 1);
    this.metrics.sseClients.inc({ kind });
    const lifetime = Math.min(principal.exp * 1000 - Date.now(), this.config.sse.maxLifetimeMs);
    const expiry = setTimeout(() => stream.end('expired'), Math.max(lifetime, 0));
    expiry.unref();
    stream.onEnd(() => clearTimeout(expiry));
    // Fastify's onResponse skips a response taken over: log and count the stream when it ends.
    response.once('close', () =>
      recordRequest(this.logger, this.metrics, reply.request, reply, 200),
    );
    return stream;
  }

  onModuleDestroy(): void {
    clearInterval(this.heartbeat);
    for (const stream of [...this.streams]) {
      stream.end('shutdown');
    }
  }

  private ping(): void {
    for (const stream of this.streams) {
      stream.comment('ping');
    }
  }

  private remove(stream: SseStream): void {
    if (!this.streams.delete(stream)) {
      return;
    }
    const count = (this.perSubject.get(stream.subject) ?? 1) - 1;
    if (count > 0) {
      this.perSubject.set(stream.subject, count);
    } else {
      this.perSubject.delete(stream.subject);
    }
    this.metrics.sseClients.dec({ kind: stream.kind });
  }
}

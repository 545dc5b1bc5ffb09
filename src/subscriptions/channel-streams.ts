import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { SseRegistry } from '../sse/sse-registry';
import type { SseEvent, SseStream } from '../sse/sse-stream';
import {
  Subscriptions,
  type Delivery,
  type Listener,
  type SubscriptionKind,
} from './subscriptions';

/** How one protocol writes a subscription's messages to its stream. */
export interface MessageFormat {
  /** Names the format: listeners of one message with the same id share one event. */
  readonly id: string;
  /** The event of one message; `channel` is the name the caller sees (no key prefix). */
  event(channel: string, message: Buffer): SseEvent;
  /** Sent first, once Redis has confirmed the subscription (if the protocol has such an event). */
  opened?(): SseEvent;
}

/** One SSE client's subscription: formats each message for its stream, once per message. */
class StreamListener implements Listener {
  private stream: SseStream | undefined;
  /** Messages that arrived between Redis's confirmation and the stream's opening. */
  private early: Delivery[] = [];

  constructor(
    private readonly principal: Principal,
    private readonly access: KeyAccess,
    private readonly format: MessageFormat,
  ) {}

  attach(stream: SseStream): void {
    this.stream = stream;
    const opened = this.format.opened?.();
    if (opened) {
      stream.send(opened);
    }
    for (const delivery of this.early.splice(0)) {
      this.message(delivery);
    }
  }

  message(delivery: Delivery): void {
    if (!this.stream) {
      this.early.push(delivery);
      return;
    }
    // A pattern may match channels the token may not see (or the gateway's own): skip those.
    const channel = this.access.visibleName(this.principal, delivery.channel);
    if (channel === null) {
      return;
    }
    delivery.events ??= new Map();
    let event = delivery.events.get(this.format.id);
    if (!event) {
      event = this.format.event(channel, delivery.message);
      delivery.events.set(this.format.id, event);
    }
    this.stream.send(event);
  }

  reconnected(): void {
    this.stream?.send({
      event: 'reconnected',
      data: JSON.stringify({ reason: 'Redis reconnected; messages may have been missed' }),
    });
  }
}

/**
 * SSE subscriptions to a channel or a glob pattern over the instance's one subscriber
 * connection (Subscriptions), under the SSE limits, whatever protocol frames the messages: the
 * pub/sub routes and the Upstash-compatible endpoint share it.
 */
@Injectable()
export class ChannelStreams {
  constructor(
    private readonly access: KeyAccess,
    private readonly registry: SseRegistry,
    private readonly subscriptions: Subscriptions,
  ) {}

  /**
   * Subscribes (confirmed by Redis) and then opens the SSE stream, so a message published after
   * the client saw 200 reaches it. Authorisation and the limits come first: a refused request
   * gets its status before any stream byte (S-11).
   */
  async open(
    principal: Principal,
    kind: SubscriptionKind,
    name: string,
    format: MessageFormat,
    reply: FastifyReply,
  ): Promise<void> {
    const redisName =
      kind === 'channel'
        ? this.access.redisKey(principal, name, 'channel')
        : this.access.redisPattern(principal, name);
    this.registry.admit(principal);
    const listener = new StreamListener(principal, this.access, format);
    await this.subscriptions.add(kind, redisName, listener);
    let stream: SseStream;
    try {
      stream = this.registry.open(reply, principal, kind);
    } catch (error) {
      this.subscriptions.remove(kind, redisName, listener);
      throw error;
    }
    stream.onEnd(() => this.subscriptions.remove(kind, redisName, listener));
    listener.attach(stream);
  }
}

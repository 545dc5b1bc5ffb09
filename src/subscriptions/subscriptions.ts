import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { RedisConnections } from '../redis/connections';
import { translateRedisError } from '../redis/redis-errors';
import type { RedisClient } from '../redis/types';
import type { SseEvent } from '../sse/sse-stream';

export type SubscriptionKind = 'channel' | 'pattern';

/** One message as Redis delivered it: the Redis channel (with the key prefix) and the payload. */
export interface Delivery {
  channel: string;
  message: Buffer;
  /** Events made from it so far, by format: every listener with the same format shares one. */
  events?: Map<string, SseEvent>;
}

export interface Listener {
  /** A message on the subscribed channel, or on a channel matching the subscribed pattern. */
  message(delivery: Delivery): void;
  /** The subscriber connection was lost and is subscribed again: messages may be missing. */
  reconnected(): void;
}

/**
 * The fan-out registry over the instance's one subscriber connection: SUBSCRIBE (or
 * PSUBSCRIBE) when the first listener of a channel arrives, UNSUBSCRIBE after the last one left,
 * so Redis sees one connection and each channel once however many SSE clients listen. After a
 * reconnect it subscribes everything again and tells every listener (`event: reconnected`).
 * The connection itself, and its health check, belong to RedisConnections.
 */
@Injectable()
export class Subscriptions implements OnModuleInit {
  private readonly logger = new Logger(Subscriptions.name);
  private readonly listeners: Record<SubscriptionKind, Map<string, Set<Listener>>> = {
    channel: new Map(),
    pattern: new Map(),
  };
  /** SUBSCRIBE commands in flight, so a second listener waits for the same one. */
  private readonly pending: Record<SubscriptionKind, Map<string, Promise<unknown>>> = {
    channel: new Map(),
    pattern: new Map(),
  };
  private readonly client: RedisClient;
  private wasReady = false;

  constructor(connections: RedisConnections) {
    this.client = connections.subscriber;
  }

  onModuleInit(): void {
    this.client.on('messageBuffer', (channel: Buffer, message: Buffer) =>
      this.deliver('channel', channel.toString(), { channel: channel.toString(), message }),
    );
    this.client.on('pmessageBuffer', (pattern: Buffer, channel: Buffer, message: Buffer) =>
      this.deliver('pattern', pattern.toString(), { channel: channel.toString(), message }),
    );
    this.client.on('ready', () => void this.restore());
  }

  /** Distinct channels and patterns subscribed now. */
  get size(): number {
    return this.listeners.channel.size + this.listeners.pattern.size;
  }

  /**
   * Adds a listener; resolves once Redis has confirmed the subscription, so a message published
   * after that reaches it. Rejects with 503 while the subscriber connection is down.
   */
  async add(kind: SubscriptionKind, name: string, listener: Listener): Promise<void> {
    const map = this.listeners[kind];
    let set = map.get(name);
    if (!set) {
      set = new Set();
      map.set(name, set);
    }
    set.add(listener);
    let subscribing = this.pending[kind].get(name);
    if (!subscribing) {
      if (set.size > 1) {
        return;
      }
      subscribing = this.command(kind, 'subscribe', name).finally(() =>
        this.pending[kind].delete(name),
      );
      this.pending[kind].set(name, subscribing);
    }
    try {
      await subscribing;
    } catch (error) {
      this.remove(kind, name, listener);
      throw translateRedisError(error, 'read');
    }
  }

  remove(kind: SubscriptionKind, name: string, listener: Listener): void {
    const set = this.listeners[kind].get(name);
    if (!set?.delete(listener) || set.size > 0) {
      return;
    }
    this.listeners[kind].delete(name);
    // Redis runs one connection's commands in order: a SUBSCRIBE sent after this one wins.
    this.command(kind, 'unsubscribe', name).catch(() => undefined);
  }

  private command(
    kind: SubscriptionKind,
    action: 'subscribe' | 'unsubscribe',
    name: string,
  ): Promise<unknown> {
    if (this.client.status !== 'ready') {
      return Promise.reject(new Error('Connection is closed.'));
    }
    if (kind === 'channel') {
      return action === 'subscribe' ? this.client.subscribe(name) : this.client.unsubscribe(name);
    }
    return action === 'subscribe' ? this.client.psubscribe(name) : this.client.punsubscribe(name);
  }

  private deliver(kind: SubscriptionKind, name: string, delivery: Delivery): void {
    const set = this.listeners[kind].get(name);
    if (!set) {
      return;
    }
    for (const listener of set) {
      listener.message(delivery);
    }
  }

  /** After a reconnect: subscribe everything again, then tell every listener. */
  private async restore(): Promise<void> {
    if (!this.wasReady) {
      this.wasReady = true;
      return;
    }
    const channels = [...this.listeners.channel.keys()];
    const patterns = [...this.listeners.pattern.keys()];
    try {
      await Promise.all([
        channels.length > 0 ? this.client.subscribe(...channels) : undefined,
        patterns.length > 0 ? this.client.psubscribe(...patterns) : undefined,
      ]);
    } catch (error) {
      this.logger.warn({ reason: (error as Error).message }, 'Resubscribing failed; reconnecting');
      this.client.disconnect(true);
      return;
    }
    this.logger.log({ channels: channels.length, patterns: patterns.length }, 'Resubscribed');
    for (const map of [this.listeners.channel, this.listeners.pattern]) {
      for (const set of map.values()) {
        for (const listener of set) {
          listener.reconnected();
        }
      }
    }
  }
}

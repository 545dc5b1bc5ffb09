import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { utf8OrNull, ValueCodec, type Encoding } from '../common/value-codec';
import { SlotRouter } from '../redis/cluster';
import { RedisExecutor } from '../redis/executor';
import { SseRegistry } from '../sse/sse-registry';
import type { SseEvent, SseStream } from '../sse/sse-stream';
import type { PublishDto, PublishedDto } from './dto/pubsub.dto';
import {
  Subscriptions,
  type Delivery,
  type Listener,
  type SubscriptionKind,
} from './subscriptions';

/** One SSE client's subscription: formats each message for its stream, once per message. */
class StreamListener implements Listener {
  stream: SseStream | undefined;
  /** Messages that arrived between Redis's confirmation and the stream's opening. */
  private early: Delivery[] = [];
  /** What the event of a message depends on besides the message. */
  private readonly format: string;

  constructor(
    private readonly principal: Principal,
    private readonly access: KeyAccess,
    private readonly encoding: Encoding,
    private readonly pattern: string | undefined,
  ) {
    this.format = `${encoding}\0${pattern ?? ''}`;
  }

  attach(stream: SseStream): void {
    this.stream = stream;
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
    let event = delivery.events.get(this.format);
    if (!event) {
      event = this.event(channel, delivery.message);
      delivery.events.set(this.format, event);
    }
    this.stream.send(event);
  }

  reconnected(): void {
    this.stream?.send({
      event: 'reconnected',
      data: JSON.stringify({ reason: 'Redis reconnected; messages may have been missed' }),
    });
  }

  /** `data: {channel, message, pattern?}`; a payload that is not UTF-8 comes in base64. */
  private event(channel: string, message: Buffer): SseEvent {
    const pattern = this.pattern === undefined ? {} : { pattern: this.pattern };
    const text = this.encoding === 'utf8' ? utf8OrNull(message) : null;
    if (text !== null) {
      return { event: 'message', data: JSON.stringify({ channel, message: text, ...pattern }) };
    }
    const data = { channel, message: message.toString('base64'), ...pattern, encoding: 'base64' };
    return { event: 'message', data: JSON.stringify(data) };
  }
}

/** Pub/sub: publish, and SSE subscriptions to a channel or a glob pattern. */
@Injectable()
export class PubSubService {
  constructor(
    private readonly redis: RedisExecutor,
    private readonly router: SlotRouter,
    private readonly access: KeyAccess,
    private readonly codec: ValueCodec,
    private readonly registry: SseRegistry,
    private readonly subscriptions: Subscriptions,
  ) {}

  async publish(principal: Principal, name: string, body: PublishDto): Promise<PublishedDto> {
    const channel = this.access.redisKey(principal, name, 'channel');
    const bytes = this.codec.decode(body.message, body.encoding, 'message');
    // In a cluster every publisher sends a channel's messages through the same node (its
    // slot's master): the bus forwards them in order from there, so all subscribers, on every
    // node, see one order, as with one server.
    const receivers = await this.redis.run('pubsub.publish', 'write', (client) =>
      this.router.nodeOf(client, channel).publish(channel, bytes),
    );
    return { channel: name, receivers };
  }

  /**
   * Subscribes (confirmed by Redis) and then opens the SSE stream, so a message published after
   * the client saw 200 reaches it. Authorisation and the limits come first: a refused request
   * gets its status before any stream byte (S-11).
   */
  async subscribe(
    principal: Principal,
    kind: SubscriptionKind,
    name: string,
    encoding: Encoding | undefined,
    reply: FastifyReply,
  ): Promise<void> {
    const redisName =
      kind === 'channel'
        ? this.access.redisKey(principal, name, 'channel')
        : this.access.redisPattern(principal, name);
    this.registry.admit(principal);
    const listener = new StreamListener(
      principal,
      this.access,
      encoding ?? 'utf8',
      kind === 'pattern' ? name : undefined,
    );
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

import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { escapeGlob, globCostProblem } from '../auth/glob';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { ValueCodec, type Encoding } from '../common/value-codec';
import { AppError } from '../errors/app-error';
import { Keyspace, RESERVED_NAMESPACE } from '../redis/keys';
import { RedisManager } from '../redis/redis-manager';
import { SseRegistry } from '../sse/sse-registry';
import type { SseEvent, SseStream } from '../sse/sse-stream';
import type { PublishDto, PublishedDto } from './dto/pubsub.dto';
import {
  Subscriptions,
  type Delivery,
  type Listener,
  type SubscriptionKind,
} from './subscriptions';

// ignoreBOM: a message that starts with U+FEFF keeps it (the default would drop it silently).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Glob metacharacters of Redis patterns (PSUBSCRIBE), and the escape.
const GLOB_META = /[*?[\\]/;

/**
 * Whether every channel `pattern` can match is one the grant allows: the pattern equals a
 * granted pattern, or a granted pattern is `<literal>*` and the pattern starts with that literal
 * text (so whatever follows, its channels start with it too). A pattern may never widen the
 * grant (RELIABILITY.md S-11); anything this cannot prove is refused.
 */
export function patternWithinGrant(pattern: string, grant: readonly string[] | null): boolean {
  if (grant === null) {
    return true;
  }
  return grant.some((granted) => {
    if (granted === pattern) {
      return true;
    }
    const literal = granted.slice(0, -1);
    return granted.endsWith('*') && !GLOB_META.test(literal) && pattern.startsWith(literal);
  });
}

/** One SSE client's subscription: formats each message for its stream, once per message. */
class StreamListener implements Listener {
  stream: SseStream | undefined;
  /** Messages that arrived between Redis's confirmation and the stream's opening. */
  private early: Delivery[] = [];
  /** What the event of a message depends on besides the message. */
  private readonly format: string;

  constructor(
    private readonly principal: Principal,
    private readonly keyspace: Keyspace,
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
    const channel = this.keyspace.visibleName(this.principal, delivery.channel);
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
    if (this.encoding === 'utf8') {
      try {
        const text = strictUtf8.decode(message);
        return { event: 'message', data: JSON.stringify({ channel, message: text, ...pattern }) };
      } catch {
        // Not text: falls through to base64, marked as such.
      }
    }
    const data = { channel, message: message.toString('base64'), ...pattern, encoding: 'base64' };
    return { event: 'message', data: JSON.stringify(data) };
  }
}

/** Pub/sub of API.md: publish, and SSE subscriptions to a channel or a glob pattern. */
@Injectable()
export class PubSubService {
  private readonly codec: ValueCodec;

  constructor(
    private readonly redis: RedisManager,
    private readonly keyspace: Keyspace,
    private readonly registry: SseRegistry,
    private readonly subscriptions: Subscriptions,
    private readonly config: AppConfig,
  ) {
    this.codec = new ValueCodec(config.limits.maxValueBytes);
  }

  async publish(principal: Principal, name: string, body: PublishDto): Promise<PublishedDto> {
    const channel = this.keyspace.key(principal, name, 'channel');
    const bytes = this.codec.decode(body.message, body.encoding, 'message');
    // In a cluster every publisher sends a channel's messages through the same node (its
    // slot's master): the bus forwards them in order from there, so all subscribers, on every
    // node, see one order, as with one server.
    const receivers = await this.redis.exec('pubsub.publish', 'write', (client) =>
      this.redis.nodeOf(client, channel).publish(channel, bytes),
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
        ? this.keyspace.key(principal, name, 'channel')
        : this.patternName(principal, name);
    this.registry.admit(principal);
    const listener = new StreamListener(
      principal,
      this.keyspace,
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

  /** The Redis pattern for a caller's pattern: inside the key prefix, never wider than the grant. */
  private patternName(principal: Principal, pattern: string): string {
    const problem =
      this.keyspace.nameProblem(pattern) ??
      globCostProblem(pattern, this.config.limits.maxPatternBytes);
    if (problem) {
      throw AppError.validation([{ field: 'pattern', message: `pattern ${problem}` }]);
    }
    if (
      pattern.startsWith(RESERVED_NAMESPACE) ||
      !patternWithinGrant(pattern, principal.keyPatterns)
    ) {
      throw new AppError(
        'KEY_FORBIDDEN',
        "The pattern can match channels outside the token's key patterns.",
      );
    }
    return escapeGlob(this.keyspace.prefix) + pattern;
  }
}

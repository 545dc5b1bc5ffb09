import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { utf8OrNull, ValueCodec, type Encoding } from '../common/value-codec';
import { SlotRouter } from '../redis/cluster';
import { RedisExecutor } from '../redis/executor';
import { ChannelStreams, type MessageFormat } from '../subscriptions/channel-streams';
import type { SubscriptionKind } from '../subscriptions/subscriptions';
import type { PublishDto, PublishedDto } from './dto/pubsub.dto';

/** The pub/sub routes' events: `data: {channel, message, pattern?}`, base64 if not UTF-8. */
function jsonFormat(encoding: Encoding, pattern: string | undefined): MessageFormat {
  const named = pattern === undefined ? {} : { pattern };
  return {
    id: `json\0${encoding}\0${pattern ?? ''}`,
    event(channel, message) {
      const text = encoding === 'utf8' ? utf8OrNull(message) : null;
      const data =
        text !== null
          ? { channel, message: text, ...named }
          : { channel, message: message.toString('base64'), ...named, encoding: 'base64' };
      return { event: 'message', data: JSON.stringify(data) };
    },
  };
}

/** Pub/sub: publish, and SSE subscriptions to a channel or a glob pattern. */
@Injectable()
export class PubSubService {
  constructor(
    private readonly redis: RedisExecutor,
    private readonly router: SlotRouter,
    private readonly access: KeyAccess,
    private readonly codec: ValueCodec,
    private readonly streams: ChannelStreams,
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

  /** An SSE subscription to a channel or a pattern (ChannelStreams has the order of things). */
  subscribe(
    principal: Principal,
    kind: SubscriptionKind,
    name: string,
    encoding: Encoding | undefined,
    reply: FastifyReply,
  ): Promise<void> {
    const format = jsonFormat(encoding ?? 'utf8', kind === 'pattern' ? name : undefined);
    return this.streams.open(principal, kind, name, format, reply);
  }
}

import { Module } from '@nestjs/common';
import { ChannelStreams } from './channel-streams';
import { Subscriptions } from './subscriptions';

/** The one subscriber connection's fan-out, shared by pub/sub and the Upstash endpoint. */
@Module({
  providers: [Subscriptions, ChannelStreams],
  exports: [Subscriptions, ChannelStreams],
})
export class SubscriptionsModule {}

import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { PubSubController } from './pubsub.controller';
import { PubSubService } from './pubsub.service';
import { Subscriptions } from './subscriptions';

@Module({
  imports: [MetricsModule],
  controllers: [PubSubController],
  providers: [PubSubService, Subscriptions],
})
export class PubSubModule {}

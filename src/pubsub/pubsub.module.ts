import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { PubSubController } from './pubsub.controller';
import { PubSubService } from './pubsub.service';
import { SubscriptionsModule } from '../subscriptions/subscriptions.module';

@Module({
  imports: [MetricsModule, SubscriptionsModule],
  controllers: [PubSubController],
  providers: [PubSubService],
})
export class PubSubModule {}

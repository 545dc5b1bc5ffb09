import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { SubscriptionsModule } from '../subscriptions/subscriptions.module';
import { UpstashCommands } from './command-table';
import { UpstashController } from './upstash.controller';
import { UpstashService } from './upstash.service';

/** The Upstash-compatible endpoint, mounted only when `upstash.enabled`. */
@Module({
  imports: [MetricsModule, SubscriptionsModule],
  controllers: [UpstashController],
  providers: [UpstashCommands, UpstashService],
})
export class UpstashModule {}

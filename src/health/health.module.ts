import { Module } from '@nestjs/common';
import { NearCacheModule } from '../near-cache/near-cache.module';
import { MetricsModule } from '../observability/metrics.module';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { RedisProbes } from './probes';

@Module({
  imports: [MetricsModule, NearCacheModule],
  controllers: [HealthController],
  providers: [HealthService, RedisProbes],
})
export class HealthModule {}

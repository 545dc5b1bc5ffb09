import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { NearCache } from './near-cache';

/** The near-cache, one per instance, for the services that read through it and for health. */
@Module({
  imports: [MetricsModule],
  providers: [NearCache],
  exports: [NearCache],
})
export class NearCacheModule {}

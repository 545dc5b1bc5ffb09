import { Module } from '@nestjs/common';
import { NearCacheModule } from '../near-cache/near-cache.module';
import { MetricsModule } from '../observability/metrics.module';
import { KvReads } from './kv-reads';
import { KvController } from './kv.controller';
import { KvService } from './kv.service';

@Module({
  imports: [MetricsModule, NearCacheModule],
  controllers: [KvController],
  providers: [KvService, KvReads],
})
export class KvModule {}

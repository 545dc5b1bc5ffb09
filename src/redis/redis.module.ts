import { Global, Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { Keyspace } from './keys';
import { RedisManager } from './redis-manager';

@Global()
@Module({
  imports: [MetricsModule],
  providers: [RedisManager, Keyspace],
  exports: [RedisManager, Keyspace],
})
export class RedisModule {}

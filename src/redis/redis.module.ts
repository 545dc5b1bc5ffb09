import { Global, Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { SlotRouter } from './cluster';
import { RedisConnections } from './connections';
import { RedisExecutor } from './executor';
import { Keyspace } from './keys';
import { RedisScripts } from './scripts';

/** Redis for every module: connections, the executor, scripts, slot routing, the key prefix. */
@Global()
@Module({
  imports: [MetricsModule],
  providers: [RedisConnections, RedisExecutor, RedisScripts, SlotRouter, Keyspace],
  exports: [RedisConnections, RedisExecutor, RedisScripts, SlotRouter, Keyspace],
})
export class RedisModule {}

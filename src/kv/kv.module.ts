import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { KvController } from './kv.controller';
import { KvService } from './kv.service';

@Module({
  imports: [MetricsModule],
  controllers: [KvController],
  providers: [KvService],
})
export class KvModule {}

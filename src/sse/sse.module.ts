import { Global, Module } from '@nestjs/common';
import { LoggingModule } from '../observability/logging.module';
import { MetricsModule } from '../observability/metrics.module';
import { SseRegistry } from './sse-registry';

/** The one registry of open Server-Sent Events streams, shared by streams and pub/sub. */
@Global()
@Module({
  imports: [MetricsModule, LoggingModule],
  providers: [SseRegistry],
  exports: [SseRegistry],
})
export class SseModule {}

import { Global, Module } from '@nestjs/common';
import { LoggingModule } from '../observability/logging.module';
import { MetricsModule } from '../observability/metrics.module';
import { SseRegistry } from './sse-registry';
import { Tickets, TicketsController } from './tickets';

/**
 * The one registry of open Server-Sent Events streams, shared by streams and pub/sub, and the
 * stream tickets that let browsers open them.
 */
@Global()
@Module({
  imports: [MetricsModule, LoggingModule],
  controllers: [TicketsController],
  providers: [SseRegistry, Tickets],
  exports: [SseRegistry, Tickets],
})
export class SseModule {}

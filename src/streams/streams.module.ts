import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { StreamTails } from './stream-tails';
import { StreamsController } from './streams.controller';
import { StreamsService } from './streams.service';

@Module({
  imports: [MetricsModule],
  controllers: [StreamsController],
  providers: [StreamsService, StreamTails],
})
export class StreamsModule {}

import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { GroupsService } from './groups.service';
import { StreamTails } from './stream-tails';
import { StreamsController } from './streams.controller';
import { StreamsService } from './streams.service';

@Module({
  imports: [MetricsModule],
  controllers: [StreamsController],
  providers: [StreamsService, GroupsService, StreamTails],
})
export class StreamsModule {}

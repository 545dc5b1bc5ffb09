import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { LocksController } from './locks.controller';
import { LocksService } from './locks.service';

@Module({
  imports: [MetricsModule],
  controllers: [LocksController],
  providers: [LocksService],
})
export class LocksModule {}

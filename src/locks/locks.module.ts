import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { LocksController } from './locks.controller';
import { LockGrants } from './lock-grants';
import { LockNodes } from './lock-nodes';
import { LockQuota } from './lock-quota';
import { LocksService } from './locks.service';

@Module({
  imports: [MetricsModule],
  controllers: [LocksController],
  providers: [LocksService, LockNodes, LockGrants, LockQuota],
})
export class LocksModule {}

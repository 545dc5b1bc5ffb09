import { Module } from '@nestjs/common';
import { MetricsModule } from '../observability/metrics.module';
import { HashesController } from './hashes.controller';
import { HashesService } from './hashes.service';

@Module({
  imports: [MetricsModule],
  controllers: [HashesController],
  providers: [HashesService],
})
export class HashesModule {}

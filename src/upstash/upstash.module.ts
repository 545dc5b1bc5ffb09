import { Module } from '@nestjs/common';
import { UpstashCommands } from './command-table';
import { UpstashController } from './upstash.controller';
import { UpstashService } from './upstash.service';

/** The Upstash-compatible endpoint, mounted only when `upstash.enabled`. */
@Module({
  controllers: [UpstashController],
  providers: [UpstashCommands, UpstashService],
})
export class UpstashModule {}

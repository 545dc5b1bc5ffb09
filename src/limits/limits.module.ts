import { Module } from '@nestjs/common';
import { RateLimits } from './rate-limits';

/** The per-caller rate limits; the auth module places their guard after authentication. */
@Module({
  providers: [RateLimits],
  exports: [RateLimits],
})
export class LimitsModule {}

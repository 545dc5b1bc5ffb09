import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, Matches, Max, Min } from 'class-validator';
import { Optional } from '../../common/validation';

/**
 * The shortest lease. The validity left when the caller is answered is the lease minus the
 * round trips and the clock-drift allowance; a lease that is gone by then was not acquired, and
 * with leases of a few milliseconds an ordinary round trip on a busy host used them up.
 */
export const MIN_TTL_MS = 100;
export const MIN_RETRY_DELAY_MS = 10;
export const MAX_RETRY_DELAY_MS = 10000;
export const DEFAULT_RETRY_DELAY_MS = 200;
/** A lock token: 128 random bits as 32 lower-case hex digits. */
export const LOCK_TOKEN_PATTERN = /^[0-9a-f]{32}$/;

const ttlDescription = `Lease in milliseconds (${MIN_TTL_MS} up to locks.maxTtlMs, 300000 by default)`;

export class AcquireLockDto {
  @ApiProperty({
    type: 'integer',
    minimum: MIN_TTL_MS,
    description: ttlDescription,
    example: 30000,
  })
  @IsInt()
  @Min(MIN_TTL_MS)
  ttlMs!: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    description:
      'How long to keep trying while another owner holds the lock, in milliseconds (0, the default: one attempt; at most limits.maxBlockMs)',
    example: 5000,
  })
  @Optional()
  @IsInt()
  @Min(0)
  waitMs?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: MIN_RETRY_DELAY_MS,
    maximum: MAX_RETRY_DELAY_MS,
    description: `Mean pause between attempts while waiting, in milliseconds (${DEFAULT_RETRY_DELAY_MS} by default); each pause is jittered by ±50 %`,
  })
  @Optional()
  @IsInt()
  @Min(MIN_RETRY_DELAY_MS)
  @Max(MAX_RETRY_DELAY_MS)
  retryDelayMs?: number;
}

export class ExtendLockDto {
  @ApiProperty({
    description: 'The owner token the acquisition answered',
    example: '9f86d081884c7d659a2feaa0c55ad015',
    pattern: LOCK_TOKEN_PATTERN.source,
  })
  @Matches(LOCK_TOKEN_PATTERN, { message: 'token must be a lock token (32 hex digits)' })
  token!: string;

  @ApiProperty({
    type: 'integer',
    minimum: MIN_TTL_MS,
    description: `New lease from now: ${ttlDescription}`,
    example: 30000,
  })
  @IsInt()
  @Min(MIN_TTL_MS)
  ttlMs!: number;
}

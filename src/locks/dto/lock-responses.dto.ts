import { ApiProperty } from '@nestjs/swagger';

export class LockLeaseDto {
  @ApiProperty({ example: 'jobs:nightly-report' })
  name!: string;

  @ApiProperty({
    format: 'date-time',
    description:
      "When the lease ends by the gateway's clock (ISO 8601), after the clock-drift allowance",
    example: '2026-11-21T12:00:29.698Z',
  })
  expiresAt!: string;

  @ApiProperty({
    type: 'integer',
    description:
      'Milliseconds of validity left when the answer was sent (the lease minus the time the operation took and the clock-drift allowance): rely on this rather than on expiresAt when clocks may differ',
    example: 29698,
  })
  ttlMs!: number;
}

export class LockGrantDto extends LockLeaseDto {
  @ApiProperty({
    description:
      'The owner secret (128 random bits): extend and release need it, together with a token of the same subject. Keep it private; it is never shown again.',
    example: '9f86d081884c7d659a2feaa0c55ad015',
  })
  token!: string;

  @ApiProperty({
    type: 'integer',
    description:
      'Strictly larger than every fencing token issued before for this name. Pass it to the resource the lock protects, which refuses writes with a token lower than the highest it has seen.',
    example: 1763726400000001,
  })
  fencingToken!: number;
}

export class LockStatusDto {
  @ApiProperty({ example: 'jobs:nightly-report' })
  name!: string;

  @ApiProperty({ description: 'Whether someone holds the lock now' })
  held!: boolean;

  @ApiProperty({
    type: 'integer',
    description: 'Milliseconds left on the lease; 0 when not held',
    example: 12000,
  })
  ttlMs!: number;
}

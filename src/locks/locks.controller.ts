import { Body, Controller, Headers, Param } from '@nestjs/common';
import { ApiHeader, ApiNoContentResponse, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { AcquireLockDto, ExtendLockDto, LOCK_TOKEN_PATTERN } from './dto/lock-requests.dto';
import { LockGrantDto, LockLeaseDto, LockStatusDto } from './dto/lock-responses.dto';
import { LocksService } from './locks.service';
import { ReadRoute, WriteRoute } from '../auth/route.decorator';
import { ApiResponseHeaders } from '../errors/api-problems.decorator';

const nameParam = ApiParam({ name: 'name', description: 'The lock name, URL-encoded' });
const NOT_OWNER: [409, string] = [
  409,
  'The token does not hold the lock: another owner does, or its lease ended (`LOCK_NOT_OWNER`)',
];
const LOCKS_UNAVAILABLE: [503, string] = [
  503,
  'Redis unreachable (`REDIS_UNAVAILABLE`), fewer than a majority of locks.nodes answered (`LOCK_QUORUM_UNAVAILABLE`), or Redis restarted without persistence and no lock is granted yet (`LOCK_SERVICE_RECOVERING`); with Retry-After',
];

@ApiTags('locks')
@Controller('redis/locks')
export class LocksController {
  constructor(private readonly locks: LocksService) {}

  @WriteRoute('POST', ':name', {
    summary: 'Acquire a lock (a lease of ttlMs), waiting up to waitMs while another owner holds it',
    status: 201,
    body: LockGrantDto,
    problems: [
      [409, 'Not acquired within waitMs (`LOCK_HELD`), with Retry-After'],
      LOCKS_UNAVAILABLE,
    ],
  })
  @nameParam
  @ApiResponseHeaders({ 409: ['Retry-After'] })
  acquire(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Body() body: AcquireLockDto,
  ): Promise<LockGrantDto> {
    return this.locks.acquire(principal, name, body);
  }

  @WriteRoute('POST', ':name/extend', {
    summary: "Renew the owner's lease to ttlMs from now",
    body: LockLeaseDto,
    problems: [NOT_OWNER, LOCKS_UNAVAILABLE],
  })
  @nameParam
  extend(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Body() body: ExtendLockDto,
  ): Promise<LockLeaseDto> {
    return this.locks.extend(principal, name, body);
  }

  @WriteRoute('DELETE', ':name', {
    summary: 'Release a lock (only its owner can)',
    status: 204,
    problems: [[404, 'The lock is not held (`NOT_FOUND`)'], NOT_OWNER, LOCKS_UNAVAILABLE],
  })
  @nameParam
  @ApiHeader({
    name: 'Lock-Token',
    required: true,
    description: "The owner's lock token",
    schema: { type: 'string', pattern: LOCK_TOKEN_PATTERN.source },
  })
  @ApiNoContentResponse({ description: 'Released' })
  release(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Headers('lock-token') token: string | undefined,
  ): Promise<void> {
    return this.locks.release(principal, name, token);
  }

  @ReadRoute('GET', ':name', {
    summary: 'Whether a lock is held and for how long (never by whom)',
    body: LockStatusDto,
    problems: [LOCKS_UNAVAILABLE],
  })
  @nameParam
  status(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
  ): Promise<LockStatusDto> {
    return this.locks.status(principal, name);
  }
}

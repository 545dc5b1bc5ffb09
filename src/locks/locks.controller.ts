import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { RequireScopes } from '../auth/require-scopes.decorator';
import { SCOPES } from '../auth/scopes';
import { ApiProblems, ApiReadProblems, ApiWriteProblems } from '../errors/api-problems.decorator';
import { AcquireLockDto, ExtendLockDto } from './dto/lock-requests.dto';
import { LockGrantDto, LockLeaseDto, LockStatusDto } from './dto/lock-responses.dto';
import { LocksService } from './locks.service';

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

  @Post(':name')
  @RequireScopes(SCOPES.write)
  @nameParam
  @ApiOperation({
    summary: 'Acquire a lock (a lease of ttlMs), waiting up to waitMs while another owner holds it',
  })
  @ApiCreatedResponse({ type: LockGrantDto })
  @ApiWriteProblems()
  @ApiProblems(
    [409, 'Not acquired within waitMs (`LOCK_HELD`), with Retry-After'],
    LOCKS_UNAVAILABLE,
  )
  acquire(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Body() body: AcquireLockDto,
  ): Promise<LockGrantDto> {
    return this.locks.acquire(principal, name, body);
  }

  @Post(':name/extend')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @nameParam
  @ApiOperation({ summary: "Renew the owner's lease to ttlMs from now" })
  @ApiOkResponse({ type: LockLeaseDto })
  @ApiWriteProblems()
  @ApiProblems(NOT_OWNER, LOCKS_UNAVAILABLE)
  extend(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Body() body: ExtendLockDto,
  ): Promise<LockLeaseDto> {
    return this.locks.extend(principal, name, body);
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @nameParam
  @ApiHeader({ name: 'Lock-Token', required: true, description: "The owner's lock token" })
  @ApiOperation({ summary: 'Release a lock (only its owner can)' })
  @ApiNoContentResponse({ description: 'Released' })
  @ApiWriteProblems()
  @ApiProblems([404, 'The lock is not held (`NOT_FOUND`)'], NOT_OWNER, LOCKS_UNAVAILABLE)
  release(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
    @Headers('lock-token') token: string | undefined,
  ): Promise<void> {
    return this.locks.release(principal, name, token);
  }

  @Get(':name')
  @RequireScopes(SCOPES.read)
  @nameParam
  @ApiOperation({ summary: 'Whether a lock is held and for how long (never by whom)' })
  @ApiOkResponse({ type: LockStatusDto })
  @ApiReadProblems()
  @ApiProblems(LOCKS_UNAVAILABLE)
  status(
    @CurrentPrincipal() principal: Principal,
    @Param('name') name: string,
  ): Promise<LockStatusDto> {
    return this.locks.status(principal, name);
  }
}

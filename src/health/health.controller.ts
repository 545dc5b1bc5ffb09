import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import {
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { Public } from '../common/public.decorator';
import { RequireScopes } from '../auth/require-scopes.decorator';
import { SCOPES } from '../auth/scopes';
import { HealthDto, KeyspaceDbDto, StatusDto } from './dto/status.dto';
import { HealthService } from './health.service';

@ApiExtraModels(KeyspaceDbDto)
@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('healthz')
  @Public()
  @ApiTags('operations')
  @ApiOperation({ summary: 'Liveness: 200 while the process lives (no Redis call); no token' })
  @ApiOkResponse({ type: HealthDto })
  @HttpCode(200)
  liveness(): HealthDto {
    return { status: 'ok' };
  }

  @Get('readyz')
  @Public()
  @ApiTags('operations')
  @ApiOperation({ summary: 'Readiness: 200 when Redis answers PING in time, else 503; no token' })
  @ApiOkResponse({ type: HealthDto })
  @ApiServiceUnavailableResponse({ type: HealthDto })
  async readiness(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthDto> {
    const ready = await this.health.isReady();
    void reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not_ready' };
  }

  @Get('redis/status')
  @RequireScopes(SCOPES.read)
  @ApiTags('status')
  @ApiOperation({
    summary: "Redis's and the gateway's state; 503 with the same body when Redis is down",
    description:
      'A token confined by key patterns gets null for the server-wide figures (keyspace, ' +
      'memory, clients): they describe data outside its grant.',
  })
  @ApiOkResponse({ type: StatusDto })
  @ApiServiceUnavailableResponse({ type: StatusDto })
  async status(
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<StatusDto> {
    const report = await this.health.status(principal.keyPatterns !== null);
    void reply.code(report.status === 'up' ? 200 : 503);
    return report;
  }
}

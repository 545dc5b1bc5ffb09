import { Body, Controller, Headers } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiBody, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { ReadRoute } from '../auth/route.decorator';
import { upstashErrorBody } from './upstash-reply';
import { UpstashService } from './upstash.service';

/** Errors in the SDK's `{error}` shape instead of problem+json (see ProblemFilter). */
const upstashErrors = RouteConfig({ errorBody: upstashErrorBody });
const base64 = (encoding: string | undefined) => encoding?.toLowerCase() === 'base64';
const COMMAND = { type: 'array', items: { oneOf: [{ type: 'string' }, { type: 'number' }] } };

/**
 * The Upstash REST protocol (the @upstash/redis SDK). Declared with `redis:read`, the least any
 * command needs; a command that writes needs `redis:write`, checked per command by the service
 * before anything runs.
 */
@ApiTags('upstash')
@Controller('redis/upstash')
export class UpstashController {
  constructor(private readonly upstash: UpstashService) {}

  @ReadRoute('POST', '', {
    summary: 'One Redis command as a JSON array ({result} or {error})',
    problems: [413],
  })
  @ApiBody({ schema: COMMAND })
  @upstashErrors
  command(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Headers('upstash-encoding') encoding: string | undefined,
  ): Promise<unknown> {
    return this.upstash.command(principal, body, base64(encoding));
  }

  @ReadRoute('POST', 'pipeline', {
    summary: 'Commands one after the other, not atomically (an array of {result} or {error})',
    problems: [413],
  })
  @ApiBody({ schema: { type: 'array', items: COMMAND } })
  @upstashErrors
  pipeline(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Headers('upstash-encoding') encoding: string | undefined,
  ): Promise<unknown> {
    return this.upstash.pipeline(principal, body, base64(encoding));
  }

  @ReadRoute('POST', 'multi-exec', {
    summary: 'Commands as one transaction (MULTI/EXEC)',
    problems: [413],
  })
  @ApiBody({ schema: { type: 'array', items: COMMAND } })
  @upstashErrors
  multiExec(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Headers('upstash-encoding') encoding: string | undefined,
  ): Promise<unknown> {
    return this.upstash.multiExec(principal, body, base64(encoding));
  }
}

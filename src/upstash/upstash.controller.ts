import {
  Controller,
  Param,
  Req,
  Res,
  createParamDecorator,
  type ExecutionContext,
} from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiBody, ApiOkResponse, ApiParam, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import { principalOf, type Principal } from '../auth/principal';
import { ReadRoute } from '../auth/route.decorator';
import { upstashErrorBody } from './upstash-reply';
import { UpstashService, type UpstashRequest } from './upstash.service';

/** Errors in the SDK's `{error}` shape instead of problem+json (see ProblemFilter). */
const upstashErrors = RouteConfig({ errorBody: upstashErrorBody });

/** The request as the service takes it: the caller, the body, the encoding, the log line. */
const Call = createParamDecorator((_data: unknown, context: ExecutionContext): UpstashRequest => {
  const request = context.switchToHttp().getRequest<FastifyRequest>();
  const encoding = request.headers['upstash-encoding'];
  return {
    principal: principalOf(request),
    body: request.body,
    base64: typeof encoding === 'string' && encoding.toLowerCase() === 'base64',
    log: request,
  };
});
const COMMAND = { type: 'array', items: { oneOf: [{ type: 'string' }, { type: 'number' }] } };
const FRAMES = `An SSE stream whose \`data:\` lines the SDK reads: \`subscribe,<channel>,1\` (or
\`psubscribe,<pattern>,1\`) once Redis has confirmed the subscription, then \`message,<channel>,<text>\`
(or \`pmessage,<pattern>,<channel>,<text>\`). Limits, heartbeats and the closing events are those of
the pub/sub routes.`;

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
  command(@Call() call: UpstashRequest): Promise<unknown> {
    return this.upstash.command(call);
  }

  @ReadRoute('POST', 'pipeline', {
    summary: 'Commands one after the other, not atomically (an array of {result} or {error})',
    problems: [413],
  })
  @ApiBody({ schema: { type: 'array', items: COMMAND } })
  @upstashErrors
  pipeline(@Call() call: UpstashRequest): Promise<unknown> {
    return this.upstash.pipeline(call);
  }

  @ReadRoute('POST', 'multi-exec', {
    summary: 'Commands as one transaction (MULTI/EXEC)',
    problems: [413],
  })
  @ApiBody({ schema: { type: 'array', items: COMMAND } })
  @upstashErrors
  multiExec(@Call() call: UpstashRequest): Promise<unknown> {
    return this.upstash.multiExec(call);
  }

  @ReadRoute('POST', 'subscribe/:channel', {
    summary: "Subscribe to a channel (the SDK's subscribe()) as Server-Sent Events",
    description: FRAMES,
    problems: [429],
  })
  @ApiParam({ name: 'channel', description: 'The channel (glob characters are literal)' })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: FRAMES, schema: { type: 'string' } })
  @upstashErrors
  async subscribe(
    @CurrentPrincipal() principal: Principal,
    @Param('channel') channel: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.upstash.subscribe(principal, 'channel', channel, request, reply);
  }

  @ReadRoute('POST', 'psubscribe/:pattern', {
    summary: "Subscribe to the channels matching a pattern (the SDK's psubscribe()) as SSE",
    description: FRAMES,
    problems: [429],
  })
  @ApiParam({
    name: 'pattern',
    description: "A Redis glob pattern; it may not match channels outside the token's key patterns",
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: FRAMES, schema: { type: 'string' } })
  @upstashErrors
  async psubscribe(
    @CurrentPrincipal() principal: Principal,
    @Param('pattern') pattern: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.upstash.subscribe(principal, 'pattern', pattern, request, reply);
  }
}

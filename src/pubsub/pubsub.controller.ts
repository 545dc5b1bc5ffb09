import { Body, Controller, Get, Param, Query, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AcceptsTicket } from '../auth/accepts-ticket.decorator';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { RequireScopes } from '../auth/require-scopes.decorator';
import { SCOPES } from '../auth/scopes';
import { ApiProblems } from '../errors/api-problems.decorator';
import { EventsQuery } from '../sse/sse.dto';
import { PublishDto, PublishedDto } from './dto/pubsub.dto';
import { PubSubService } from './pubsub.service';
import { ReadRoute, WriteRoute } from '../auth/route.decorator';

const EVENTS = `An SSE stream. Each message is \`event: message\`, \`data: {"channel","message","pattern"?}\`
(a payload that is not UTF-8 text comes in base64 with \`"encoding": "base64"\`). Pub/sub is
at-most-once: after the gateway lost and regained its Redis subscription it sends
\`event: reconnected\` (messages may have been missed). Other events: \`expired\` (the token
expired: reconnect with a fresh one), \`shutdown\` (the instance is stopping: reconnect), \`error\`
with \`data: {"code"}\` (\`SLOW_CONSUMER\`: the client read too slowly and was closed). A
\`: ping\` comment comes every sse.heartbeatMs.`;

const SSE_PROBLEMS = ApiProblems(
  400,
  [429, 'This subject holds sse.maxClientsPerSubject streams (`TOO_MANY_SUBJECT_STREAMS`)'],
  [
    503,
    'Redis unreachable (`REDIS_UNAVAILABLE`) or sse.maxClients streams open (`TOO_MANY_STREAMS`), with Retry-After',
  ],
);

/** Pub/sub: publish to a channel, subscribe to a channel or a pattern over SSE. */
@ApiTags('pub/sub')
@Controller('redis/pubsub')
export class PubSubController {
  constructor(private readonly pubsub: PubSubService) {}

  @WriteRoute('POST', 'channels/:channel/messages', {
    summary: 'Publish a message; answers how many Redis subscribers received it',
    body: PublishedDto,
    problems: [413],
  })
  @ApiParam({ name: 'channel', description: 'The channel, URL-encoded' })
  publish(
    @CurrentPrincipal() principal: Principal,
    @Param('channel') channel: string,
    @Body() body: PublishDto,
  ): Promise<PublishedDto> {
    return this.pubsub.publish(principal, channel, body);
  }

  // Above the route decorator: the bearer requirement is listed first.
  @AcceptsTicket()
  @ReadRoute('GET', 'channels/:channel/events', {
    summary: 'Subscribe to a channel as Server-Sent Events',
    description: EVENTS,
  })
  @ApiParam({
    name: 'channel',
    description: 'The channel, URL-encoded (glob characters are literal)',
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: EVENTS, schema: { type: 'string' } })
  @SSE_PROBLEMS
  async channel(
    @CurrentPrincipal() principal: Principal,
    @Param('channel') channel: string,
    @Query() query: EventsQuery,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.pubsub.subscribe(principal, 'channel', channel, query.encoding, reply);
  }

  // Above the route decorator: the bearer requirement is listed first.
  @AcceptsTicket()
  @Get('patterns/:pattern/events')
  @RequireScopes(SCOPES.read)
  @ApiParam({
    name: 'pattern',
    description:
      "A Redis glob pattern, URL-encoded; it may not match channels outside the token's key " +
      'patterns (a granted `cache:*` allows `cache:*` and `cache:user:*`, not `*`)',
  })
  @ApiOperation({
    summary: 'Subscribe to every channel matching a pattern as Server-Sent Events',
    description: EVENTS,
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: EVENTS, schema: { type: 'string' } })
  @SSE_PROBLEMS
  async pattern(
    @CurrentPrincipal() principal: Principal,
    @Param('pattern') pattern: string,
    @Query() query: EventsQuery,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.pubsub.subscribe(principal, 'pattern', pattern, query.encoding, reply);
  }
}

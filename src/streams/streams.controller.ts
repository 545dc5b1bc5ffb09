import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AcceptsTicket } from '../auth/accepts-ticket.decorator';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { RequireScopes } from '../auth/require-scopes.decorator';
import { SCOPES } from '../auth/scopes';
import {
  ANSWER_TOO_LARGE,
  ApiProblems,
  ApiReadProblems,
  ApiWriteProblems,
} from '../errors/api-problems.decorator';
import {
  AckDto,
  AddEntryDto,
  ClaimDto,
  CreateGroupDto,
  GroupReadDto,
  PendingQuery,
  RangeQuery,
  TailQuery,
  TrimDto,
} from './dto/streams-requests.dto';
import {
  AcknowledgedDto,
  ClaimedDto,
  EntriesDto,
  EntryIdDto,
  GroupCreatedDto,
  GroupEntriesDto,
  GroupsDto,
  PendingDto,
  StreamInfoDto,
  TrimmedDto,
} from './dto/streams-responses.dto';
import { GroupsService } from './groups.service';
import { StreamTails } from './stream-tails';
import { StreamsService } from './streams.service';
import { ReadRoute, WriteRoute } from '../auth/route.decorator';

const WRONG_TYPE: [409, string] = [409, 'The key holds another type (`WRONG_TYPE`)'];
const NO_STREAM: [404, string] = [404, 'The stream does not exist (`NOT_FOUND`)'];
const NO_GROUP: [404, string] = [404, 'The stream or the group does not exist (`NOT_FOUND`)'];
const keyParam = ApiParam({
  name: 'key',
  description: 'The stream key, URL-encoded (without the gateway key prefix)',
});
const groupParam = ApiParam({ name: 'group', description: 'The consumer group, URL-encoded' });

const TAIL_DESCRIPTION = `An SSE stream of the entries. Each entry is \`id: <entry id>\`, \`event: entry\`,
\`data: {"id","fields"}\` (an entry that is not UTF-8 text comes in base64 with \`"encoding": "base64"\`).
A reconnect with \`Last-Event-ID\` (EventSource sends it by itself) resumes right after that entry,
losing none. Other events: \`gap\` (the Last-Event-ID was not an entry id: entries may be missing),
\`expired\` (the token expired: reconnect with a fresh one), \`shutdown\` (the instance is stopping:
reconnect), \`error\` with \`data: {"code"}\` (\`SLOW_CONSUMER\`: the client read too slowly and was
closed; \`REDIS_UNAVAILABLE\`; \`WRONG_TYPE\`). A \`: ping\` comment comes every sse.heartbeatMs.`;

/** Streams: entries, ranges, trimming, SSE tails and consumer groups. */
@ApiTags('streams')
@Controller('redis/streams')
export class StreamsController {
  constructor(
    private readonly streams: StreamsService,
    private readonly consumerGroups: GroupsService,
    private readonly tails: StreamTails,
  ) {}

  @WriteRoute('POST', ':key/entries', {
    summary:
      'Add an entry (XADD); trims to streams.maxLength (approximately) unless maxLen is given',
    status: 201,
    body: EntryIdDto,
    problems: [
      [
        409,
        'The explicit id is not above the last one (`STREAM_ID_TOO_SMALL`), the Idempotency-Key ' +
          'was used for another body (`IDEMPOTENCY_KEY_REUSED`) or another type (`WRONG_TYPE`)',
      ],
      413,
    ],
  })
  @keyParam
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'A retry with the same key (and the same body) adds no second entry and answers the ' +
      'first id, for streams.idempotencyWindowS; the same key with another body gets 409',
  })
  add(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: AddEntryDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
  ): Promise<EntryIdDto> {
    return this.streams.add(principal, key, body, idempotencyKey);
  }

  @ReadRoute('GET', ':key/entries', {
    summary: 'Entries in an id range (XRANGE, or XREVRANGE with reverse=true)',
    body: EntriesDto,
    problems: [NO_STREAM, 406, WRONG_TYPE, ANSWER_TOO_LARGE],
  })
  @keyParam
  range(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: RangeQuery,
  ): Promise<EntriesDto> {
    return this.streams.range(principal, key, query);
  }

  // Above the route decorator: the bearer requirement is listed first.
  @AcceptsTicket()
  @ReadRoute('GET', ':key/events', {
    summary: 'Tail the stream as Server-Sent Events',
    description: TAIL_DESCRIPTION,
    problems: [
      400,
      WRONG_TYPE,
      [429, 'This subject holds sse.maxClientsPerSubject streams (`TOO_MANY_SUBJECT_STREAMS`)'],
      [
        503,
        'Redis unreachable (`REDIS_UNAVAILABLE`), sse.maxClients streams open ' +
          '(`TOO_MANY_STREAMS`) or the blocking pool spent (`BLOCKING_POOL_EXHAUSTED`)',
      ],
      504,
    ],
  })
  @keyParam
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'Resume after this entry id (browsers send it when they reconnect)',
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: TAIL_DESCRIPTION, schema: { type: 'string' } })
  async events(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: TailQuery,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.tails.open(
      principal,
      key,
      { from: query.from, encoding: query.encoding, lastEventId },
      reply,
    );
  }

  @Get(':key')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({ summary: 'Length, first and last id and group count of a stream (XINFO)' })
  @ApiOkResponse({ type: StreamInfoDto })
  @ApiReadProblems()
  @ApiProblems(NO_STREAM, WRONG_TYPE)
  info(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
  ): Promise<StreamInfoDto> {
    return this.streams.info(principal, key);
  }

  @WriteRoute('DELETE', ':key/entries/:id', {
    summary: 'Delete one entry (XDEL)',
    status: 204,
    problems: [[404, 'No such entry or stream (`NOT_FOUND`)'], WRONG_TYPE],
  })
  @keyParam
  @ApiParam({ name: 'id', description: 'The entry id' })
  deleteEntry(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('id') id: string,
  ): Promise<void> {
    return this.streams.deleteEntry(principal, key, id);
  }

  @WriteRoute('POST', ':key/trim', {
    summary: 'Trim by length (maxLen) or by id (minId) (XTRIM)',
    body: TrimmedDto,
    problems: [NO_STREAM, WRONG_TYPE],
  })
  @keyParam
  trim(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: TrimDto,
  ): Promise<TrimmedDto> {
    return this.streams.trim(principal, key, body);
  }

  @WriteRoute('POST', ':key/groups', {
    summary: 'Create a consumer group (XGROUP CREATE, MKSTREAM by default)',
    status: 201,
    body: GroupCreatedDto,
    problems: [
      [404, 'The stream does not exist and mkStream is false (`NOT_FOUND`)'],
      [409, 'The group exists (`GROUP_EXISTS`) or the key holds another type (`WRONG_TYPE`)'],
    ],
  })
  @keyParam
  createGroup(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: CreateGroupDto,
  ): Promise<GroupCreatedDto> {
    return this.consumerGroups.createGroup(principal, key, body);
  }

  @ReadRoute('GET', ':key/groups', {
    summary: 'The consumer groups with their pending count and lag (XINFO GROUPS)',
    body: GroupsDto,
    problems: [NO_STREAM, WRONG_TYPE],
  })
  @keyParam
  groups(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<GroupsDto> {
    return this.consumerGroups.groups(principal, key);
  }

  @WriteRoute('DELETE', ':key/groups/:group', {
    summary: 'Delete a consumer group (XGROUP DESTROY)',
    status: 204,
    problems: [NO_GROUP, WRONG_TYPE],
  })
  @keyParam
  @groupParam
  deleteGroup(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
  ): Promise<void> {
    return this.consumerGroups.deleteGroup(principal, key, group);
  }

  @WriteRoute('POST', ':key/groups/:group/read', {
    summary:
      'Read new entries as a consumer of the group (XREADGROUP >); a write: it moves them to the pending list',
    description:
      'With blockMs, waits up to that long (at most limits.maxBlockMs) on a dedicated ' +
      'connection of the blocking pool; an empty list when nothing arrived.',
    body: GroupEntriesDto,
    problems: [
      NO_GROUP,
      406,
      WRONG_TYPE,
      [
        503,
        'Redis unreachable (`REDIS_UNAVAILABLE`) or every blocking connection in use ' +
          '(`BLOCKING_POOL_EXHAUSTED`), with Retry-After',
      ],
    ],
  })
  @keyParam
  @groupParam
  async read(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Body() body: GroupReadDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<GroupEntriesDto> {
    // A caller that leaves during a blocked read frees its connection at once.
    const abort = new AbortController();
    const left = () => {
      if (!reply.raw.writableFinished) {
        abort.abort();
      }
    };
    reply.raw.once('close', left);
    try {
      return await this.consumerGroups.read(principal, key, group, body, abort.signal);
    } finally {
      reply.raw.off('close', left);
    }
  }

  @Post(':key/groups/:group/ack')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @groupParam
  @ApiOperation({ summary: 'Acknowledge processed entries (XACK)' })
  @ApiOkResponse({ type: AcknowledgedDto })
  @ApiWriteProblems()
  @ApiProblems(NO_GROUP, WRONG_TYPE)
  ack(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Body() body: AckDto,
  ): Promise<AcknowledgedDto> {
    return this.consumerGroups.ack(principal, key, group, body);
  }

  @ReadRoute('GET', ':key/groups/:group/pending', {
    summary: 'Pending entries: the summary per consumer and the entries (XPENDING)',
    body: PendingDto,
    problems: [NO_GROUP, WRONG_TYPE],
  })
  @keyParam
  @groupParam
  pending(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Query() query: PendingQuery,
  ): Promise<PendingDto> {
    return this.consumerGroups.pending(principal, key, group, query);
  }

  @WriteRoute('POST', ':key/groups/:group/claim', {
    summary: 'Take over entries left pending by another consumer (XAUTOCLAIM)',
    body: ClaimedDto,
    problems: [NO_GROUP, 406, WRONG_TYPE],
  })
  @keyParam
  @groupParam
  claim(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Body() body: ClaimDto,
  ): Promise<ClaimedDto> {
    return this.consumerGroups.claim(principal, key, group, body);
  }
}

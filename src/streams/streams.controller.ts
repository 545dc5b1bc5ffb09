import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiHeader,
  ApiNoContentResponse,
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
import { ApiProblems, ApiReadProblems, ApiWriteProblems } from '../errors/api-problems.decorator';
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
import { StreamTails } from './stream-tails';
import { StreamsService } from './streams.service';

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

/** Streams of API.md: entries, ranges, trimming, SSE tails and consumer groups. */
@ApiTags('streams')
@Controller('redis/streams')
export class StreamsController {
  constructor(
    private readonly streams: StreamsService,
    private readonly tails: StreamTails,
  ) {}

  @Post(':key/entries')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'A retry with the same key (and the same body) adds no second entry and answers the ' +
      'first id, for streams.idempotencyWindowS; the same key with another body gets 409',
  })
  @ApiOperation({
    summary:
      'Add an entry (XADD); trims to streams.maxLength (approximately) unless maxLen is given',
  })
  @ApiCreatedResponse({ type: EntryIdDto })
  @ApiWriteProblems()
  @ApiProblems(
    [
      409,
      'The explicit id is not above the last one (`STREAM_ID_TOO_SMALL`), the Idempotency-Key ' +
        'was used for another body (`IDEMPOTENCY_KEY_REUSED`) or another type (`WRONG_TYPE`)',
    ],
    413,
  )
  add(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: AddEntryDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
  ): Promise<EntryIdDto> {
    return this.streams.add(principal, key, body, idempotencyKey);
  }

  @Get(':key/entries')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({ summary: 'Entries in an id range (XRANGE, or XREVRANGE with reverse=true)' })
  @ApiOkResponse({ type: EntriesDto })
  @ApiReadProblems()
  @ApiProblems(NO_STREAM, 406, WRONG_TYPE)
  range(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: RangeQuery,
  ): Promise<EntriesDto> {
    return this.streams.range(principal, key, query);
  }

  @Get(':key/events')
  @RequireScopes(SCOPES.read)
  @AcceptsTicket()
  @keyParam
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'Resume after this entry id (browsers send it when they reconnect)',
  })
  @ApiOperation({ summary: 'Tail the stream as Server-Sent Events', description: TAIL_DESCRIPTION })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({ description: TAIL_DESCRIPTION, schema: { type: 'string' } })
  @ApiProblems(
    400,
    WRONG_TYPE,
    [429, 'This subject holds sse.maxClientsPerSubject streams (`TOO_MANY_SUBJECT_STREAMS`)'],
    [
      503,
      'Redis unreachable (`REDIS_UNAVAILABLE`), sse.maxClients streams open ' +
        '(`TOO_MANY_STREAMS`) or the blocking pool spent (`BLOCKING_POOL_EXHAUSTED`)',
    ],
    504,
  )
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

  @Delete(':key/entries/:id')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiParam({ name: 'id', description: 'The entry id' })
  @ApiOperation({ summary: 'Delete one entry (XDEL)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiWriteProblems()
  @ApiProblems([404, 'No such entry or stream (`NOT_FOUND`)'], WRONG_TYPE)
  deleteEntry(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('id') id: string,
  ): Promise<void> {
    return this.streams.deleteEntry(principal, key, id);
  }

  @Post(':key/trim')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Trim by length (maxLen) or by id (minId) (XTRIM)' })
  @ApiOkResponse({ type: TrimmedDto })
  @ApiWriteProblems()
  @ApiProblems(NO_STREAM, WRONG_TYPE)
  trim(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: TrimDto,
  ): Promise<TrimmedDto> {
    return this.streams.trim(principal, key, body);
  }

  @Post(':key/groups')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Create a consumer group (XGROUP CREATE, MKSTREAM by default)' })
  @ApiCreatedResponse({ type: GroupCreatedDto })
  @ApiWriteProblems()
  @ApiProblems(
    [404, 'The stream does not exist and mkStream is false (`NOT_FOUND`)'],
    [409, 'The group exists (`GROUP_EXISTS`) or the key holds another type (`WRONG_TYPE`)'],
  )
  createGroup(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: CreateGroupDto,
  ): Promise<GroupCreatedDto> {
    return this.streams.createGroup(principal, key, body);
  }

  @Get(':key/groups')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({ summary: 'The consumer groups with their pending count and lag (XINFO GROUPS)' })
  @ApiOkResponse({ type: GroupsDto })
  @ApiReadProblems()
  @ApiProblems(NO_STREAM, WRONG_TYPE)
  groups(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<GroupsDto> {
    return this.streams.groups(principal, key);
  }

  @Delete(':key/groups/:group')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @keyParam
  @groupParam
  @ApiOperation({ summary: 'Delete a consumer group (XGROUP DESTROY)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiWriteProblems()
  @ApiProblems(NO_GROUP, WRONG_TYPE)
  deleteGroup(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
  ): Promise<void> {
    return this.streams.deleteGroup(principal, key, group);
  }

  @Post(':key/groups/:group/read')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @groupParam
  @ApiOperation({
    summary:
      'Read new entries as a consumer of the group (XREADGROUP >); a write: it moves them to the pending list',
    description:
      'With blockMs, waits up to that long (at most limits.maxBlockMs) on a dedicated ' +
      'connection of the blocking pool; an empty list when nothing arrived.',
  })
  @ApiOkResponse({ type: GroupEntriesDto })
  @ApiWriteProblems()
  @ApiProblems(NO_GROUP, 406, WRONG_TYPE, [
    503,
    'Redis unreachable (`REDIS_UNAVAILABLE`) or every blocking connection in use ' +
      '(`BLOCKING_POOL_EXHAUSTED`), with Retry-After',
  ])
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
      return await this.streams.read(principal, key, group, body, abort.signal);
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
    return this.streams.ack(principal, key, group, body);
  }

  @Get(':key/groups/:group/pending')
  @RequireScopes(SCOPES.read)
  @keyParam
  @groupParam
  @ApiOperation({ summary: 'Pending entries: the summary per consumer and the entries (XPENDING)' })
  @ApiOkResponse({ type: PendingDto })
  @ApiReadProblems()
  @ApiProblems(NO_GROUP, WRONG_TYPE)
  pending(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Query() query: PendingQuery,
  ): Promise<PendingDto> {
    return this.streams.pending(principal, key, group, query);
  }

  @Post(':key/groups/:group/claim')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @groupParam
  @ApiOperation({
    summary: 'Take over entries left pending by another consumer (XAUTOCLAIM)',
  })
  @ApiOkResponse({ type: ClaimedDto })
  @ApiWriteProblems()
  @ApiProblems(NO_GROUP, 406, WRONG_TYPE)
  claim(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('group') group: string,
    @Body() body: ClaimDto,
  ): Promise<ClaimedDto> {
    return this.streams.claim(principal, key, group, body);
  }
}

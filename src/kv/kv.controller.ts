import { Body, Controller, Headers, Param, Query, Res } from '@nestjs/common';
import {
  ApiBody,
  ApiConsumes,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { DtoPipe, JsonOrOctetsPipe, OctetsPipe } from '../common/validation';
import { ANSWER_TOO_LARGE, ApiResponseHeaders } from '../errors/api-problems.decorator';
import type { CacheOutcome } from '../near-cache/near-cache';
import {
  CreateValueDto,
  GetValueQuery,
  IncrDto,
  KeysDto,
  ListKeysQuery,
  MgetDto,
  PutValueDto,
  RawPutQuery,
  TtlDto,
} from './dto/kv-requests.dto';
import {
  CounterDto,
  DeletedDto,
  KeyListDto,
  KeyTtlDto,
  ValueDto,
  ValuesDto,
} from './dto/kv-responses.dto';
import { KvService } from './kv.service';
import { ReadRoute, WriteRoute } from '../auth/route.decorator';

const OCTETS = 'application/octet-stream';
const WRONG_TYPE: [409, string] = [409, 'The key holds another type (`WRONG_TYPE`)'];
const keyParam = ApiParam({
  name: 'key',
  description: 'The key, URL-encoded (without the gateway key prefix)',
});

/** `Accept: application/octet-stream` (and not JSON) asks for the raw stored bytes. */
function wantsOctets(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes(OCTETS) && !accept.includes('application/json');
}

/** `X-Cache: HIT` or `MISS` on the reads the near-cache serves, when it is on. */
function cacheHeader(reply: FastifyReply, cache: CacheOutcome | undefined): void {
  if (cache !== undefined) {
    void reply.header('x-cache', cache);
  }
}

@ApiTags('key-value')
@ApiExtraModels(ValueDto, KeyListDto, PutValueDto)
@Controller('redis/kv')
export class KvController {
  constructor(private readonly kv: KvService) {}

  @ReadRoute('GET', '', {
    summary: 'Read one key (?key=) or list keys by prefix (?prefix=&cursor=&count=, SCAN paging)',
    problems: [404, 406, WRONG_TYPE, ANSWER_TOO_LARGE],
  })
  @ApiProduces('application/json', OCTETS)
  @ApiOkResponse({
    schema: { oneOf: [{ $ref: getSchemaPath(ValueDto) }, { $ref: getSchemaPath(KeyListDto) }] },
  })
  @ApiResponseHeaders({ 200: ['X-TTL', 'X-Cache'] })
  list(
    @CurrentPrincipal() principal: Principal,
    @Query() query: ListKeysQuery,
    @Headers('accept') accept: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ValueDto | KeyListDto | Buffer> {
    return query.key === undefined
      ? this.kv.list(principal, query)
      : this.read(principal, query.key, query, accept, reply);
  }

  @WriteRoute('POST', '', {
    summary: 'Set a key from a JSON body (201)',
    status: 201,
    body: KeyTtlDto,
    problems: [[409, 'nx/xx condition failed (`CONDITION_FAILED`)'], 413],
  })
  create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: CreateValueDto,
  ): Promise<KeyTtlDto> {
    return this.kv.create(principal, body);
  }

  @ReadRoute('POST', '_mget', {
    summary: 'Read many keys at once; only the keys that exist are answered',
    body: ValuesDto,
    problems: [406],
  })
  @ApiResponseHeaders({ 200: ['X-Cache'] })
  async mget(
    @CurrentPrincipal() principal: Principal,
    @Body() body: MgetDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ValuesDto> {
    const { dto, cache } = await this.kv.mget(principal, body);
    cacheHeader(reply, cache);
    return dto;
  }

  @WriteRoute('POST', '_delete', { summary: 'Delete many keys at once', body: DeletedDto })
  deleteMany(@CurrentPrincipal() principal: Principal, @Body() body: KeysDto): Promise<DeletedDto> {
    return this.kv.deleteMany(principal, body);
  }

  @ReadRoute('GET', ':key', {
    summary: 'Read a key: JSON, or the raw bytes with Accept: application/octet-stream',
    body: ValueDto,
    bodyDescription: 'With Accept: application/octet-stream, the raw value (TTL in X-TTL)',
    problems: [404, 406, WRONG_TYPE, ANSWER_TOO_LARGE],
  })
  @keyParam
  @ApiProduces('application/json', OCTETS)
  @ApiResponseHeaders({ 200: ['X-TTL', 'X-Cache'] })
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: GetValueQuery,
    @Headers('accept') accept: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ValueDto | Buffer> {
    return this.read(principal, key, query, accept, reply);
  }

  // Raw octets are still taken here for the callers that send them, but documented only on
  // PUT :key/raw: generators handle an operation with two request media types badly (some send
  // no Content-Type at all), so each documented operation has exactly one.
  @WriteRoute('PUT', ':key', {
    summary: 'Set a key from a JSON body (raw bytes: PUT /redis/kv/{key}/raw)',
    body: KeyTtlDto,
    problems: [[409, 'nx/xx condition failed (`CONDITION_FAILED`)'], 413, 415],
  })
  @keyParam
  @ApiOperation({
    summary: 'Set a key from a JSON body (raw bytes: PUT /redis/kv/{key}/raw)',
    requestBody: {
      required: true,
      content: { 'application/json': { schema: { $ref: getSchemaPath(PutValueDto) } } },
    },
  })
  put(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body(new JsonOrOctetsPipe(PutValueDto)) body: PutValueDto | Buffer,
    // Validated as RawPutQuery, but typed through Readonly<> so the document does not list the
    // raw options on the JSON form (where they are refused); PUT :key/raw documents them.
    @Query(new DtoPipe(RawPutQuery)) query: Readonly<RawPutQuery>,
  ): Promise<KeyTtlDto> {
    return this.kv.put(principal, key, body, query);
  }

  @WriteRoute('PUT', ':key/raw', {
    summary: 'Set a key to the raw request bytes (options in the query)',
    body: KeyTtlDto,
    problems: [[409, 'nx/xx condition failed (`CONDITION_FAILED`)'], 413, 415],
  })
  @keyParam
  @ApiConsumes(OCTETS)
  @ApiBody({ required: true, schema: { type: 'string', format: 'binary' } })
  putRaw(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body(OctetsPipe) body: Buffer,
    @Query() query: RawPutQuery,
  ): Promise<KeyTtlDto> {
    return this.kv.put(principal, key, body, query);
  }

  @WriteRoute('DELETE', ':key', { summary: 'Delete a key', status: 204, problems: [404] })
  @keyParam
  delete(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<void> {
    return this.kv.delete(principal, key);
  }

  @ReadRoute('GET', ':key/ttl', {
    summary: "A key's time to live in seconds (-1: no expiry)",
    body: KeyTtlDto,
    problems: [404],
  })
  @keyParam
  getTtl(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<KeyTtlDto> {
    return this.kv.getTtl(principal, key);
  }

  @WriteRoute('PUT', ':key/ttl', {
    summary: 'Set the expiry of an existing key (EXPIRE)',
    body: KeyTtlDto,
    problems: [404],
  })
  @keyParam
  setTtl(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: TtlDto,
  ): Promise<KeyTtlDto> {
    return this.kv.setTtl(principal, key, body.ttl);
  }

  @WriteRoute('DELETE', ':key/ttl', {
    summary: 'Remove the expiry of an existing key (PERSIST)',
    body: KeyTtlDto,
    problems: [404],
  })
  @keyParam
  persist(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<KeyTtlDto> {
    return this.kv.persist(principal, key);
  }

  @WriteRoute('POST', ':key/incr', {
    summary: 'Increment a number (INCRBY for integers, INCRBYFLOAT otherwise)',
    body: CounterDto,
    problems: [
      [
        409,
        'Not a number (`NOT_A_NUMBER`), result out of range (`OUT_OF_RANGE`) or another type (`WRONG_TYPE`)',
      ],
    ],
  })
  @keyParam
  incr(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: IncrDto,
  ): Promise<CounterDto> {
    return this.kv.incr(principal, key, body);
  }

  private async read(
    principal: Principal,
    key: string,
    query: GetValueQuery,
    accept: string | undefined,
    reply: FastifyReply,
  ): Promise<ValueDto | Buffer> {
    if (!wantsOctets(accept)) {
      const { dto, cache } = await this.kv.get(principal, key, query.encoding);
      cacheHeader(reply, cache);
      return dto;
    }
    const { bytes, ttl, cache } = await this.kv.getBytes(principal, key);
    void reply.type(OCTETS).header('x-ttl', String(ttl));
    cacheHeader(reply, cache);
    return bytes;
  }
}

import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Put,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiExtraModels,
  ApiNoContentResponse,
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
import { RequireScopes } from '../auth/require-scopes.decorator';
import { SCOPES } from '../auth/scopes';
import { ApiProblems, ApiReadProblems, ApiWriteProblems } from '../errors/api-problems.decorator';
import { JsonOrOctetsPipe } from '../common/validation';
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

@ApiTags('key-value')
@ApiExtraModels(ValueDto, KeyListDto, PutValueDto)
@Controller('redis/kv')
export class KvController {
  constructor(private readonly kv: KvService) {}

  @Get()
  @RequireScopes(SCOPES.read)
  @ApiOperation({
    summary: 'Read one key (?key=) or list keys by prefix (?prefix=&cursor=&count=, SCAN paging)',
  })
  @ApiProduces('application/json', OCTETS)
  @ApiOkResponse({
    schema: { oneOf: [{ $ref: getSchemaPath(ValueDto) }, { $ref: getSchemaPath(KeyListDto) }] },
  })
  @ApiReadProblems()
  @ApiProblems(404, 406, WRONG_TYPE)
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

  @Post()
  @RequireScopes(SCOPES.write)
  @ApiOperation({ summary: 'Set a key from a JSON body (the original design)' })
  @ApiCreatedResponse({ type: KeyTtlDto })
  @ApiWriteProblems()
  @ApiProblems([409, 'nx/xx condition failed (`CONDITION_FAILED`)'], 413)
  create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: CreateValueDto,
  ): Promise<KeyTtlDto> {
    return this.kv.create(principal, body);
  }

  @Post('_mget')
  @HttpCode(200)
  @RequireScopes(SCOPES.read)
  @ApiOperation({ summary: 'Read many keys at once; only the keys that exist are answered' })
  @ApiOkResponse({ type: ValuesDto })
  @ApiReadProblems()
  @ApiProblems(406)
  mget(@CurrentPrincipal() principal: Principal, @Body() body: MgetDto): Promise<ValuesDto> {
    return this.kv.mget(principal, body);
  }

  @Post('_delete')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @ApiOperation({ summary: 'Delete many keys at once' })
  @ApiOkResponse({ type: DeletedDto })
  @ApiWriteProblems()
  deleteMany(@CurrentPrincipal() principal: Principal, @Body() body: KeysDto): Promise<DeletedDto> {
    return this.kv.deleteMany(principal, body);
  }

  @Get(':key')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({
    summary: 'Read a key: JSON, or the raw bytes with Accept: application/octet-stream',
  })
  @ApiProduces('application/json', OCTETS)
  @ApiOkResponse({
    type: ValueDto,
    description: 'With Accept: application/octet-stream, the raw value (TTL in X-TTL)',
  })
  @ApiReadProblems()
  @ApiProblems(404, 406, WRONG_TYPE)
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: GetValueQuery,
    @Headers('accept') accept: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ValueDto | Buffer> {
    return this.read(principal, key, query, accept, reply);
  }

  @Put(':key')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({
    summary: 'Set a key from a JSON body, or from raw octets (options in the query)',
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { $ref: getSchemaPath(PutValueDto) } },
        [OCTETS]: { schema: { type: 'string', format: 'binary' } },
      },
    },
  })
  @ApiOkResponse({ type: KeyTtlDto })
  @ApiWriteProblems()
  @ApiProblems([409, 'nx/xx condition failed (`CONDITION_FAILED`)'], 413, 415)
  put(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body(new JsonOrOctetsPipe(PutValueDto)) body: PutValueDto | Buffer,
    @Query() query: RawPutQuery,
  ): Promise<KeyTtlDto> {
    return this.kv.put(principal, key, body, query);
  }

  @Delete(':key')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Delete a key' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiWriteProblems()
  @ApiProblems(404)
  delete(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<void> {
    return this.kv.delete(principal, key);
  }

  @Get(':key/ttl')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({ summary: "A key's time to live in seconds (-1: no expiry)" })
  @ApiOkResponse({ type: KeyTtlDto })
  @ApiReadProblems()
  @ApiProblems(404)
  getTtl(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<KeyTtlDto> {
    return this.kv.getTtl(principal, key);
  }

  @Put(':key/ttl')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Set the expiry of an existing key (EXPIRE)' })
  @ApiOkResponse({ type: KeyTtlDto })
  @ApiWriteProblems()
  @ApiProblems(404)
  setTtl(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: TtlDto,
  ): Promise<KeyTtlDto> {
    return this.kv.setTtl(principal, key, body.ttl);
  }

  @Delete(':key/ttl')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Remove the expiry of an existing key (PERSIST)' })
  @ApiOkResponse({ type: KeyTtlDto })
  @ApiWriteProblems()
  @ApiProblems(404)
  persist(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<KeyTtlDto> {
    return this.kv.persist(principal, key);
  }

  @Post(':key/incr')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Increment a number (INCRBY for integers, INCRBYFLOAT otherwise)' })
  @ApiOkResponse({ type: CounterDto })
  @ApiWriteProblems()
  @ApiProblems([
    409,
    'Not a number (`NOT_A_NUMBER`), result out of range (`OUT_OF_RANGE`) or another type (`WRONG_TYPE`)',
  ])
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
      return this.kv.get(principal, key, query.encoding);
    }
    const { bytes, ttl } = await this.kv.getBytes(principal, key);
    void reply.type(OCTETS).header('x-ttl', String(ttl));
    return bytes;
  }
}

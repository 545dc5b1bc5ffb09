import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import {
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
import { EncodingOption } from '../common/value-codec';
import { ApiProblems, ApiReadProblems, ApiWriteProblems } from '../errors/api-problems.decorator';
import { IncrDto } from '../kv/dto/kv-requests.dto';
import { HashMgetDto, PutHashDto } from './dto/hash-requests.dto';
import { HashAddedDto, HashCounterDto, HashDto, HashFieldDto } from './dto/hash-responses.dto';
import { HashesService } from './hashes.service';

const WRONG_TYPE: [409, string] = [409, 'The key holds another type (`WRONG_TYPE`)'];
const keyParam = ApiParam({
  name: 'key',
  description: 'The key of the hash, URL-encoded (without the gateway key prefix)',
});
const fieldParam = ApiParam({ name: 'field', description: 'The field name, URL-encoded' });

@ApiTags('hashes')
@Controller('redis/hashes')
export class HashesController {
  constructor(private readonly hashes: HashesService) {}

  @Get(':key')
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({ summary: 'Read every field of a hash (HGETALL)' })
  @ApiOkResponse({ type: HashDto })
  @ApiReadProblems()
  @ApiProblems(404, [406, 'A value or field name is not UTF-8 text (`NOT_UTF8`)'], WRONG_TYPE)
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: EncodingOption,
  ): Promise<HashDto> {
    return this.hashes.get(principal, key, query.encoding);
  }

  @Put(':key')
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({
    summary: 'Merge fields into a hash (HSET), with an optional expiry set in the same step',
  })
  @ApiOkResponse({ type: HashAddedDto })
  @ApiWriteProblems()
  @ApiProblems(WRONG_TYPE, 413)
  put(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: PutHashDto,
  ): Promise<HashAddedDto> {
    return this.hashes.put(principal, key, body);
  }

  @Delete(':key')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @keyParam
  @ApiOperation({ summary: 'Delete a hash (only a hash: another type is left alone)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiWriteProblems()
  @ApiProblems(404, WRONG_TYPE)
  delete(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<void> {
    return this.hashes.delete(principal, key);
  }

  @Post(':key/_mget')
  @HttpCode(200)
  @RequireScopes(SCOPES.read)
  @keyParam
  @ApiOperation({
    summary: 'Read many fields at once (HMGET); only the fields that exist are answered',
  })
  @ApiOkResponse({ type: HashDto })
  @ApiReadProblems()
  @ApiProblems(406, WRONG_TYPE)
  mget(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: HashMgetDto,
  ): Promise<HashDto> {
    return this.hashes.mget(principal, key, body);
  }

  @Get(':key/fields/:field')
  @RequireScopes(SCOPES.read)
  @keyParam
  @fieldParam
  @ApiOperation({ summary: 'Read one field of a hash (HGET)' })
  @ApiOkResponse({ type: HashFieldDto })
  @ApiReadProblems()
  @ApiProblems(404, 406, WRONG_TYPE)
  getField(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
    @Query() query: EncodingOption,
  ): Promise<HashFieldDto> {
    return this.hashes.getField(principal, key, field, query.encoding);
  }

  @Delete(':key/fields/:field')
  @HttpCode(204)
  @RequireScopes(SCOPES.write)
  @keyParam
  @fieldParam
  @ApiOperation({ summary: 'Delete one field of a hash (HDEL)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiWriteProblems()
  @ApiProblems(404, WRONG_TYPE)
  deleteField(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
  ): Promise<void> {
    return this.hashes.deleteField(principal, key, field);
  }

  @Post(':key/fields/:field/incr')
  @HttpCode(200)
  @RequireScopes(SCOPES.write)
  @keyParam
  @fieldParam
  @ApiOperation({
    summary: 'Increment a field (HINCRBY for integers, HINCRBYFLOAT otherwise)',
  })
  @ApiOkResponse({ type: HashCounterDto })
  @ApiWriteProblems()
  @ApiProblems([
    409,
    'Not a number (`NOT_A_NUMBER`), result out of range (`OUT_OF_RANGE`) or another type (`WRONG_TYPE`)',
  ])
  incr(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
    @Body() body: IncrDto,
  ): Promise<HashCounterDto> {
    return this.hashes.incr(principal, key, field, body);
  }
}

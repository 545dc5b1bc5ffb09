import { Body, Controller, Param, Query } from '@nestjs/common';
import { ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal } from '../auth/current-principal.decorator';
import type { Principal } from '../auth/principal';
import { EncodingOption } from '../common/value-codec';
import { ANSWER_TOO_LARGE } from '../errors/api-problems.decorator';
import { IncrDto } from '../kv/dto/kv-requests.dto';
import { HashMgetDto, PutHashDto } from './dto/hash-requests.dto';
import { HashAddedDto, HashCounterDto, HashDto, HashFieldDto } from './dto/hash-responses.dto';
import { HashesService } from './hashes.service';
import { ReadRoute, WriteRoute } from '../auth/route.decorator';

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

  @ReadRoute('GET', ':key', {
    summary: 'Read every field of a hash (HGETALL)',
    body: HashDto,
    problems: [
      404,
      [406, 'A value or field name is not UTF-8 text (`NOT_UTF8`)'],
      WRONG_TYPE,
      ANSWER_TOO_LARGE,
    ],
  })
  @keyParam
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Query() query: EncodingOption,
  ): Promise<HashDto> {
    return this.hashes.get(principal, key, query.encoding);
  }

  @WriteRoute('PUT', ':key', {
    summary: 'Merge fields into a hash (HSET), with an optional expiry set in the same step',
    body: HashAddedDto,
    problems: [WRONG_TYPE, 413],
  })
  @keyParam
  put(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: PutHashDto,
  ): Promise<HashAddedDto> {
    return this.hashes.put(principal, key, body);
  }

  @WriteRoute('DELETE', ':key', {
    summary: 'Delete a hash (only a hash: another type is left alone)',
    status: 204,
    problems: [404, WRONG_TYPE],
  })
  @keyParam
  delete(@CurrentPrincipal() principal: Principal, @Param('key') key: string): Promise<void> {
    return this.hashes.delete(principal, key);
  }

  @ReadRoute('POST', ':key/_mget', {
    summary: 'Read many fields at once (HMGET); only the fields that exist are answered',
    body: HashDto,
    problems: [406, WRONG_TYPE],
  })
  @keyParam
  mget(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Body() body: HashMgetDto,
  ): Promise<HashDto> {
    return this.hashes.mget(principal, key, body);
  }

  @ReadRoute('GET', ':key/fields/:field', {
    summary: 'Read one field of a hash (HGET)',
    body: HashFieldDto,
    problems: [404, 406, WRONG_TYPE, ANSWER_TOO_LARGE],
  })
  @keyParam
  @fieldParam
  getField(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
    @Query() query: EncodingOption,
  ): Promise<HashFieldDto> {
    return this.hashes.getField(principal, key, field, query.encoding);
  }

  @WriteRoute('DELETE', ':key/fields/:field', {
    summary: 'Delete one field of a hash (HDEL)',
    status: 204,
    problems: [404, WRONG_TYPE],
  })
  @keyParam
  @fieldParam
  deleteField(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
  ): Promise<void> {
    return this.hashes.deleteField(principal, key, field);
  }

  @WriteRoute('POST', ':key/fields/:field/incr', {
    summary: 'Increment a field (HINCRBY for integers, HINCRBYFLOAT otherwise)',
    body: HashCounterDto,
    problems: [
      [
        409,
        'Not a number (`NOT_A_NUMBER`), result out of range (`OUT_OF_RANGE`) or another type (`WRONG_TYPE`)',
      ],
    ],
  })
  @keyParam
  @fieldParam
  incr(
    @CurrentPrincipal() principal: Principal,
    @Param('key') key: string,
    @Param('field') field: string,
    @Body() body: IncrDto,
  ): Promise<HashCounterDto> {
    return this.hashes.incr(principal, key, field, body);
  }
}

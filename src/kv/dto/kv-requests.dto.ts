import { ApiProperty, ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import {
  IsArray,
  IsBoolean,
  IsInt,
  IsNumber,
  IsString,
  Matches,
  Max,
  Min,
  ValidateBy,
} from 'class-validator';
import { NotWith, Optional, QueryBool, QueryInt } from '../../common/validation';
import { EncodingOption } from '../../common/value-codec';

/** TTLs are whole seconds from 1 up to 2^31 - 1 (about 68 years). */
export const MAX_TTL_SECONDS = 2147483647;

const ttlDescription = 'Expiry in whole seconds (1 to 2147483647); omit for no expiry';

export class SetOptions extends EncodingOption {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: ttlDescription,
  })
  @Optional()
  @IsInt()
  @Min(1)
  @Max(MAX_TTL_SECONDS)
  ttl?: number;

  @ApiPropertyOptional({ description: 'Only set the key if it does not exist (409 otherwise)' })
  @Optional()
  @IsBoolean()
  nx?: boolean;

  @ApiPropertyOptional({ description: 'Only set the key if it already exists (409 otherwise)' })
  @Optional()
  @IsBoolean()
  xx?: boolean;
}

export class CreateValueDto extends SetOptions {
  @ApiProperty({
    description: 'The key (without the gateway key prefix)',
    example: 'cache:user:42',
  })
  @IsString()
  key!: string;

  @ApiProperty({ description: 'The value: text, or base64 with encoding=base64', example: 'hello' })
  @IsString()
  value!: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: 'Same as `ttl`; give one of the two',
  })
  @Optional()
  @IsInt()
  @Min(1)
  @Max(MAX_TTL_SECONDS)
  expire?: number;
}

export class PutValueDto extends SetOptions {
  @ApiProperty({ description: 'The value: text, or base64 with encoding=base64', example: 'hello' })
  @IsString()
  value!: string;

  @ApiPropertyOptional({ description: "Keep the key's current expiry (not with `ttl`)" })
  @Optional()
  @IsBoolean()
  keepTtl?: boolean;
}

/** Options of a raw `application/octet-stream` PUT, which travel in the query string. */
export class RawPutQuery {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: `${ttlDescription} (raw bodies only)`,
  })
  @QueryInt()
  @Optional()
  @IsInt()
  @Min(1)
  @Max(MAX_TTL_SECONDS)
  ttl?: number;

  @ApiPropertyOptional({ type: Boolean, description: 'NX (raw bodies only)' })
  @QueryBool()
  @Optional()
  @IsBoolean()
  nx?: boolean;

  @ApiPropertyOptional({ type: Boolean, description: 'XX (raw bodies only)' })
  @QueryBool()
  @Optional()
  @IsBoolean()
  xx?: boolean;

  @ApiPropertyOptional({ type: Boolean, description: 'KEEPTTL (raw bodies only)' })
  @QueryBool()
  @Optional()
  @IsBoolean()
  keepTtl?: boolean;
}

export class GetValueQuery extends EncodingOption {}

export class ListKeysQuery extends EncodingOption {
  @ApiPropertyOptional({ description: 'Read this one key (same answer as GET /redis/kv/{key})' })
  @Optional()
  @IsString()
  key?: string;

  @ApiPropertyOptional({ description: 'List the keys that start with this text (literally)' })
  @NotWith('key')
  @Optional()
  @IsString()
  prefix?: string;

  @ApiPropertyOptional({
    description:
      'The `cursor` of the previous page, as it came (an opaque token: its form depends on the ' +
      'Redis topology and may change); "0" or absent to start',
    pattern: '^[0-9A-Za-z_-]{1,64}$',
    example: '0',
  })
  @NotWith('key')
  @Optional()
  @Matches(/^[0-9A-Za-z_-]{1,64}$/, {
    message: 'cursor must be a cursor returned by a previous page',
  })
  cursor?: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Keys to aim for per page, 100 by default (a hint, as in SCAN)',
  })
  @QueryInt()
  @NotWith('key')
  @Optional()
  @IsInt()
  @Min(1)
  count?: number;
}

export class KeysDto {
  @ApiProperty({ type: [String], description: 'At most limits.maxBatchKeys keys' })
  @IsArray()
  @IsString({ each: true })
  keys!: string[];
}

export class MgetDto extends IntersectionType(KeysDto, EncodingOption) {}

export class TtlDto {
  @ApiProperty({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: 'Expiry in whole seconds',
  })
  @IsInt()
  @Min(1)
  @Max(MAX_TTL_SECONDS)
  ttl!: number;
}

export class IncrDto {
  @ApiPropertyOptional({
    description:
      'An integer (INCRBY, exact within ±2^53-1) or a decimal number (INCRBYFLOAT); 1 by default',
  })
  @Optional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @ValidateBy({
    name: 'safeIncrement',
    validator: {
      validate: (by: unknown) =>
        typeof by !== 'number' || !Number.isInteger(by) || Number.isSafeInteger(by),
      defaultMessage: () => 'by must be an integer within +/-(2^53 - 1), or a decimal number',
    },
  })
  by?: number;
}

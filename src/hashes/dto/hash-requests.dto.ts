import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsArray,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
  ValidateBy,
} from 'class-validator';
import { EncodingOption } from '../../common/value-codec';
import { MAX_TTL_SECONDS } from '../../kv/dto/kv-requests.dto';

/** Every value of a JSON object is a string (names are checked by the service: Keyspace). */
const StringValues = (): PropertyDecorator =>
  ValidateBy({
    name: 'stringValues',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'object' &&
        value !== null &&
        Object.values(value).every((item) => typeof item === 'string'),
      defaultMessage: (args) => `every value in ${args?.property} must be a string`,
    },
  });

export class PutHashDto extends EncodingOption {
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description:
      'Field names and values (text, or base64 with encoding=base64); merged into the hash. ' +
      'At most limits.maxBatchKeys fields, each value at most limits.maxValueBytes',
    example: { name: 'Ada', born: '1815' },
  })
  @IsObject()
  @StringValues()
  fields!: Record<string, string>;

  @ApiPropertyOptional({
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: "Expiry of the whole hash in whole seconds; omit to leave the key's expiry as is",
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_TTL_SECONDS)
  ttl?: number;
}

export class HashMgetDto extends EncodingOption {
  @ApiProperty({ type: [String], description: 'Field names, at most limits.maxBatchKeys' })
  @IsArray()
  @IsString({ each: true })
  fields!: string[];
}

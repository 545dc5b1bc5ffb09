import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsArray, IsInt, IsString, Max, Min } from 'class-validator';
import { EncodingOption } from '../../common/value-codec';
import { Optional, StringMap } from '../../common/validation';
import { MAX_TTL_SECONDS } from '../../kv/dto/kv-requests.dto';

export class PutHashDto extends EncodingOption {
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description:
      'Field names and values (text, or base64 with encoding=base64); merged into the hash. ' +
      'At most limits.maxBatchKeys fields, each value at most limits.maxValueBytes',
    example: { name: 'Ada', born: '1815' },
  })
  @StringMap()
  fields!: Record<string, string>;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_TTL_SECONDS,
    description: "Expiry of the whole hash in whole seconds; omit to leave the key's expiry as is",
  })
  @Optional()
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

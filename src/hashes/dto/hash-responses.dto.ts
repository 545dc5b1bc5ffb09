import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class HashDto {
  @ApiProperty({ example: 'user:42' })
  key!: string;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'Field names and values (only the fields that exist)',
    example: { name: 'Ada', born: '1815' },
  })
  fields!: Record<string, string>;

  @ApiPropertyOptional({ enum: ['utf8', 'base64'] })
  encoding?: 'utf8' | 'base64';
}

export class HashFieldDto {
  @ApiProperty({ example: 'user:42' })
  key!: string;

  @ApiProperty({ example: 'name' })
  field!: string;

  @ApiProperty({ example: 'Ada' })
  value!: string;

  @ApiPropertyOptional({ enum: ['utf8', 'base64'] })
  encoding?: 'utf8' | 'base64';
}

export class HashAddedDto {
  @ApiProperty({ example: 'user:42' })
  key!: string;

  @ApiProperty({ type: 'integer', description: 'How many fields were new (HSET)', example: 2 })
  added!: number;
}

export class HashCounterDto {
  @ApiProperty({ example: 'stats:page' })
  key!: string;

  @ApiProperty({ example: 'visits' })
  field!: string;

  @ApiProperty({ example: 43 })
  value!: number;
}

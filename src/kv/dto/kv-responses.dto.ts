import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class ValueDto {
  @ApiProperty({ example: 'cache:user:42' })
  key!: string;

  @ApiProperty({ example: 'hello' })
  value!: string;

  @ApiProperty({
    type: 'integer',
    description: 'Seconds until expiry; -1 means no expiry',
    example: -1,
  })
  ttl!: number;

  @ApiPropertyOptional({ enum: ['utf8', 'base64'] })
  encoding?: 'utf8' | 'base64';
}

export class KeyTtlDto {
  @ApiProperty({ example: 'cache:user:42' })
  key!: string;

  @ApiProperty({
    type: 'integer',
    description: 'Seconds until expiry; -1 means no expiry',
    example: 60,
  })
  ttl!: number;
}

export class KeyListDto {
  @ApiProperty({ type: [String] })
  keys!: string[];

  @ApiProperty({
    description:
      'Pass it back as it is for the next page (an opaque token; in cluster mode it spans every ' +
      'master); "0" when done',
    example: '0',
  })
  cursor!: string;
}

export class ValuesDto {
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'Only the keys that exist',
    example: { 'cache:a': '1' },
  })
  values!: Record<string, string>;
}

export class DeletedDto {
  @ApiProperty({ type: 'integer', example: 2 })
  deleted!: number;
}

export class CounterDto {
  @ApiProperty({ example: 'counter:visits' })
  key!: string;

  @ApiProperty({ example: 43 })
  value!: number;
}

import { ApiProperty } from '@nestjs/swagger';
import { IsString } from 'class-validator';
import { EncodingOption } from '../../common/value-codec';

export class PublishDto extends EncodingOption {
  @ApiProperty({ description: 'The message: text, or base64 with encoding=base64', example: 'hi' })
  @IsString()
  message!: string;
}

export class PublishedDto {
  @ApiProperty()
  channel!: string;

  @ApiProperty({
    type: 'integer',
    description:
      "Redis's count of receivers: each gateway instance counts once per channel and once per " +
      'matching pattern it subscribes to, however many SSE clients it serves',
  })
  receivers!: number;
}

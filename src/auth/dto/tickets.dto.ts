import { ApiProperty } from '@nestjs/swagger';
import { IsString } from 'class-validator';

export class TicketRequestDto {
  @ApiProperty({
    description:
      'The SSE path the ticket opens, exactly as it will be requested (URL-encoded names)',
    example: '/redis/pubsub/channels/news/events',
  })
  @IsString()
  path!: string;
}

export class TicketDto {
  @ApiProperty({ description: 'Pass as ?ticket= on that one path, once, within 30 s' })
  ticket!: string;

  @ApiProperty({ description: 'When the ticket expires (ISO 8601)' })
  expiresAt!: string;
}

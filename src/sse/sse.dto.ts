import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString } from 'class-validator';
import { EncodingOption } from '../common/value-codec';
import { Optional } from '../common/validation';

/** The query of every SSE endpoint: the encoding of payloads, and a browser's stream ticket. */
export class EventsQuery extends EncodingOption {
  @ApiPropertyOptional({
    description:
      'A single-use ticket from POST /redis/tickets, in place of the Authorization header ' +
      "(browsers' EventSource cannot send headers); never the access token itself",
  })
  @Optional()
  @IsString()
  ticket?: string;
}

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

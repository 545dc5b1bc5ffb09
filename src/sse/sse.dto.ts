import { ApiPropertyOptional } from '@nestjs/swagger';
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

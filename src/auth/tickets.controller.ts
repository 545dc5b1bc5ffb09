import { Body, Controller } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal } from './current-principal.decorator';
import { TicketDto, TicketRequestDto } from './dto/tickets.dto';
import type { Principal } from './principal';
import { TicketsService } from './tickets.service';
import { ReadRoute } from './route.decorator';

@ApiTags('pub/sub')
@Controller('redis/tickets')
export class TicketsController {
  constructor(private readonly tickets: TicketsService) {}

  @ReadRoute('POST', '', {
    summary: "A single-use ticket that opens one SSE path without a header (browsers' EventSource)",
    description:
      'Valid for 30 s (never past the token), bound to the token subject, scopes and key ' +
      'patterns and to that one path: open it as `<path>?ticket=<ticket>`. Every SSE path ' +
      'needs redis:read, so a ticket does too.',
    body: TicketDto,
    problems: [400, 503, 504],
  })
  issue(
    @CurrentPrincipal() principal: Principal,
    @Body() body: TicketRequestDto,
  ): Promise<TicketDto> {
    return this.tickets.issue(principal, body.path);
  }
}

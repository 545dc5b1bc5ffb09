import { SetMetadata, applyDecorators } from '@nestjs/common';
import { ApiSecurity } from '@nestjs/swagger';

export const ACCEPTS_TICKET = 'auth:acceptsTicket';
export const TICKET_SCHEME = 'ticket';

/**
 * The route (an SSE endpoint) also accepts a single-use stream ticket in `?ticket=` in place of
 * the Authorization header, for browsers' EventSource (see tickets.service.ts). In OpenAPI the
 * ticket is a second security requirement: the bearer token or the ticket.
 */
export const AcceptsTicket = (): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(ACCEPTS_TICKET, true), ApiSecurity(TICKET_SCHEME));

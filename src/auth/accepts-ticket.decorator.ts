import { SetMetadata } from '@nestjs/common';

export const ACCEPTS_TICKET = 'auth:acceptsTicket';

/**
 * The route (an SSE endpoint) also accepts a single-use stream ticket in `?ticket=` in place of
 * the Authorization header, for browsers' EventSource (see tickets.service.ts).
 */
export const AcceptsTicket = (): MethodDecorator & ClassDecorator =>
  SetMetadata(ACCEPTS_TICKET, true);

import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { RateLimits } from './rate-limits';

/**
 * Spends one of the caller's requests (rateLimits.requestsPerSecond, burst) right after
 * authentication, before the scope check and any work: 429 RATE_LIMITED when spent. Public
 * routes (health, metrics) have no caller and are not limited.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(private readonly limits: RateLimits) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const principal = context.switchToHttp().getRequest<FastifyRequest>().user;
    if (!principal) {
      return true;
    }
    const pending = this.limits.checkRequest(principal.sub);
    return pending ? pending.then(() => true) : true;
  }
}

import { Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error';
import { hasScopes, principalOf } from './principal';
import { IS_PUBLIC } from '../common/public.decorator';
import { REQUIRED_SCOPES } from './require-scopes.decorator';
import type { Scope } from './scopes';

/**
 * Requires every scope a route declares with `@RequireScopes()`. Fail-closed: a route with
 * neither scopes nor `@Public()` is refused for everyone.
 */
@Injectable()
export class ScopesGuard implements CanActivate {
  private readonly logger = new Logger(ScopesGuard.name);

  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    const required = this.reflector.getAllAndOverride<Scope[] | undefined>(
      REQUIRED_SCOPES,
      targets,
    );
    if (!required || required.length === 0) {
      this.logger.error(
        { handler: `${context.getClass().name}.${context.getHandler().name}` },
        'route declares no scopes and is not @Public(): refused',
      );
      throw new AppError('INSUFFICIENT_SCOPE', 'This operation is not available.');
    }
    const principal = principalOf(context.switchToHttp().getRequest<FastifyRequest>());
    if (!hasScopes(principal, required)) {
      throw new AppError(
        'INSUFFICIENT_SCOPE',
        `This operation needs the scope ${required.join(' ')}.`,
        {
          headers: {
            'www-authenticate': `Bearer error="insufficient_scope", scope="${required.join(' ')}"`,
          },
        },
      );
    }
    return true;
  }
}

import { Injectable, Logger, type INestApplicationContext } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error';
import { RateLimits } from '../limits/rate-limits';
import { Authenticator } from './authenticator';
import { hasScopes, type Principal } from './principal';
import { discoverRoutes, RouteAccessTable, type RouteAccess } from './route-access';

/** 403 for a route that needs a scope the caller lacks, with the challenge RFC 6750 names. */
function insufficientScope(required: readonly string[]): AppError {
  return new AppError(
    'INSUFFICIENT_SCOPE',
    `This operation needs the scope ${required.join(' ')}.`,
    {
      headers: {
        'www-authenticate': `Bearer error="insufficient_scope", scope="${required.join(' ')}"`,
      },
    },
  );
}

/**
 * Whether a caller may use a route by its scopes: null when it may, else the error to answer.
 * Fail-closed: a route that is neither public nor declares a scope is refused for everyone.
 */
export function scopeRefusal(access: RouteAccess, principal: Principal): AppError | null {
  const required = access.scopes;
  if (!required || required.length === 0) {
    return new AppError('INSUFFICIENT_SCOPE', 'This operation is not available.');
  }
  return hasScopes(principal, required) ? null : insufficientScope(required);
}

/**
 * Every request to a controller route, before its body is even read: who calls (401), whether
 * its request rate allows it (429), and whether its token has the route's scopes (403), as one
 * Fastify onRequest hook compiled from the routes' decorators at start-up. A token in the cache
 * and an in-memory rate limit make it synchronous: no promise on the hot path. Routes no
 * controller declares (the OpenAPI UI, a plugin's own) are not its business; a controller
 * route without annotations is refused (and logged, for it is a bug).
 */
@Injectable()
export class RequestGuard {
  private readonly logger = new Logger('Auth');

  constructor(
    private readonly authenticator: Authenticator,
    private readonly limits: RateLimits,
  ) {}

  install(fastify: FastifyInstance, app: INestApplicationContext): void {
    const routes = discoverRoutes(app);
    const table = new RouteAccessTable(routes);
    for (const route of routes) {
      if (!route.isPublic && (!route.scopes || route.scopes.length === 0)) {
        this.logger.error(
          { handler: route.handler },
          'route declares no scopes and is not @Public(): refused',
        );
      }
    }
    fastify.addHook('onRequest', (request, reply, done) => {
      const template = request.routeOptions.url;
      const access = template === undefined ? undefined : table.of(request.method, template);
      if (access === undefined || access.isPublic) {
        done();
        return;
      }
      this.admit(request, reply, access, done);
    });
  }

  private admit(
    request: FastifyRequest,
    _reply: FastifyReply,
    access: RouteAccess,
    done: (error?: Error) => void,
  ): void {
    const allow = (principal: Principal): void | Promise<void> => {
      request.user = principal;
      const limited = this.limits.checkRequest(principal.sub);
      const refusal = scopeRefusal(access, principal);
      if (limited) {
        return limited.then(() => {
          if (refusal) {
            throw refusal;
          }
        });
      }
      if (refusal) {
        throw refusal;
      }
    };
    let pending: void | Promise<void>;
    try {
      const principal = this.authenticator.principal(request, access.acceptsTicket);
      pending = principal instanceof Promise ? principal.then(allow) : allow(principal);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (pending) {
      pending.then(
        () => done(),
        (error: unknown) => done(error as Error),
      );
    } else {
      done();
    }
  }
}

import { Injectable, Logger, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { JwksKeyResolver } from './jwks';
import { TokenClaimsError } from './jwt.strategy';
import { IS_PUBLIC } from './public.decorator';

export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';

/** A short, stable reason for the auth-failure metric; never the token or its claims. */
export function failureReason(error: unknown): string {
  if (error instanceof TokenClaimsError) {
    return error.reason;
  }
  if (!(error instanceof Error)) {
    return 'unknown';
  }
  switch (error.name) {
    case 'TokenExpiredError':
      return 'expired';
    case 'NotBeforeError':
      return 'not_yet_valid';
    default:
      break;
  }
  const message = error.message;
  if (message === 'No auth token') {
    return 'missing';
  }
  if (/audience/.test(message)) {
    return 'audience';
  }
  if (/issuer/.test(message)) {
    return 'issuer';
  }
  if (/algorithm|signature is required/.test(message)) {
    return 'algorithm';
  }
  if (/secret or public key must be provided/.test(message)) {
    return 'unknown_key';
  }
  if (/signature/.test(message)) {
    return 'bad_signature';
  }
  return 'malformed';
}

/**
 * The global authentication guard: every route needs a valid bearer token unless it is
 * `@Public()`. A token is read from the Authorization header only; one sent in the URL is
 * never used, and two ways at once are refused (RFC 6750 §2).
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  private readonly logger = new Logger(JwtAuthGuard.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: JwksKeyResolver,
    private readonly metrics: GatewayMetrics,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) {
      return true;
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    this.checkTransport(request);
    await this.keys.ready();
    return (await super.canActivate(context)) as boolean;
  }

  override handleRequest<TUser>(error: unknown, user: TUser, info: unknown): TUser {
    if (user) {
      return user;
    }
    const reason = failureReason(error ?? info);
    this.metrics.authFailures.inc({ reason });
    this.logger.debug({ reason }, 'token refused');
    throw this.invalidToken();
  }

  private checkTransport(request: FastifyRequest): void {
    const authorizationHeaders = request.raw.rawHeaders.filter(
      (_, index, all) => index % 2 === 0 && all[index].toLowerCase() === 'authorization',
    ).length;
    if (authorizationHeaders > 1) {
      this.metrics.authFailures.inc({ reason: 'malformed' });
      throw new AppError('BAD_REQUEST', 'Send exactly one Authorization header.');
    }
    const query = request.query as Record<string, unknown> | undefined;
    if (query && 'access_token' in query) {
      if (authorizationHeaders > 0) {
        this.metrics.authFailures.inc({ reason: 'malformed' });
        throw new AppError('BAD_REQUEST', 'Send the access token in one way only.');
      }
      this.metrics.authFailures.inc({ reason: 'token_in_url' });
      throw this.invalidToken();
    }
  }

  private invalidToken(): AppError {
    return new AppError('INVALID_TOKEN', 'The access token is missing or not valid.', {
      headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
    });
  }
}

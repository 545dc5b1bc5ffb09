import { Injectable, Logger, type ExecutionContext } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error';
import { RateLimits } from '../limits/rate-limits';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { ACCEPTS_TICKET } from './accepts-ticket.decorator';
import { JwksKeyResolver } from './jwks';
import { TokenClaimsError } from './jwt.strategy';
import type { Principal } from './principal';
import { IS_PUBLIC } from '../common/public.decorator';
import { TicketsService } from './tickets.service';
import { TokenCache } from './token-cache';

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
  private readonly cache: TokenCache;
  /**
   * Tokens that verified before, kept until their `exp` (by hash): when one's entry in `cache`
   * has run out it is verified again, but never charged to its address's budget of refused
   * tokens, so a flood from a shared address cannot refuse a caller whose token is known good.
   */
  private readonly knownGood: TokenCache;
  /** Verifications in flight, by the token's cache key. */
  private readonly verifying = new Map<string, Promise<Principal>>();

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: JwksKeyResolver,
    private readonly metrics: GatewayMetrics,
    private readonly tickets: TicketsService,
    private readonly limits: RateLimits,
    config: AppConfig,
  ) {
    super();
    const { tokenCacheSize, tokenCacheTtlMs, clockToleranceS } = config.auth;
    this.cache = new TokenCache(tokenCacheSize, tokenCacheTtlMs, clockToleranceS);
    this.knownGood = new TokenCache(
      tokenCacheSize,
      config.auth.maxTokenLifetimeS * 1000,
      clockToleranceS,
    );
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    this.checkTransport(request);
    const ticket = (request.query as Record<string, unknown> | undefined)?.ticket;
    if (
      ticket !== undefined &&
      this.reflector.getAllAndOverride<boolean>(ACCEPTS_TICKET, targets)
    ) {
      request.user = await this.redeem(request, ticket);
      return true;
    }
    // A token verified a moment ago is taken from the cache: no signature check per request.
    const bearer = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (bearer === undefined) {
      // No token to check: passport refuses it (401) without any signature work.
      return (await super.canActivate(context)) as boolean;
    }
    const cacheKey = TokenCache.key(bearer);
    const user = this.cache.get(cacheKey) ?? (await this.verifyOnce(context, request, cacheKey));
    request.user = user;
    return true;
  }

  /**
   * Verifies a token that is not in the cache, once however many requests bring it at the same
   * time (a service that starts and sends a hundred requests with a new token costs one
   * signature check, and one of its address's verifications); the others wait for that result.
   */
  private verifyOnce(
    context: ExecutionContext,
    request: FastifyRequest,
    cacheKey: string,
  ): Promise<Principal> {
    let verifying = this.verifying.get(cacheKey);
    if (!verifying) {
      verifying = this.verify(context, request, cacheKey).finally(() =>
        this.verifying.delete(cacheKey),
      );
      this.verifying.set(cacheKey, verifying);
    }
    return verifying;
  }

  private async verify(
    context: ExecutionContext,
    request: FastifyRequest,
    cacheKey: string,
  ): Promise<Principal> {
    // An address that sent too many refused tokens gets 429 before any signature work; its
    // verification is charged first and given back when the token is good.
    const charged = this.knownGood.get(cacheKey) === undefined;
    if (charged) {
      await this.limits.chargeVerification(request.ip);
    }
    await this.keys.ready();
    await super.canActivate(context);
    const principal = request.user as Principal;
    if (charged) {
      this.limits.refundVerification(request.ip);
    }
    this.cache.set(cacheKey, principal);
    this.knownGood.set(cacheKey, principal);
    return principal;
  }

  override handleRequest<TUser>(error: unknown, user: TUser, info: unknown): TUser {
    if (user) {
      return user;
    }
    const reason = failureReason(error ?? info);
    this.refused(reason);
    this.logger.debug({ reason }, 'token refused');
    throw this.invalidToken();
  }

  private refused(reason: string): void {
    this.metrics.authFailures.inc({ reason });
  }

  /** A stream ticket in place of the header: valid once, for its own path only (else 401). */
  private async redeem(request: FastifyRequest, ticket: unknown): Promise<Principal> {
    if (request.headers.authorization !== undefined) {
      this.refused('malformed');
      throw new AppError('BAD_REQUEST', 'Send either a ticket or an Authorization header.');
    }
    await this.limits.chargeVerification(request.ip);
    const path = request.url.split('?')[0];
    const principal = typeof ticket === 'string' ? await this.tickets.redeem(ticket, path) : null;
    if (!principal) {
      this.refused('ticket');
      throw this.invalidToken();
    }
    this.limits.refundVerification(request.ip);
    return principal;
  }

  private checkTransport(request: FastifyRequest): void {
    const authorizationHeaders = request.raw.rawHeaders.filter(
      (_, index, all) => index % 2 === 0 && all[index].toLowerCase() === 'authorization',
    ).length;
    if (authorizationHeaders > 1) {
      this.refused('malformed');
      throw new AppError('BAD_REQUEST', 'Send exactly one Authorization header.');
    }
    const query = request.query as Record<string, unknown> | undefined;
    if (query && 'access_token' in query) {
      if (authorizationHeaders > 0) {
        this.refused('malformed');
        throw new AppError('BAD_REQUEST', 'Send the access token in one way only.');
      }
      this.refused('token_in_url');
      throw this.invalidToken();
    }
  }

  private invalidToken(): AppError {
    return new AppError('INVALID_TOKEN', 'The access token is missing or not valid.', {
      headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
    });
  }
}

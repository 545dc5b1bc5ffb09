import { Injectable, Logger } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { RateLimits } from '../limits/rate-limits';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { JwksKeyResolver } from './jwks';
import { JwtStrategy, TokenClaimsError } from './jwt.strategy';
import { invalidToken, type Principal } from './principal';
import { TicketsService } from './tickets.service';
import { TokenCache } from './token-cache';

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

const BEARER = /^Bearer (\S+)$/;

/** What passport calls on a strategy's use (passport-strategy's outcome methods). */
interface StrategyUse {
  authenticate(request: unknown, options: object): void;
  success(user: Principal): void;
  fail(info: unknown): void;
  error(error: unknown): void;
  pass(): void;
  redirect(): void;
}

/**
 * Who is calling: the caller of a request from its bearer token (or, where a route takes one,
 * a stream ticket). A token is read from the Authorization header only; one sent in the URL is
 * never used, and two ways at once are refused (RFC 6750 §2). A token verified a moment ago
 * comes from a cache without any signature work; one that is not is verified once, however
 * many requests bring it at the same time, by the passport-jwt strategy (keys from the JWKS).
 */
@Injectable()
export class Authenticator {
  private readonly logger = new Logger('Auth');
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
    private readonly strategy: JwtStrategy,
    private readonly keys: JwksKeyResolver,
    private readonly metrics: GatewayMetrics,
    private readonly tickets: TicketsService,
    private readonly limits: RateLimits,
    config: AppConfig,
  ) {
    const { tokenCacheSize, tokenCacheTtlMs, clockToleranceS, maxTokenLifetimeS } = config.auth;
    this.cache = new TokenCache(tokenCacheSize, tokenCacheTtlMs, clockToleranceS);
    this.knownGood = new TokenCache(tokenCacheSize, maxTokenLifetimeS * 1000, clockToleranceS);
  }

  /**
   * The caller of a request: at once (no promise) for a token in the cache, else once its
   * verification is done; throws 401 (or 400, 429) when there is none to be had.
   */
  principal(request: FastifyRequest, acceptsTicket: boolean): Principal | Promise<Principal> {
    this.checkTransport(request);
    const ticket = (request.query as Record<string, unknown> | undefined)?.ticket;
    if (ticket !== undefined && acceptsTicket) {
      return this.redeem(request, ticket);
    }
    const bearer = BEARER.exec(request.headers.authorization ?? '')?.[1];
    if (bearer === undefined) {
      // No token in the common form: the strategy's own extraction decides (a lower-case
      // scheme is still a bearer token), uncached.
      return this.verify(request);
    }
    const cacheKey = TokenCache.key(bearer);
    return this.cache.get(cacheKey) ?? this.verifyOnce(request, cacheKey);
  }

  private verifyOnce(request: FastifyRequest, cacheKey: string): Promise<Principal> {
    let verifying = this.verifying.get(cacheKey);
    if (!verifying) {
      verifying = this.verifyCharged(request, cacheKey).finally(() =>
        this.verifying.delete(cacheKey),
      );
      this.verifying.set(cacheKey, verifying);
    }
    return verifying;
  }

  private async verifyCharged(request: FastifyRequest, cacheKey: string): Promise<Principal> {
    // An address that sent too many refused tokens gets 429 before any signature work; its
    // verification is charged first and given back when the token is good.
    const charged = this.knownGood.get(cacheKey) === undefined;
    if (charged) {
      await this.limits.chargeVerification(request.ip);
    }
    const principal = await this.verify(request);
    if (charged) {
      this.limits.refundVerification(request.ip);
    }
    this.cache.set(cacheKey, principal);
    this.knownGood.set(cacheKey, principal);
    return principal;
  }

  /** passport-jwt's strategy on this request: its verdict, or 401 with the reason counted. */
  private async verify(request: FastifyRequest): Promise<Principal> {
    await this.keys.ready();
    return new Promise<Principal>((resolve, reject) => {
      const refuse = (cause: unknown) => {
        const reason = failureReason(cause);
        this.refused(reason);
        this.logger.debug({ reason }, 'token refused');
        reject(this.invalidToken());
      };
      // One use of the strategy: passport's way, an object whose outcome methods are ours.
      const once = Object.create(this.strategy) as StrategyUse;
      once.success = (user) => resolve(user);
      once.fail = (info) => refuse(info);
      once.error = (error) => refuse(error);
      once.pass = () => refuse(undefined);
      once.redirect = () => refuse(undefined);
      once.authenticate(request, {});
    });
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
    const raw = request.raw.rawHeaders;
    let authorizationHeaders = 0;
    for (let index = 0; index < raw.length; index += 2) {
      if (raw[index].length === 13 && raw[index].toLowerCase() === 'authorization') {
        authorizationHeaders += 1;
      }
    }
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

  private refused(reason: string): void {
    this.metrics.authFailures.inc({ reason });
  }

  private invalidToken(): AppError {
    return invalidToken();
  }
}

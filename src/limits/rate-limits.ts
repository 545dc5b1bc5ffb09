import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { Keyspace } from '../redis/keys';
import { RedisConnections } from '../redis/connections';
import { TokenBuckets } from './token-buckets';

const TOKEN_BUCKET_SCRIPT = join(__dirname, 'scripts', 'token-bucket-1.lua');

/** A limit that was reached: 429 RATE_LIMITED with the wait in Retry-After. */
function limited(reason: 'requests' | 'auth_failures', waitMs: number, detail: string): AppError {
  return new AppError('RATE_LIMITED', detail, {
    headers: { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) },
    reason,
  });
}

const requestsSpent = (waitMs: number) =>
  limited(
    'requests',
    waitMs,
    "This subject's request rate is spent (rateLimits.requestsPerSecond).",
  );
const failuresSpent = (waitMs: number) =>
  limited(
    'auth_failures',
    waitMs,
    'Too many refused tokens from this address (rateLimits.authFailuresPerMinute).',
  );

/** The wait a rate-limiter-flexible refusal names; any other failure lets the request pass. */
function refusal(error: unknown): number | null {
  return error instanceof RateLimiterRes ? error.msBeforeNext : null;
}

/**
 * The per-caller rate limits (rateLimits.*): a token bucket of requests per subject, and a
 * budget of refused tokens per client address. In memory per instance by default, where a check
 * is a map lookup (no promise); with `scope: global` through Redis with rate-limiter-flexible,
 * so every instance shares the buckets (one key per caller: cluster-safe). When Redis cannot
 * be asked, the global limits fall back to the same limits in memory, and a request is never
 * refused for Redis's sake: it will meet Redis on its own.
 */
@Injectable()
export class RateLimits {
  private readonly localRequests?: TokenBuckets;
  private readonly sharedRequests?: RateLimiterAbstract;
  private readonly localFailures?: TokenBuckets;
  private readonly sharedFailures?: RateLimiterAbstract;

  constructor(config: AppConfig, redis: RedisConnections, keyspace: Keyspace) {
    const { requestsPerSecond, burst, authFailuresPerMinute, scope } = config.rateLimits;
    const global = scope === 'global';
    if (requestsPerSecond > 0) {
      if (global) {
        // The bucket refills over `duration` at most; rate-limiter-flexible needs whole seconds.
        const duration = Math.max(1, Math.ceil(burst / requestsPerSecond));
        this.sharedRequests = new RateLimiterRedis({
          storeClient: redis.command,
          keyPrefix: keyspace.reservedKey('rl:requests'),
          points: burst,
          duration,
          customIncrTtlLuaScript: readFileSync(TOKEN_BUCKET_SCRIPT, 'utf8').replace(
            'INTERVAL_MS',
            String(1000 / requestsPerSecond),
          ),
          // A refused caller is refused from memory until its wait is over: no Redis call.
          inMemoryBlockOnConsumed: burst + 1,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory({ points: burst, duration }),
        });
      } else {
        this.localRequests = new TokenBuckets(burst, requestsPerSecond);
      }
    }
    if (authFailuresPerMinute > 0) {
      if (global) {
        this.sharedFailures = new RateLimiterRedis({
          storeClient: redis.command,
          keyPrefix: keyspace.reservedKey('rl:auth-failures'),
          points: authFailuresPerMinute,
          duration: 60,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory({ points: authFailuresPerMinute, duration: 60 }),
        });
      } else {
        this.localFailures = new TokenBuckets(authFailuresPerMinute, authFailuresPerMinute / 60);
      }
    }
  }

  /** Spends one of the subject's requests; throws 429 when its bucket is empty. */
  checkRequest(sub: string): void | Promise<void> {
    if (this.localRequests) {
      const waitMs = this.localRequests.take(sub);
      if (waitMs > 0) {
        throw requestsSpent(waitMs);
      }
      return;
    }
    if (this.sharedRequests) {
      return this.sharedRequests.consume(digest(sub)).then(
        () => undefined,
        (error: unknown) => {
          const waitMs = refusal(error);
          if (waitMs !== null) {
            throw requestsSpent(waitMs);
          }
        },
      );
    }
  }

  /**
   * Spends one of the address's verifications before a token's signature is checked (a token
   * the verified-token cache holds is never charged): 429 when they are spent. Charged first
   * and given back when the token is good, so however many requests an address has in flight,
   * at most authFailuresPerMinute refused tokens a minute get the signature work.
   */
  chargeVerification(address: string): void | Promise<void> {
    if (this.localFailures) {
      const waitMs = this.localFailures.take(address);
      if (waitMs > 0) {
        throw failuresSpent(waitMs);
      }
      return;
    }
    if (this.sharedFailures) {
      return this.sharedFailures.consume(address).then(
        () => undefined,
        (error: unknown) => {
          const waitMs = refusal(error);
          if (waitMs !== null) {
            throw failuresSpent(waitMs);
          }
        },
      );
    }
  }

  /** Gives a verification back: the token was good. */
  refundVerification(address: string): void {
    this.localFailures?.refund(address);
    this.sharedFailures?.reward(address).catch(() => undefined);
  }
}

/** Subjects are not secret, but a digest keeps Redis keys short and free of odd bytes. */
function digest(sub: string): string {
  return createHash('sha256').update(sub).digest('base64url');
}

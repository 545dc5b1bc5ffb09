import { Injectable } from '@nestjs/common';
import { globCostProblem, globMatch } from '../common/glob';
import { Names } from '../common/names';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';
import { Keyspace } from '../redis/keys';
import type { Principal } from './principal';

// Glob metacharacters of Redis patterns (PSUBSCRIBE), and the escape.
const GLOB_META = /[*?[\\]/;

/**
 * Whether every channel `pattern` can match is one the grant allows: the pattern equals a
 * granted pattern, or a granted pattern is `<literal>*` and the pattern starts with that literal
 * text (so whatever follows, its channels start with it too). A pattern may never widen the
 * grant (S-11); anything this cannot prove is refused.
 */
export function patternWithinGrant(pattern: string, grant: readonly string[] | null): boolean {
  if (grant === null) {
    return true;
  }
  return grant.some((granted) => {
    if (granted === pattern) {
      return true;
    }
    const literal = granted.slice(0, -1);
    return granted.endsWith('*') && !GLOB_META.test(literal) && pattern.startsWith(literal);
  });
}

const forbidden = (detail = 'The token does not grant access to this name.') =>
  new AppError('KEY_FORBIDDEN', detail);

/**
 * Every decision on which names a caller may use: the token's key patterns (the `redis_keys`
 * claim) and the gateway's own namespace, on exactly the text sent to Redis. A name is checked
 * (400), then authorised (403), then turned into its Redis key.
 */
@Injectable()
export class KeyAccess {
  private readonly maxPatternBytes: number;

  constructor(
    private readonly keyspace: Keyspace,
    private readonly names: Names,
    config: AppConfig,
  ) {
    this.maxPatternBytes = config.limits.maxPatternBytes;
  }

  /**
   * The Redis key of one name the caller sends: 400 when it is not a valid name (together with
   * `more` errors found before), 403 when the token may not use it.
   */
  redisKey(principal: Principal, name: string, field = 'key', more: FieldError[] = []): string {
    this.names.check([[field, name]], more);
    if (!this.mayAccess(principal, name)) {
      throw forbidden();
    }
    return this.keyspace.toRedis(name);
  }

  /** The Redis keys of many names, in order: every invalid one listed (400), then 403. */
  redisKeys(principal: Principal, names: readonly string[], field = 'keys'): string[] {
    this.names.check(names.map((name, index) => [`${field}[${index}]`, name] as const));
    if (!names.every((name) => this.mayAccess(principal, name))) {
      throw forbidden();
    }
    return names.map((name) => this.keyspace.toRedis(name));
  }

  /** Whether the caller may touch this (valid) name. */
  mayAccess(principal: Principal, name: string): boolean {
    if (this.keyspace.isReserved(name)) {
      return false;
    }
    return principal.keyPatterns === null || principal.keyPatterns.some((p) => globMatch(p, name));
  }

  /** The caller's name for a Redis key, or null when it is not a key the caller may see. */
  visibleName(principal: Principal, redisKey: string): string | null {
    const name = this.keyspace.fromRedis(redisKey);
    return name !== null && this.mayAccess(principal, name) ? name : null;
  }

  /**
   * The Redis pattern of a caller's pattern subscription: a valid name, cheap for Redis to
   * match (limits.maxPatternBytes, small character classes), inside the key prefix and never
   * wider than the grant.
   */
  redisPattern(principal: Principal, pattern: string): string {
    const problem = this.names.problem(pattern) ?? globCostProblem(pattern, this.maxPatternBytes);
    if (problem) {
      throw AppError.validation([{ field: 'pattern', message: `pattern ${problem}` }]);
    }
    if (this.keyspace.isReserved(pattern) || !patternWithinGrant(pattern, principal.keyPatterns)) {
      throw forbidden("The pattern can match channels outside the token's key patterns.");
    }
    return this.keyspace.toRedisPattern(pattern);
  }
}

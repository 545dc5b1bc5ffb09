import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';
import { escapeGlob, globMatch } from '../auth/glob';
import type { Principal } from '../auth/principal';

/** Names starting with this belong to the gateway itself (locks, counters, tickets). */
export const RESERVED_NAMESPACE = '__gw:';

// C0 controls, DEL and C1 controls (API.md forbids C0 and DEL; C1 controls are never a
// legitimate part of a name and break logs and terminals the same way).
// eslint-disable-next-line no-control-regex -- control characters are what this rejects
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The one translation between the names callers use and the keys Redis stores: it validates a
 * name, authorises it against the caller's key patterns and the reserved namespace, and adds
 * or removes the configured key prefix.
 */
@Injectable()
export class Keyspace {
  readonly prefix: string;
  private readonly maxNameBytes: number;

  constructor(config: AppConfig) {
    this.prefix = config.redis.keyPrefix;
    this.maxNameBytes = config.limits.maxKeyBytes;
  }

  /** The reason a name is invalid, or null when it is a valid name. */
  nameProblem(name: unknown, { allowEmpty = false } = {}): string | null {
    if (typeof name !== 'string') {
      return 'must be a string';
    }
    if (name.length === 0) {
      return allowEmpty ? null : 'must not be empty';
    }
    if (!name.isWellFormed()) {
      return 'must be valid UTF-8 (no lone surrogates)';
    }
    if (CONTROL_CHARACTERS.test(name)) {
      return 'must not contain control characters';
    }
    if (Buffer.byteLength(name, 'utf8') > this.maxNameBytes) {
      return `must be at most ${this.maxNameBytes} bytes`;
    }
    return null;
  }

  /** Validates and authorises one name; returns the Redis key. */
  key(principal: Principal, name: string, field = 'key'): string {
    return this.authorise(principal, [[field, name]])[0];
  }

  /**
   * Validates every name first (400 lists each bad one), then authorises them all (403), and
   * returns the Redis keys in the same order.
   */
  keys(principal: Principal, names: readonly string[], field = 'keys'): string[] {
    return this.authorise(
      principal,
      names.map((name, index) => [`${field}[${index}]`, name]),
    );
  }

  private authorise(principal: Principal, named: [field: string, name: string][]): string[] {
    const errors: FieldError[] = [];
    for (const [field, name] of named) {
      const message = this.nameProblem(name);
      if (message) {
        errors.push({ field, message });
      }
    }
    if (errors.length > 0) {
      throw AppError.validation(errors);
    }
    if (!named.every(([, name]) => this.mayAccess(principal, name))) {
      throw new AppError('KEY_FORBIDDEN', 'The token does not grant access to this name.');
    }
    return named.map(([, name]) => this.prefix + name);
  }

  /** Whether the caller may touch this (valid) name. */
  mayAccess(principal: Principal, name: string): boolean {
    if (name.startsWith(RESERVED_NAMESPACE)) {
      return false;
    }
    return principal.keyPatterns === null || principal.keyPatterns.some((p) => globMatch(p, name));
  }

  /** The caller's name for a Redis key, or null when the key is not one the caller may see. */
  visibleName(principal: Principal, redisKey: string): string | null {
    if (!redisKey.startsWith(this.prefix)) {
      return null;
    }
    const name = redisKey.slice(this.prefix.length);
    return this.mayAccess(principal, name) ? name : null;
  }

  /** A SCAN MATCH pattern for every key whose name starts with `namePrefix`, literally. */
  matchPattern(namePrefix: string): string {
    return `${escapeGlob(this.prefix + namePrefix)}*`;
  }
}

import { createHash } from 'node:crypto';
import type { Principal } from './principal';

interface Entry {
  principal: Principal;
  /** Milliseconds since the epoch after which the entry is not used. */
  until: number;
}

/**
 * Verified tokens, so a client that sends the same token again skips the RS256/ES256 signature
 * check (measured at about two thirds of a request's cost). Keyed by a SHA-256 of the
 * token (never the token itself), bounded in count (least recently used goes first) and in
 * age: an entry is used until the token's `exp` (with the clock tolerance the verification
 * allowed) or `ttlMs` after it was verified, whichever comes first.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly size: number,
    private readonly ttlMs: number,
    private readonly clockToleranceS: number,
  ) {}

  static key(token: string): string {
    return createHash('sha256').update(token).digest('base64');
  }

  get(key: string, now = Date.now()): Principal | undefined {
    const entry = this.entries.get(key);
    if (!entry) {
      return undefined;
    }
    this.entries.delete(key);
    if (entry.until <= now) {
      return undefined;
    }
    this.entries.set(key, entry);
    return entry.principal;
  }

  set(key: string, principal: Principal, now = Date.now()): void {
    if (this.size === 0) {
      return;
    }
    const until = Math.min(now + this.ttlMs, (principal.exp + this.clockToleranceS) * 1000);
    this.entries.delete(key);
    this.entries.set(key, { principal, until });
    if (this.entries.size > this.size) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) {
        this.entries.delete(oldest.value);
      }
    }
  }

  get count(): number {
    return this.entries.size;
  }
}

import type { Principal } from '../../src/auth/principal';
import { TokenCache } from '../../src/auth/token-cache';

const principal = (sub: string, exp: number): Principal => ({
  sub,
  scopes: new Set(['redis:read']),
  keyPatterns: null,
  exp,
});

describe('TokenCache (verified tokens)', () => {
  const now = 1_700_000_000_000;
  const inAnHour = now / 1000 + 3600;

  it('keys by a SHA-256 of the token, never the token itself', () => {
    const key = TokenCache.key('eyJhbGciOi.payload.signature');
    expect(key).not.toContain('eyJ');
    expect(key).toHaveLength(44);
    expect(TokenCache.key('eyJhbGciOi.payload.signature')).toBe(key);
  });

  it('serves an entry for at most ttlMs', () => {
    const cache = new TokenCache(10, 60000, 0);
    cache.set('a', principal('a', inAnHour), now);
    expect(cache.get('a', now + 59999)?.sub).toBe('a');
    expect(cache.get('a', now + 60000)).toBeUndefined();
  });

  it("never serves a token past its exp (plus the verification's clock tolerance)", () => {
    const cache = new TokenCache(10, 60000, 5);
    cache.set('a', principal('a', now / 1000 + 10), now);
    expect(cache.get('a', now + 14999)?.sub).toBe('a');
    expect(cache.get('a', now + 15000)).toBeUndefined();
  });

  it('keeps at most `size` entries, dropping the least recently used', () => {
    const cache = new TokenCache(2, 60000, 0);
    cache.set('a', principal('a', inAnHour), now);
    cache.set('b', principal('b', inAnHour), now);
    expect(cache.get('a', now)?.sub).toBe('a'); // a is now the most recently used
    cache.set('c', principal('c', inAnHour), now);
    expect(cache.count).toBe(2);
    expect(cache.get('b', now)).toBeUndefined();
    expect(cache.get('a', now)?.sub).toBe('a');
    expect(cache.get('c', now)?.sub).toBe('c');
  });

  it('caches nothing with size 0', () => {
    const cache = new TokenCache(0, 60000, 0);
    cache.set('a', principal('a', inAnHour), now);
    expect(cache.get('a', now)).toBeUndefined();
  });
});

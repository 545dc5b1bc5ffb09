import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { AppConfig, type AuthConfig } from '../config/app-config';
import { JwksKeyResolver } from './jwks';
import type { Principal } from './principal';

/** A token whose signature is good but whose claims we refuse. */
export class TokenClaimsError extends Error {
  constructor(readonly reason: string) {
    super(`token claims refused: ${reason}`);
    this.name = 'TokenClaimsError';
  }
}

type Claims = Record<string, unknown>;

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Scopes from the space-separated `scope` claim or the `scp` array (never both at once). */
function readScopes(claims: Claims, auth: AuthConfig): Set<string> {
  const spaced = claims[auth.scopeClaim];
  const listed = claims[auth.scopeArrayClaim];
  if (spaced !== undefined && listed !== undefined) {
    throw new TokenClaimsError('scope_ambiguous');
  }
  if (spaced !== undefined) {
    if (typeof spaced !== 'string') {
      throw new TokenClaimsError('scope_malformed');
    }
    return new Set(spaced.split(' ').filter(Boolean));
  }
  if (listed !== undefined) {
    if (!isStringArray(listed)) {
      throw new TokenClaimsError('scope_malformed');
    }
    return new Set(listed);
  }
  return new Set();
}

function readKeyPatterns(claims: Claims, auth: AuthConfig): string[] | null {
  const patterns = claims[auth.keyPatternsClaim];
  if (patterns === undefined) {
    return null;
  }
  if (!isStringArray(patterns) || patterns.some((p) => p.length === 0 || p.length > 1024)) {
    throw new TokenClaimsError('key_patterns_malformed');
  }
  return patterns;
}

/**
 * Claims jsonwebtoken leaves optional that an access token must carry: `exp` and `sub`, an
 * `iat` that is not in the future, and a lifetime no longer than `auth.maxTokenLifetimeS`.
 */
function checkTimes(claims: Claims, auth: AuthConfig): void {
  const now = Math.floor(Date.now() / 1000);
  const { exp, iat } = claims;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new TokenClaimsError('exp_missing');
  }
  if (iat !== undefined && (typeof iat !== 'number' || iat > now + auth.clockToleranceS)) {
    throw new TokenClaimsError('iat_invalid');
  }
  const issuedAt = typeof iat === 'number' ? iat : now;
  if (exp - issuedAt > auth.maxTokenLifetimeS) {
    throw new TokenClaimsError('lifetime_too_long');
  }
}

/**
 * passport-jwt strategy: the token only from `Authorization: Bearer`, the key by `kid` from the
 * issuer's JWKS, only the configured asymmetric algorithms, and `iss`, `aud`, `exp`, `nbf`
 * checked with a small clock tolerance.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(
    private readonly config: AppConfig,
    keys: JwksKeyResolver,
  ) {
    const { auth } = config;
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKeyProvider: keys.secretOrKeyProvider,
      issuer: auth.issuer,
      audience: auth.audience,
      algorithms: auth.algorithms,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: auth.clockToleranceS },
    });
  }

  validate(claims: Claims): Principal {
    const { auth } = this.config;
    checkTimes(claims, auth);
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) {
      throw new TokenClaimsError('sub_missing');
    }
    return {
      sub: claims.sub,
      scopes: readScopes(claims, auth),
      keyPatterns: readKeyPatterns(claims, auth),
      exp: claims.exp as number,
    };
  }
}

import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { JwksClient } from 'jwks-rsa';
import * as oidc from 'openid-client';
import { AppConfig } from '../config/app-config';
import { isLoopbackHost } from '../config/config.loader';
import { AppError } from '../errors/app-error';

/** A JWKS document is a handful of keys; anything this large is not one. */
const MAX_JWKS_BYTES = 256 * 1024;
const MAX_KID_LENGTH = 256;
/** How long a failed discovery is remembered before the next request tries again. */
const DISCOVERY_RETRY_MS = 5000;

type SecretCallback = (error: unknown, secret?: string | Buffer) => void;

/** The parts of a JOSE header we look at before spending a key lookup on a token. */
export interface JoseHeader {
  alg?: unknown;
  kid?: unknown;
  crit?: unknown;
}

export function decodeHeader(token: string): JoseHeader | null {
  const [segment] = token.split('.', 1);
  try {
    const header: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? header : null;
  } catch {
    return null;
  }
}

/**
 * RFC 8725 §3.1: a key is used with one algorithm. When its JWK names one (`alg`), a token
 * signed under another is refused, even if the key type could verify it (RS256 vs PS256).
 */
function keyAllows(key: { alg?: unknown }, alg: unknown): boolean {
  return key.alg === undefined || key.alg === alg;
}

/** At most `perMinute` JWKS fetches in any 60 s; past that, refused at once, never queued. */
class FetchBudget {
  private readonly takenAt: number[] = [];

  constructor(private readonly perMinute: number) {}

  take(): boolean {
    const now = Date.now();
    while (this.takenAt.length > 0 && now - this.takenAt[0] >= 60_000) {
      this.takenAt.shift();
    }
    if (this.takenAt.length >= this.perMinute) {
      return false;
    }
    this.takenAt.push(now);
    return true;
  }
}

/** GET a JWKS with a deadline, no redirects and a size bound (A-7, Z-10 in docs/testing.md). */
async function fetchJwks(uri: string, timeoutMs: number): Promise<{ keys: unknown[] }> {
  const response = await fetch(uri, {
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json, application/jwk-set+json' },
  });
  if (!response.ok || !response.body) {
    throw new Error(`JWKS endpoint answered ${response.status}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_JWKS_BYTES) {
      throw new Error('JWKS document too large');
    }
    chunks.push(Buffer.from(chunk));
  }
  const document: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const keys = (document as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) {
    throw new Error('JWKS document has no keys');
  }
  return { keys };
}

/**
 * Finds the issuer's signing keys: the JWKS URI from OIDC discovery (or `auth.jwksUri`), keys
 * cached by `kid`, and a refetch on an unknown `kid` at a bounded rate (jwks-rsa).
 */
@Injectable()
export class JwksKeyResolver implements OnModuleInit {
  private readonly logger = new Logger(JwksKeyResolver.name);
  private client?: JwksClient;
  private discovering?: Promise<JwksClient>;
  private failedAt = 0;

  constructor(private readonly config: AppConfig) {}

  onModuleInit(): void {
    // Warm up in the background: a slow or absent issuer must not keep the service from starting.
    this.ready().catch(() => undefined);
  }

  /** Resolves once the JWKS location is known; 503 while the issuer cannot be reached. */
  async ready(): Promise<void> {
    if (this.client) {
      return;
    }
    if (!this.discovering && Date.now() - this.failedAt < DISCOVERY_RETRY_MS) {
      throw this.unavailable();
    }
    this.discovering ??= this.discover().then(
      (client) => (this.client = client),
      (error: unknown) => {
        this.failedAt = Date.now();
        this.discovering = undefined;
        // fetch says only "fetch failed"; the reason (DNS, refused, TLS) is in its cause.
        const { message, cause } = error as Error & { cause?: { message?: string } };
        this.logger.warn({ reason: message, cause: cause?.message }, 'OIDC discovery failed');
        throw this.unavailable();
      },
    );
    await this.discovering;
  }

  /** passport-jwt's `secretOrKeyProvider`: the PEM of the key the token names, or none. */
  readonly secretOrKeyProvider = (
    _request: unknown,
    rawJwt: string,
    done: SecretCallback,
  ): void => {
    const header = decodeHeader(rawJwt);
    // Without a key, jsonwebtoken refuses the token ("secret or public key must be provided").
    if (!this.client || !header || !this.acceptableHeader(header)) {
      done(null, undefined);
      return;
    }
    this.client
      .getSigningKey(header.kid as string | undefined)
      .then((key) => done(null, keyAllows(key, header.alg) ? key.getPublicKey() : undefined))
      .catch(() => done(null, undefined));
  };

  private acceptableHeader(header: JoseHeader): boolean {
    const { alg, kid, crit } = header;
    const algorithms: readonly unknown[] = this.config.auth.algorithms;
    if (!algorithms.includes(alg)) {
      return false;
    }
    // RFC 7515 §4.1.11: a `crit` extension we do not implement makes the token invalid.
    if (crit !== undefined) {
      return false;
    }
    return kid === undefined || (typeof kid === 'string' && kid.length <= MAX_KID_LENGTH);
  }

  private async discover(): Promise<JwksClient> {
    const { auth } = this.config;
    const jwksUri = auth.jwksUri || (await this.discoverJwksUri());
    const budget = new FetchBudget(auth.jwksRequestsPerMinute);
    return new JwksClient({
      jwksUri,
      cache: true,
      cacheMaxAge: auth.jwksCacheMaxAgeMs,
      cacheMaxAgeFallback: auth.jwksStaleFallbackMs || undefined,
      // Rate-limited here, not with jwks-rsa's `rateLimit`: its limiter parks concurrent
      // callers on timers for minutes once its bucket is empty, where a refusal must be quick.
      fetcher: (uri: string) =>
        budget.take()
          ? fetchJwks(uri, auth.jwksTimeoutMs)
          : Promise.reject(new Error('JWKS refetch budget spent')),
    });
  }

  private async discoverJwksUri(): Promise<string> {
    const { issuer, jwksTimeoutMs } = this.config.auth;
    const url = new URL(issuer);
    const configuration = await oidc.discovery(url, 'redis-gateway', undefined, undefined, {
      timeout: Math.ceil(jwksTimeoutMs / 1000),
      execute:
        url.protocol === 'http:' && isLoopbackHost(url.hostname)
          ? [oidc.allowInsecureRequests]
          : [],
    });
    const jwksUri = configuration.serverMetadata().jwks_uri;
    if (!jwksUri) {
      throw new Error('the discovery document has no jwks_uri');
    }
    return jwksUri;
  }

  private unavailable(): AppError {
    return new AppError('AUTH_UNAVAILABLE', 'The token issuer cannot be reached; retry shortly.');
  }
}

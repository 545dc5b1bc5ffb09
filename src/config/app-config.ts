import { Type } from 'class-transformer';
import { IsArray, IsBoolean, IsString, Matches, ValidateNested } from 'class-validator';
import {
  CORS_ORIGIN,
  CORS_ORIGINS_MESSAGE,
  HOST_PORT,
  IntRange,
  isFlag,
  isText,
  OneOf,
} from './config-rules';

/** Algorithms passport-jwt (jsonwebtoken) can verify with a public key; HS* and none never. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export const REDIS_MODES = ['standalone', 'sentinel', 'cluster'] as const;
export type RedisMode = (typeof REDIS_MODES)[number];

export const RATE_LIMIT_SCOPES = ['instance', 'global'] as const;
export type RateLimitScope = (typeof RATE_LIMIT_SCOPES)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Origins a browser may call from (exact `scheme://host[:port]`, compared as the browser sends
 * them in `Origin`); empty: no CORS headers at all (src/common/cors.ts).
 */
export class CorsConfig {
  @IsArray({ message: CORS_ORIGINS_MESSAGE })
  @IsString({ each: true, message: CORS_ORIGINS_MESSAGE })
  @Matches(CORS_ORIGIN, { each: true, message: CORS_ORIGINS_MESSAGE })
  origins!: string[];
}

export class ServerConfig {
  @IsString(isText)
  host!: string;

  @IntRange(0, 65535)
  port!: number;

  @IntRange(1024, 1073741824)
  bodyLimitBytes!: number;

  @IntRange(1000, 600000)
  headersTimeoutMs!: number;

  @IntRange(1000, 600000)
  requestTimeoutMs!: number;

  @IntRange(1000, 600000)
  keepAliveTimeoutMs!: number;

  @IntRange(0, 600000)
  shutdownTimeoutMs!: number;

  @IntRange(1, 3600)
  retryAfterS!: number;

  @ValidateNested()
  @Type(() => CorsConfig)
  cors!: CorsConfig;
}

export class RedisTlsConfig {
  @IsBoolean(isFlag)
  enabled!: boolean;

  @IsString(isText)
  caFile!: string;
}

export class RedisConfig {
  @OneOf(REDIS_MODES)
  mode!: RedisMode;

  @Matches(/^$|^rediss?:\/\//, { message: 'must be a redis:// or rediss:// URL' })
  url!: string;

  @IsString(isText)
  host!: string;

  @IntRange(1, 65535)
  port!: number;

  @IsString(isText)
  username!: string;

  @IsString(isText)
  password!: string;

  @IsString(isText)
  passwordFile!: string;

  @IntRange(0, 1023)
  db!: number;

  @IsString(isText)
  keyPrefix!: string;

  @IsArray({ message: 'must be a list of host:port' })
  @Matches(HOST_PORT, { each: true, message: 'must be a list of host:port' })
  sentinels!: string[];

  @IsString(isText)
  sentinelName!: string;

  @IsArray({ message: 'must be a list of host:port' })
  @Matches(HOST_PORT, { each: true, message: 'must be a list of host:port' })
  clusterNodes!: string[];

  @ValidateNested()
  @Type(() => RedisTlsConfig)
  tls!: RedisTlsConfig;

  @IntRange(50, 60000)
  commandTimeoutMs!: number;

  @IntRange(100, 600000)
  socketTimeoutMs!: number;

  @IntRange(100, 60000)
  connectTimeoutMs!: number;

  @IntRange(10, 60000)
  retryMaxDelayMs!: number;

  @IntRange(0, 600000)
  keepAliveMs!: number;

  @IntRange(1, 10000)
  blockingPoolSize!: number;
}

export class AuthConfig {
  @IsString(isText)
  issuer!: string;

  @IsString(isText)
  audience!: string;

  @IsString(isText)
  jwksUri!: string;

  @IsArray({ message: `must be a list of: ${ASYMMETRIC_ALGORITHMS.join(', ')}` })
  @OneOf(ASYMMETRIC_ALGORITHMS, { each: true })
  algorithms!: AsymmetricAlgorithm[];

  @IntRange(0, 300)
  clockToleranceS!: number;

  @IntRange(60, 31536000)
  maxTokenLifetimeS!: number;

  @IsString(isText)
  scopeClaim!: string;

  @IsString(isText)
  scopeArrayClaim!: string;

  @IsString(isText)
  keyPatternsClaim!: string;

  @IntRange(1, 600)
  jwksRequestsPerMinute!: number;

  @IntRange(1000, 86400000)
  jwksCacheMaxAgeMs!: number;

  @IntRange(0, 604800000)
  jwksStaleFallbackMs!: number;

  @IntRange(100, 60000)
  jwksTimeoutMs!: number;

  /** Verified tokens kept (by a hash of the token), so a hot client skips the signature check. */
  @IntRange(0, 1000000)
  tokenCacheSize!: number;

  /** How long a verified token is trusted from the cache, at most (and never past its `exp`). */
  @IntRange(1000, 3600000)
  tokenCacheTtlMs!: number;
}

export class LimitsConfig {
  @IntRange(1, 65536)
  maxKeyBytes!: number;

  @IntRange(1, 536870912)
  maxValueBytes!: number;

  @IntRange(1, 100000)
  maxBatchKeys!: number;

  @IntRange(1, 100000)
  maxScanCount!: number;

  @IntRange(0, 600000)
  maxBlockMs!: number;

  /** The longest glob a caller may send (pattern subscriptions). */
  @IntRange(1, 65536)
  maxPatternBytes!: number;

  /** The most bytes of stored data one answer may carry (values, fields, entries). */
  @IntRange(1024, 1073741824)
  maxResponseBytes!: number;

  /** Values (object members and array elements) one JSON body may hold. */
  @IntRange(16, 10000000)
  maxJsonValues!: number;
}

export class SseConfig {
  @IntRange(100, 600000)
  heartbeatMs!: number;

  @IntRange(1, 1000000)
  maxClients!: number;

  @IntRange(1, 1000000)
  maxClientsPerSubject!: number;

  @IntRange(1024, 1073741824)
  maxBufferBytes!: number;

  /** No stream outlives this, nor its token's expiry. */
  @IntRange(1000, 86400000)
  maxLifetimeMs!: number;
}

export class StreamsConfig {
  /** MAXLEN ~ applied to every XADD that names no trimming of its own; the cap of `maxLen`. */
  @IntRange(1, 1000000000)
  maxLength!: number;

  /** How long an `Idempotency-Key` of an entry add is remembered. */
  @IntRange(1, 604800)
  idempotencyWindowS!: number;
}

export class LocksConfig {
  @IntRange(1, 86400000)
  maxTtlMs!: number;

  @IntRange(-1, 86400000)
  delayedRestartMs!: number;

  @IsArray({ message: 'must be a list of redis:// URLs' })
  @Matches(/^rediss?:\/\//, { each: true, message: 'must be a list of redis:// URLs' })
  nodes!: string[];
}

export class RateLimitsConfig {
  /** Each subject's token bucket refills at this rate; 0 turns the request limit off. */
  @IntRange(0, 10000000)
  requestsPerSecond!: number;

  /** Each subject's bucket holds at most this many requests. */
  @IntRange(1, 100000000)
  burst!: number;

  /** `instance`: buckets in memory; `global`: shared by every instance through Redis. */
  @OneOf(RATE_LIMIT_SCOPES)
  scope!: RateLimitScope;

  /** Refused tokens per client address and minute before 429; 0 turns it off. */
  @IntRange(0, 10000000)
  authFailuresPerMinute!: number;

  /** CIDRs of proxies whose X-Forwarded-For names the client (for the address limit). */
  @IsArray({ message: 'must be a list of CIDRs (10.0.0.0/8) or addresses' })
  @IsString({ each: true, message: 'must be a list of CIDRs (10.0.0.0/8) or addresses' })
  trustedProxies!: string[];
}

export class QuotasConfig {
  /** Locks one subject may hold at once (counted in Redis); 0 turns the quota off. */
  @IntRange(0, 10000000)
  locksPerSubject!: number;

  /** Blocking-pool connections one subject may hold (blocking group reads, stream tails). */
  @IntRange(0, 10000)
  blockingPerSubject!: number;
}

export class UpstashConfig {
  /** Serve the Upstash-compatible endpoint under /redis/upstash. */
  @IsBoolean(isFlag)
  enabled!: boolean;

  /** Commands one pipeline or transaction may hold. */
  @IntRange(1, 100000)
  maxPipelineCommands!: number;

  /** SHA-1s of the only scripts EVAL, EVALSHA and SCRIPT LOAD may run. */
  @IsArray({ message: 'must be a list of SHA-1 digests (40 hex digits)' })
  @Matches(/^[0-9a-fA-F]{40}$/, {
    each: true,
    message: 'must be a list of SHA-1 digests (40 hex digits)',
  })
  allowedScripts!: string[];
}

export class NearCacheConfig {
  /** Keep hot string values in memory, kept exact by Redis client tracking (off by default). */
  @IsBoolean(isFlag)
  enabled!: boolean;

  /** The cache's whole size (values, names and a fixed overhead per entry); LRU past it. */
  @IntRange(1024, 17179869184)
  maxBytes!: number;

  /** Values larger than this are never cached. */
  @IntRange(1, 67108864)
  maxEntryBytes!: number;

  /** Globs over the caller-visible name (Redis glob rules); only matching keys are cached. */
  @IsArray({ message: 'must be a list of glob patterns' })
  @IsString({ each: true, message: 'must be a list of glob patterns' })
  keyPatterns!: string[];
}

export class LogConfig {
  @OneOf(LOG_LEVELS)
  level!: LogLevel;
}

/** The one typed configuration object, validated once at start-up. */
export class AppConfig {
  @ValidateNested()
  @Type(() => ServerConfig)
  server!: ServerConfig;

  @ValidateNested()
  @Type(() => RedisConfig)
  redis!: RedisConfig;

  @ValidateNested()
  @Type(() => AuthConfig)
  auth!: AuthConfig;

  @ValidateNested()
  @Type(() => LimitsConfig)
  limits!: LimitsConfig;

  @ValidateNested()
  @Type(() => SseConfig)
  sse!: SseConfig;

  @ValidateNested()
  @Type(() => StreamsConfig)
  streams!: StreamsConfig;

  @ValidateNested()
  @Type(() => LocksConfig)
  locks!: LocksConfig;

  @ValidateNested()
  @Type(() => RateLimitsConfig)
  rateLimits!: RateLimitsConfig;

  @ValidateNested()
  @Type(() => QuotasConfig)
  quotas!: QuotasConfig;

  @ValidateNested()
  @Type(() => UpstashConfig)
  upstash!: UpstashConfig;

  @ValidateNested()
  @Type(() => NearCacheConfig)
  nearCache!: NearCacheConfig;

  @ValidateNested()
  @Type(() => LogConfig)
  log!: LogConfig;
}

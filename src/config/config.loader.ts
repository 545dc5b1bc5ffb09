import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { load as parseYaml } from 'js-yaml';
import { globCostProblem } from '../common/glob';
import { prefixTag } from '../common/hash-tags';
import { AppConfig } from './app-config';

export const DEFAULT_CONFIG_FILE = resolve(__dirname, '../../config/default.yaml');

/** A configuration mistake: one line per wrong setting, printed without a stack trace. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;
export type Tree = Record<string, unknown>;

export interface LoadConfigOptions {
  env?: Env;
  /** Applied last, over YAML and environment (tests and the dev launcher). */
  overrides?: DeepPartial<AppConfig>;
}

export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K];
};

const list = (value: string): string[] =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

/** Whole numbers become numbers; anything else stays a string and fails validation by name. */
const integer = (value: string): number | string => (/^-?\d+$/.test(value) ? Number(value) : value);

type EnvRule = [variable: string, path: string, convert?: (value: string) => unknown];

// The environment names the README lists. Later rules win over earlier ones.
const ENV_RULES: EnvRule[] = [
  ['HOST', 'server.host'],
  ['PORT', 'server.port', integer],
  ['REDIS_URL', 'redis.url'],
  ['REDIS_HOST', 'redis.host'],
  ['REDIS_PORT', 'redis.port', integer],
  ['REDIS_USERNAME', 'redis.username'],
  ['REDIS_PASSWORD', 'redis.password'],
  ['REDIS_PASSWORD_FILE', 'redis.passwordFile'],
  ['REDIS_DB', 'redis.db', integer],
  ['REDIS_DATABASE', 'redis.db', integer],
  ['REDIS_KEY_PREFIX', 'redis.keyPrefix'],
  ['REDIS_MODE', 'redis.mode'],
  ['REDIS_SENTINELS', 'redis.sentinels', list],
  ['REDIS_SENTINEL_NAME', 'redis.sentinelName'],
  ['REDIS_CLUSTER_NODES', 'redis.clusterNodes', list],
  ['REDIS_TLS_CA_FILE', 'redis.tls.caFile'],
  ['OIDC_ISSUER', 'auth.issuer'],
  ['OIDC_AUDIENCE', 'auth.audience'],
  ['JWKS_URI', 'auth.jwksUri'],
  ['LOG_LEVEL', 'log.level'],
  ['CORS_ORIGINS', 'server.cors.origins', list],
];

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) {
      node[part] = {};
    }
    node = node[part] as Tree;
  }
  node[parts[parts.length - 1]] = value;
}

function isPlainObject(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function merge(base: Tree, layer: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(layer)) {
    out[key] = isPlainObject(value) && isPlainObject(out[key]) ? merge(out[key], value) : value;
  }
  return out;
}

function readYaml(file: string, problems: string[]): Tree {
  try {
    const parsed = parseYaml(readFileSync(file, 'utf8'));
    if (parsed === undefined || parsed === null) {
      return {};
    }
    if (!isPlainObject(parsed)) {
      problems.push(`${file}: must be a YAML mapping of settings`);
      return {};
    }
    return parsed;
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'unreadable';
    problems.push(`${file}: ${reason} (YAML configuration file)`);
    return {};
  }
}

function envLayer(env: Env): Tree {
  const layer: Tree = {};
  for (const [variable, path, convert] of ENV_RULES) {
    const value = env[variable];
    if (value !== undefined && value !== '') {
      setPath(layer, path, convert ? convert(value) : value);
    }
  }
  const address = env.REDIS_ADDRESS;
  if (address) {
    const match = /^(.+):(\d+)$/.exec(address);
    setPath(layer, 'redis.host', match ? match[1] : address);
    if (match) {
      setPath(layer, 'redis.port', Number(match[2]));
    }
  }
  return layer;
}

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((error) => {
    const path = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.entries(error.constraints ?? {}).map(([rule, message]) =>
      rule === 'whitelistValidation' ? `${path}: is not a known setting` : `${path}: ${message}`,
    );
    return [...new Set(own), ...flatten(error.children ?? [], path)];
  });
}

/** An IPv4 or IPv6 address, optionally with a prefix length (`10.0.0.0/8`, `::1/128`). */
function isCidr(entry: string): boolean {
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) {
    return false;
  }
  return (
    bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
  );
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1') {
    return true;
  }
  return isIP(host) === 4 && host.startsWith('127.');
}

/** `https://`, or `http://` on a loopback host (OIDC_ISSUER, JWKS_URI). */
function checkIdentityUrl(value: string, setting: string, problems: string[]): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${setting}: must be an absolute https:// URL`);
    return;
  }
  const secure = url.protocol === 'https:';
  const localHttp = url.protocol === 'http:' && isLoopbackHost(url.hostname);
  if (!secure && !localHttp) {
    problems.push(`${setting}: must use https:// (http:// is accepted only for a loopback host)`);
  }
}

function checkReadable(file: string, setting: string, problems: string[]): void {
  try {
    accessSync(file, constants.R_OK);
  } catch {
    problems.push(`${setting}: file not found or not readable`);
  }
}

/**
 * What the pattern of an origin cannot say: a port in range, and not the scheme's default,
 * which a browser leaves out of `Origin` (so `http://host:80` would never match).
 */
function checkCorsOrigins(origins: readonly string[], problems: string[]): void {
  for (const origin of origins) {
    const port = /:(\d+)$/.exec(origin)?.[1];
    if (port === undefined) {
      continue;
    }
    const isDefault = origin.startsWith('https:') ? port === '443' : port === '80';
    if (Number(port) > 65535 || Number(port) === 0 || isDefault || port.startsWith('0')) {
      problems.push(
        'server.cors.origins: a port must be from 1 to 65535, without leading zeros, and left out when it is the scheme default (80, 443)',
      );
      return;
    }
  }
}

function crossChecks(config: AppConfig, problems: string[]): void {
  const { auth, redis } = config;
  if (!auth.issuer && !auth.jwksUri) {
    problems.push('auth.issuer: required (OIDC_ISSUER), unless auth.jwksUri (JWKS_URI) is set');
  }
  if (auth.issuer) {
    checkIdentityUrl(auth.issuer, 'auth.issuer', problems);
  }
  if (auth.jwksUri) {
    checkIdentityUrl(auth.jwksUri, 'auth.jwksUri', problems);
  }
  if (!auth.audience) {
    problems.push('auth.audience: required (OIDC_AUDIENCE)');
  }
  if (auth.algorithms.length === 0) {
    problems.push('auth.algorithms: must list at least one algorithm');
  }
  for (const entry of config.rateLimits.trustedProxies) {
    if (!isCidr(entry)) {
      problems.push('rateLimits.trustedProxies: must be a list of CIDRs (10.0.0.0/8) or addresses');
      break;
    }
  }
  checkCorsOrigins(config.server.cors.origins, problems);
  if (config.server.headersTimeoutMs > config.server.requestTimeoutMs) {
    problems.push('server.headersTimeoutMs: must not be greater than server.requestTimeoutMs');
  }
  if (redis.socketTimeoutMs <= redis.commandTimeoutMs) {
    problems.push('redis.socketTimeoutMs: must be greater than redis.commandTimeoutMs');
  }
  if (redis.password && redis.passwordFile) {
    problems.push('redis.passwordFile: cannot be combined with redis.password');
  }
  if (redis.passwordFile) {
    checkReadable(redis.passwordFile, 'redis.passwordFile', problems);
  }
  if (redis.tls.caFile) {
    checkReadable(redis.tls.caFile, 'redis.tls.caFile', problems);
  }
  if (redis.mode === 'sentinel' && redis.sentinels.length === 0) {
    problems.push('redis.sentinels: required in sentinel mode (REDIS_SENTINELS=host:port,...)');
  }
  if (redis.mode === 'cluster' && redis.clusterNodes.length === 0 && !redis.url) {
    problems.push(
      'redis.clusterNodes: required in cluster mode (REDIS_CLUSTER_NODES=host:port,...)',
    );
  }
  // eslint-disable-next-line no-control-regex -- control characters are what this rejects
  if (/[\u0000-\u001f\u007f]/.test(redis.keyPrefix)) {
    problems.push('redis.keyPrefix: must not contain control characters');
  }
  const { nearCache } = config;
  if (nearCache.maxEntryBytes > nearCache.maxBytes) {
    problems.push('nearCache.maxEntryBytes: must not be greater than nearCache.maxBytes');
  }
  for (const pattern of nearCache.keyPatterns) {
    const problem =
      pattern === ''
        ? 'must not be empty'
        : globCostProblem(pattern, config.limits.maxPatternBytes);
    if (problem) {
      problems.push(`nearCache.keyPatterns: ${problem}`);
      break;
    }
  }
  // `{}` makes Redis Cluster hash every key whole: a lock and its fencing counter, a stream and
  // its idempotency record could no longer share a slot (one script writes both).
  if (redis.mode === 'cluster' && prefixTag(redis.keyPrefix) === 'empty') {
    problems.push('redis.keyPrefix: must not start its hash tag with an empty {} in cluster mode');
  }
}

/**
 * Reads `config/default.yaml`, layers `CONFIG_FILE` and the environment over it and validates
 * the result once. Throws a ConfigError naming every wrong setting.
 */
export function loadConfig({
  env = process.env,
  overrides = {},
}: LoadConfigOptions = {}): AppConfig {
  const problems: string[] = [];
  let tree = readYaml(DEFAULT_CONFIG_FILE, problems);
  if (env.CONFIG_FILE) {
    tree = merge(tree, readYaml(env.CONFIG_FILE, problems));
  }
  tree = merge(tree, envLayer(env));
  tree = merge(tree, overrides);

  const config = plainToInstance(AppConfig, tree);
  problems.push(
    ...flatten(
      validateSync(config, {
        whitelist: true,
        forbidNonWhitelisted: true,
        forbidUnknownValues: true,
      }),
    ),
  );
  try {
    crossChecks(config, problems);
  } catch {
    // A setting of the wrong type, already reported above, can trip a check of its relations.
  }
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  if (config.locks.delayedRestartMs === -1) {
    config.locks.delayedRestartMs = config.locks.maxTtlMs;
  }
  return config;
}

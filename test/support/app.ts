import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Cluster, Redis } from 'ioredis';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { createApp } from '../../src/app.factory';
import type { AppConfig } from '../../src/config/app-config';
import { loadConfig, merge, type DeepPartial } from '../../src/config/config.loader';
import { LocalIssuer, type TokenRequest } from '../../src/dev/local-issuer';
import { SCOPES } from '../../src/auth/scopes';
import { Contract, type ContractViolation } from './contract';
import { eventually } from './ports';
import {
  CLUSTER_NODES_ENV,
  SENTINEL_NAME_ENV,
  SENTINELS_ENV,
  nodesFrom,
  testTopology,
  type Topology,
} from './matrix/env';

export type Response = LightMyRequestResponse;

export interface TestAppOptions {
  /**
   * A standalone Redis to use. Without it the app uses the matrix topology of this test file
   * (TEST_TOPOLOGY): the shared standalone Redis, the Sentinel set or the cluster.
   */
  redisUrl?: string;
  /** A Sentinel set to use (sentinel mode) instead of the matrix topology. */
  sentinel?: { nodes: string[]; name: string };
  /** Settings layered over the test defaults. */
  config?: DeepPartial<AppConfig>;
  /** An issuer to share; one is started (and closed) for this app when absent. */
  issuer?: LocalIssuer;
  /** Listen on a real loopback port (for HTTP clients other than inject). */
  listen?: boolean;
  /** Keep the JSON log lines (at info level) in `logs` instead of discarding them. */
  captureLogs?: boolean;
  /**
   * Wait until /readyz answers 200 before handing the app out (the default): the Redis
   * connections are made in the background. False for tests that start with Redis unreachable.
   */
  ready?: boolean;
}

export interface CallOptions {
  /** A token, or the name of a prepared one; no Authorization header when undefined. */
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  /**
   * false: no contract check of this answer. Only for a caller that judges it against the
   * document itself, as the fuzz does for a URL that no longer fits its path template.
   */
  contract?: false;
}

/**
 * Settings that turn the per-caller limits off (rate limits, quotas), for tests that drive one
 * subject past them on purpose to load something else: the blocking pool, Redis, the lock
 * quorum. The limits suite tests the limits themselves.
 */
export const NO_CALLER_LIMITS = {
  rateLimits: { requestsPerSecond: 0, authFailuresPerMinute: 0 },
  quotas: { locksPerSubject: 0, blockingPerSubject: 0 },
} satisfies DeepPartial<AppConfig>;

/** A unique key prefix per app, so suites share one Redis without seeing each other's keys. */
export function uniquePrefix(): string {
  return `t:${randomUUID().slice(0, 8)}:`;
}

/** A direct client to the app's Redis: one server, the Sentinels' primary, or a cluster. */
export type DirectClient = Redis | Cluster;

function hostPort(entry: string): { host: string; port: number } {
  const index = entry.lastIndexOf(':');
  return { host: entry.slice(0, index), port: Number(entry.slice(index + 1)) };
}

/** Where an app's Redis is: a standalone URL, a Sentinel set, or a cluster's masters. */
type Target =
  | { topology: 'standalone'; url: string; caFile?: string }
  | { topology: 'sentinel'; sentinels: string[]; name: string }
  | { topology: 'cluster'; nodes: string[] };

/** The Redis of an app: explicit options first, else the matrix topology of this test file. */
function targetOf(options: TestAppOptions): Target {
  const url = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (options.sentinel) {
    return { topology: 'sentinel', sentinels: options.sentinel.nodes, name: options.sentinel.name };
  }
  const topology = options.redisUrl ? 'standalone' : testTopology();
  switch (topology) {
    case 'standalone':
      return { topology, url, caFile: options.config?.redis?.tls?.caFile };
    case 'sentinel':
      return {
        topology,
        sentinels: nodesFrom(SENTINELS_ENV),
        name: process.env[SENTINEL_NAME_ENV] ?? 'mymaster',
      };
    case 'cluster':
      return { topology, nodes: nodesFrom(CLUSTER_NODES_ENV) };
  }
}

/** The redis settings and a direct client for a target. */
function targetRedis(target: Target): {
  redis: DeepPartial<AppConfig['redis']>;
  client: DirectClient;
} {
  let redis: DeepPartial<AppConfig['redis']>;
  let client: DirectClient;
  switch (target.topology) {
    case 'standalone':
      redis = { url: target.url };
      // Trusting what the app trusts: an untrusted TLS client would retry its failing
      // handshake against the server under test all along.
      client = new Redis(target.url, {
        maxRetriesPerRequest: 1,
        ...(target.caFile && { tls: { ca: readFileSync(target.caFile) } }),
      });
      break;
    case 'sentinel': {
      const { sentinels, name } = target;
      redis = { mode: 'sentinel', url: '', sentinels, sentinelName: name };
      client = new Redis({ sentinels: sentinels.map(hostPort), name, maxRetriesPerRequest: 1 });
      break;
    }
    case 'cluster': {
      const clusterNodes = target.nodes;
      redis = { mode: 'cluster', url: '', clusterNodes };
      client = new Cluster(clusterNodes.map(hostPort), {
        redisOptions: { maxRetriesPerRequest: 1 },
      });
      break;
    }
  }
  client.on('error', () => undefined);
  return { redis, client };
}

/** Every key matching `match` on one server (SCAN, so it works on any node of any topology). */
async function scanAll(node: Redis, match: string): Promise<string[]> {
  const keys = new Set<string>();
  let cursor = '0';
  do {
    const [next, page] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    page.forEach((key) => keys.add(key));
    cursor = next;
  } while (cursor !== '0');
  return [...keys];
}

/**
 * The real application (createApp, as production builds it) against a real Redis and a real
 * local OIDC issuer, with helpers for tokens, requests and direct Redis assertions.
 */
export class TestApp {
  /** Prepared real tokens: read-only, write-only and both scopes. */
  readonly tokens: { read: string; write: string; both: string; none: string };
  baseUrl = '';
  /** The JSON log lines written so far (with `captureLogs`). */
  logs: string[] = [];
  /** Answers of `call` that broke the OpenAPI contract (each also failed its call). */
  readonly contractViolations: ContractViolation[] = [];
  private readonly contract = Contract.committed();
  private readonly tokenCache = new Map<string, Promise<string>>();

  private constructor(
    readonly app: NestFastifyApplication,
    readonly config: AppConfig,
    readonly issuer: LocalIssuer,
    private readonly ownsIssuer: boolean,
    /**
     * A direct client to the same Redis, for assertions (keys include the prefix): a
     * Sentinel-aware client of the primary in sentinel mode, a cluster client in cluster mode.
     */
    readonly redis: DirectClient,
    /** The topology this app runs on. */
    readonly topology: Topology,
    tokens: TestApp['tokens'],
  ) {
    this.tokens = tokens;
  }

  static async create(options: TestAppOptions = {}): Promise<TestApp> {
    const issuer = options.issuer ?? (await LocalIssuer.start());
    const target = targetOf(options);
    const { topology } = target;
    const { redis: redisConfig, client: redis } = targetRedis(target);
    try {
      return await TestApp.build(options, issuer, redisConfig, redis, topology);
    } catch (error) {
      redis.disconnect();
      if (!options.issuer) {
        await issuer.close();
      }
      throw error;
    }
  }

  private static async build(
    options: TestAppOptions,
    issuer: LocalIssuer,
    redisConfig: DeepPartial<AppConfig['redis']>,
    redis: DirectClient,
    topology: Topology,
  ): Promise<TestApp> {
    if (redis instanceof Cluster && (options.ready ?? true)) {
      // A cluster client knows its masters (servers()) once it has the slot map.
      await redis.ping();
    }
    const defaults = {
      redis: { ...redisConfig, keyPrefix: uniquePrefix() },
      auth: { issuer: issuer.url, audience: issuer.audience },
      log: { level: options.captureLogs ? 'info' : 'silent' },
      server: { port: 0, host: '127.0.0.1' },
    };
    const config = loadConfig({
      env: {},
      overrides: merge(defaults, options.config ?? {}),
    });
    const logs: string[] = [];
    const app = await createApp(config, {
      logDestination: { write: (line: string) => void logs.push(line) },
    });
    const [read, write, both, none] = await Promise.all([
      issuer.token({ scopes: [SCOPES.read] }),
      issuer.token({ scopes: [SCOPES.write] }),
      issuer.token({ scopes: [SCOPES.read, SCOPES.write] }),
      issuer.token({ scopes: [] }),
    ]);
    const testApp = new TestApp(app, config, issuer, !options.issuer, redis, topology, {
      read,
      write,
      both,
      none,
    });
    testApp.logs = logs;
    try {
      if (options.ready ?? true) {
        await eventually(async () => {
          const { statusCode } = await testApp.call('GET', '/readyz');
          if (statusCode !== 200) {
            throw new Error(`not ready: /readyz ${statusCode}`);
          }
        }, 10000);
      }
      if (options.listen) {
        await app.listen({ port: 0, host: '127.0.0.1' });
        testApp.baseUrl = await app.getUrl();
        testApp.baseUrl = testApp.baseUrl.replace('[::1]', '127.0.0.1');
      }
    } catch (error) {
      await app.close();
      throw error;
    }
    return testApp;
  }

  get prefix(): string {
    return this.config.redis.keyPrefix;
  }

  /** A real token from the issuer, cached per request shape. */
  token(request: TokenRequest): Promise<string> {
    const key = JSON.stringify(request);
    let token = this.tokenCache.get(key);
    if (!token) {
      token = this.issuer.token(request);
      this.tokenCache.set(key, token);
    }
    return token;
  }

  /**
   * One request through Fastify's inject. Its answer must keep the OpenAPI contract
   * (test/support/contract.ts): a violation throws here, naming what is wrong, and is kept so
   * that close() fails too should a test swallow the error.
   */
  async call(
    method: InjectOptions['method'],
    url: string,
    options: CallOptions = {},
  ): Promise<Response> {
    const response = await this.inject(method, url, options);
    const problems = options.contract === false ? [] : this.contract.check(method, url, response);
    if (problems.length > 0) {
      const violation = { request: `${method} ${url}`, status: response.statusCode, problems };
      this.contractViolations.push(violation);
      throw new Error(`OpenAPI contract broken by ${violation.request}:\n${problems.join('\n')}`);
    }
    return response;
  }

  private inject(
    method: InjectOptions['method'],
    url: string,
    options: CallOptions,
  ): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) {
      headers.authorization = `Bearer ${options.token}`;
    }
    const body = options.body;
    const isRaw = Buffer.isBuffer(body) || typeof body === 'string';
    if (body !== undefined && !isRaw) {
      headers['content-type'] ??= 'application/json';
    }
    return this.app.inject({
      method,
      url,
      headers,
      query: options.query,
      payload: body === undefined ? undefined : isRaw ? body : JSON.stringify(body),
    });
  }

  /** The servers holding the data: every master of a cluster, else the one (primary) server. */
  servers(): Redis[] {
    return this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
  }

  /** A new direct client like `redis` (to subscribe with, say); the caller disconnects it. */
  duplicateRedis(): DirectClient {
    const copy = this.redis instanceof Cluster ? this.redis.duplicate() : this.redis.duplicate();
    copy.on('error', () => undefined);
    return copy;
  }

  /** Keys of this app in Redis, without the prefix (from every master of a cluster). */
  async storedKeys(): Promise<string[]> {
    const keys = await Promise.all(this.servers().map((node) => scanAll(node, `${this.prefix}*`)));
    return keys
      .flat()
      .map((key) => key.slice(this.prefix.length))
      .sort();
  }

  async close(): Promise<void> {
    await this.app.close();
    this.redis.disconnect();
    if (this.ownsIssuer) {
      await this.issuer.close();
    }
    if (this.contractViolations.length > 0) {
      throw new Error(
        `OpenAPI contract broken by ${this.contractViolations.length} answer(s): ${JSON.stringify(this.contractViolations, null, 2)}`,
      );
    }
  }
}

/**
 * A TestApp for the length of `run`, closed however `run` ends; answers what `run` answers.
 * For an app that only one test (or one helper) uses: a suite-wide app lives in beforeAll.
 */
export async function withApp<T>(
  options: TestAppOptions,
  run: (t: TestApp) => Promise<T>,
): Promise<T> {
  const t = await TestApp.create(options);
  try {
    return await run(t);
  } finally {
    await t.close();
  }
}

export function json<T = Record<string, unknown>>(response: Response): T {
  return response.json<T>();
}

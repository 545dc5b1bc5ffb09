import { randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { createApp } from '../../src/app.factory';
import type { AppConfig } from '../../src/config/app-config';
import { loadConfig, merge, type DeepPartial } from '../../src/config/config.loader';
import { LocalIssuer, type TokenRequest } from '../../src/dev/local-issuer';
import { SCOPES } from '../../src/auth/scopes';
import { eventually } from './ports';

export type Response = LightMyRequestResponse;

export interface TestAppOptions {
  /** Redis to use; the suite's shared one by default. */
  redisUrl?: string;
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
}

/** A unique key prefix per app, so suites share one Redis without seeing each other's keys. */
export function uniquePrefix(): string {
  return `t:${randomUUID().slice(0, 8)}:`;
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
  private readonly tokenCache = new Map<string, Promise<string>>();

  private constructor(
    readonly app: NestFastifyApplication,
    readonly config: AppConfig,
    readonly issuer: LocalIssuer,
    private readonly ownsIssuer: boolean,
    /** A direct client to the same Redis, for assertions (keys include the prefix). */
    readonly redis: Redis,
    tokens: TestApp['tokens'],
  ) {
    this.tokens = tokens;
  }

  static async create(options: TestAppOptions = {}): Promise<TestApp> {
    const issuer = options.issuer ?? (await LocalIssuer.start());
    const redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const defaults = {
      redis: { url: redisUrl, keyPrefix: uniquePrefix() },
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
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    const testApp = new TestApp(app, config, issuer, !options.issuer, redis, {
      read,
      write,
      both,
      none,
    });
    testApp.logs = logs;
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

  call(method: InjectOptions['method'], url: string, options: CallOptions = {}): Promise<Response> {
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

  /** Keys of this app in Redis, without the prefix. */
  async storedKeys(): Promise<string[]> {
    const keys = await this.redis.keys(`${this.prefix}*`);
    return keys.map((key) => key.slice(this.prefix.length)).sort();
  }

  async close(): Promise<void> {
    await this.app.close();
    this.redis.disconnect();
    if (this.ownsIssuer) {
      await this.issuer.close();
    }
  }
}

export function json<T = Record<string, unknown>>(response: Response): T {
  return response.json<T>();
}

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/config.loader';

const REQUIRED = { OIDC_ISSUER: 'https://issuer.example.com', OIDC_AUDIENCE: 'redis-gateway' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ env: { ...REQUIRED, ...env } });
  } catch (error) {
    if (error instanceof ConfigError) {
      return error.problems;
    }
    throw error;
  }
  return [];
}

describe('configuration', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gateway-config-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('has a default for every setting in config/default.yaml', () => {
    const config = loadConfig({ env: REQUIRED });
    expect(config.server).toMatchObject({ port: 8080, bodyLimitBytes: 2 * 1024 * 1024 });
    expect(config.redis).toMatchObject({
      mode: 'standalone',
      host: '127.0.0.1',
      port: 6379,
      db: 0,
    });
    expect(config.redis.commandTimeoutMs).toBeLessThan(config.redis.socketTimeoutMs);
    expect(config.limits).toEqual({
      maxKeyBytes: 1024,
      maxValueBytes: 1024 * 1024,
      maxBatchKeys: 1000,
      maxScanCount: 1000,
      maxBlockMs: 30000,
      maxPatternBytes: 256,
      maxResponseBytes: 16 * 1024 * 1024,
      maxJsonValues: 20000,
    });
    expect(config.auth.keyPatternsClaim).toBe('redis_keys');
    expect(config.sse.heartbeatMs).toBe(15000);
    expect(config.locks.maxTtlMs).toBe(300000);
    // -1 in the file means "the same as locks.maxTtlMs".
    expect(config.locks.delayedRestartMs).toBe(300000);
  });

  it('reads every environment variable of README.md, Configuration', () => {
    const config = loadConfig({
      env: {
        ...REQUIRED,
        PORT: '9000',
        HOST: '127.0.0.2',
        REDIS_URL: 'rediss://user:pw@redis.internal:6380/2',
        REDIS_USERNAME: 'svc',
        REDIS_PASSWORD: 'secret',
        REDIS_DATABASE: '3',
        REDIS_KEY_PREFIX: 'prism:',
        REDIS_MODE: 'sentinel',
        REDIS_SENTINELS: 'a:26379, b:26379',
        REDIS_SENTINEL_NAME: 'primary',
        REDIS_CLUSTER_NODES: 'c1:7000,c2:7001',
        JWKS_URI: 'https://issuer.example.com/keys',
        LOG_LEVEL: 'debug',
      },
    });
    expect(config.server).toMatchObject({ port: 9000, host: '127.0.0.2' });
    expect(config.redis).toMatchObject({
      url: 'rediss://user:pw@redis.internal:6380/2',
      username: 'svc',
      password: 'secret',
      db: 3,
      keyPrefix: 'prism:',
      mode: 'sentinel',
      sentinels: ['a:26379', 'b:26379'],
      sentinelName: 'primary',
      clusterNodes: ['c1:7000', 'c2:7001'],
    });
    expect(config.auth).toMatchObject({
      issuer: 'https://issuer.example.com',
      audience: 'redis-gateway',
      jwksUri: 'https://issuer.example.com/keys',
    });
    expect(config.log.level).toBe('debug');
  });

  it('takes REDIS_ADDRESS, or REDIS_HOST and REDIS_PORT, and REDIS_DB', () => {
    expect(
      loadConfig({ env: { ...REQUIRED, REDIS_ADDRESS: 'cache.internal:6390' } }).redis,
    ).toMatchObject({
      host: 'cache.internal',
      port: 6390,
    });
    expect(
      loadConfig({ env: { ...REQUIRED, REDIS_HOST: 'h', REDIS_PORT: '7000', REDIS_DB: '5' } })
        .redis,
    ).toMatchObject({ host: 'h', port: 7000, db: 5 });
  });

  it('layers CONFIG_FILE over the defaults and the environment over both', () => {
    const file = join(dir, 'layer.yaml');
    writeFileSync(file, 'server:\n  port: 7000\nlimits:\n  maxBatchKeys: 10\n');
    const config = loadConfig({ env: { ...REQUIRED, CONFIG_FILE: file, PORT: '7001' } });
    expect(config.server.port).toBe(7001);
    expect(config.limits.maxBatchKeys).toBe(10);
    expect(config.limits.maxKeyBytes).toBe(1024);
  });

  it('names every wrong setting and what is allowed, never the value given', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      REDIS_MODE: 'ring',
      LOG_LEVEL: 'loud',
      REDIS_URL: 'http://hunter2@redis',
      REDIS_SENTINELS: 'no-port',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'server.port: must be an integer from 0 to 65535',
        'redis.mode: must be one of: standalone, sentinel, cluster',
        'log.level: must be one of: trace, debug, info, warn, error, fatal, silent',
        'redis.url: must be a redis:// or rediss:// URL',
        'redis.sentinels: must be a list of host:port',
      ]),
    );
    const text = problems.join('\n');
    for (const value of ['eighty', 'ring', 'loud', 'hunter2', 'no-port']) {
      expect(text).not.toContain(value);
    }
  });

  it('requires an issuer and an audience', () => {
    expect(() => loadConfig({ env: {} })).toThrow(ConfigError);
    const problems = (() => {
      try {
        loadConfig({ env: {} });
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    })();
    expect(problems).toEqual([
      'auth.issuer: required (OIDC_ISSUER), unless auth.jwksUri (JWKS_URI) is set',
      'auth.audience: required (OIDC_AUDIENCE)',
    ]);
  });

  it.each([
    ['http://issuer.example.com', false],
    ['ftp://issuer.example.com', false],
    ['not a url', false],
    ['https://issuer.example.com', true],
    ['http://127.0.0.1:9000', true],
    ['http://127.8.9.10', true],
    ['http://localhost:9000', true],
    ['http://[::1]:9000', true],
  ])('accepts the issuer %s: %p (https, or http on loopback)', (issuer, accepted) => {
    expect(problemsOf({ OIDC_ISSUER: issuer }).length === 0).toBe(accepted);
  });

  it('refuses a socket timeout that does not exceed the command timeout', () => {
    const file = join(dir, 'timeouts.yaml');
    writeFileSync(file, 'redis:\n  commandTimeoutMs: 3000\n  socketTimeoutMs: 2000\n');
    expect(problemsOf({ CONFIG_FILE: file })).toEqual([
      'redis.socketTimeoutMs: must be greater than redis.commandTimeoutMs',
    ]);
  });

  it('has the near-cache off by default, and bounds its sizes and patterns', () => {
    expect(loadConfig({ env: REQUIRED }).nearCache).toEqual({
      enabled: false,
      maxBytes: 64 * 1024 * 1024,
      maxEntryBytes: 64 * 1024,
      keyPatterns: ['*'],
    });
    const file = join(dir, 'near-cache.yaml');
    writeFileSync(
      file,
      'nearCache:\n  enabled: yes-please\n  maxBytes: 2048\n  maxEntryBytes: 4096\n' +
        `  keyPatterns: ['user:*', '${'[abc]'.repeat(60)}']\n`,
    );
    expect(problemsOf({ CONFIG_FILE: file })).toEqual([
      'nearCache.enabled: must be true or false',
      'nearCache.maxEntryBytes: must not be greater than nearCache.maxBytes',
      'nearCache.keyPatterns: must be at most 256 bytes (limits.maxPatternBytes)',
    ]);
    writeFileSync(file, "nearCache:\n  maxBytes: 10\n  keyPatterns: ['']\n");
    expect(problemsOf({ CONFIG_FILE: file })).toEqual([
      'nearCache.maxBytes: must be an integer from 1024 to 17179869184',
      'nearCache.maxEntryBytes: must not be greater than nearCache.maxBytes',
      'nearCache.keyPatterns: must not be empty',
    ]);
  });

  it('refuses unknown settings, a missing CONFIG_FILE and unreadable files', () => {
    const file = join(dir, 'unknown.yaml');
    writeFileSync(file, 'server:\n  prot: 1\n');
    expect(problemsOf({ CONFIG_FILE: file })).toEqual(['server.prot: is not a known setting']);
    expect(problemsOf({ CONFIG_FILE: join(dir, 'absent.yaml') })).toEqual([
      `${join(dir, 'absent.yaml')}: not found (YAML configuration file)`,
    ]);
    expect(problemsOf({ REDIS_PASSWORD_FILE: join(dir, 'no-password') })).toEqual([
      'redis.passwordFile: file not found or not readable',
    ]);
    expect(problemsOf({ REDIS_TLS_CA_FILE: join(dir, 'no-ca.pem') })).toEqual([
      'redis.tls.caFile: file not found or not readable',
    ]);
  });

  it('needs sentinels in sentinel mode and nodes in cluster mode', () => {
    expect(problemsOf({ REDIS_MODE: 'sentinel' })).toEqual([
      'redis.sentinels: required in sentinel mode (REDIS_SENTINELS=host:port,...)',
    ]);
    expect(problemsOf({ REDIS_MODE: 'cluster' })).toEqual([
      'redis.clusterNodes: required in cluster mode (REDIS_CLUSTER_NODES=host:port,...)',
    ]);
  });

  it('refuses a password together with a password file', () => {
    const file = join(dir, 'password');
    writeFileSync(file, 'pw\n');
    expect(problemsOf({ REDIS_PASSWORD: 'x', REDIS_PASSWORD_FILE: file })).toEqual([
      'redis.passwordFile: cannot be combined with redis.password',
    ]);
  });

  it('has the Upstash endpoint off by default and accepts only SHA-1s as allowed scripts', () => {
    const config = loadConfig({ env: REQUIRED });
    expect(config.upstash).toEqual({
      enabled: false,
      maxPipelineCommands: 1000,
      allowedScripts: [],
    });
    const sha = 'a'.repeat(40);
    expect(
      loadConfig({ env: REQUIRED, overrides: { upstash: { allowedScripts: [sha] } } }).upstash
        .allowedScripts,
    ).toEqual([sha]);
    const problems = (upstash: Record<string, unknown>) => {
      try {
        loadConfig({ env: REQUIRED, overrides: { upstash } });
      } catch (error) {
        return (error as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ allowedScripts: ['not-a-sha', sha] })).toEqual([
      'upstash.allowedScripts: must be a list of SHA-1 digests (40 hex digits)',
    ]);
    expect(problems({ maxPipelineCommands: 0, enabled: 'yes' })).toEqual(
      expect.arrayContaining([
        'upstash.maxPipelineCommands: must be an integer from 1 to 100000',
        'upstash.enabled: must be true or false',
      ]),
    );
  });

  it('accepts only asymmetric JWT algorithms', () => {
    const file = join(dir, 'algorithms.yaml');
    writeFileSync(file, 'auth:\n  algorithms: [RS256, HS256]\n');
    expect(problemsOf({ CONFIG_FILE: file })).toEqual([
      'auth.algorithms: must be one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512',
    ]);
  });

  describe('server.cors.origins (CORS_ORIGINS)', () => {
    const ORIGINS_PROBLEM =
      'server.cors.origins: must be a list of exact origins (http://host:port or https://host, no path, no wildcard)';
    const PORT_PROBLEM =
      'server.cors.origins: a port must be from 1 to 65535, without leading zeros, and left out when it is the scheme default (80, 443)';

    it('is empty by default, and takes a comma-separated list of exact origins', () => {
      expect(loadConfig({ env: REQUIRED }).server.cors.origins).toEqual([]);
      const origins =
        'http://127.0.0.1:8095, https://app.example.com,http://[::1]:3000,http://localhost';
      expect(
        loadConfig({ env: { ...REQUIRED, CORS_ORIGINS: origins } }).server.cors.origins,
      ).toEqual([
        'http://127.0.0.1:8095',
        'https://app.example.com',
        'http://[::1]:3000',
        'http://localhost',
      ]);
    });

    it.each([
      '*',
      'null',
      'app.example.com',
      'ftp://app.example.com',
      'https://*.example.com',
      'https://app.example.com/',
      'https://app.example.com/path',
      'https://app.example.com?x=1',
      'https://App.Example.com',
      'https://user@app.example.com',
      'https://app.example.com:',
    ])('refuses %s, naming what is allowed but not the value', (origin) => {
      const problems = problemsOf({ CORS_ORIGINS: `https://ok.example.com,${origin}` });
      expect(problems).toEqual([ORIGINS_PROBLEM]);
    });

    it.each([
      'http://host:80',
      'https://host:443',
      'http://host:0',
      'http://host:65536',
      'http://host:08080',
    ])('refuses the port of %s (a browser would never send that origin)', (origin) => {
      expect(problemsOf({ CORS_ORIGINS: origin })).toEqual([PORT_PROBLEM]);
    });

    it('accepts a port that is not the default of its scheme', () => {
      expect(
        problemsOf({ CORS_ORIGINS: 'https://host:80,http://host:443,http://h:65535' }),
      ).toEqual([]);
    });
  });
});

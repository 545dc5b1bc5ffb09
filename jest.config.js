/** What every project shares: TypeScript through swc, the Node environment. */
const base = {
  testEnvironment: 'node',
  rootDir: '.',
  // Jest cannot load ES modules on Node 20: swc compiles ours and the ESM-only dependencies.
  transform: {
    '^.+\\.(t|j|mj)s$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  transformIgnorePatterns: [
    '/node_modules/(?!(@nestjs|openid-client|oauth4webapi|jose|oidc-provider|cookie|file-type|strtok3|token-types|@tokenizer|uint8array-extras|@borewit|get-port|openapi-fetch|openapi-typescript|content-disposition)/)',
  ],
};

/**
 * * The endpoint suites that also run against a Sentinel set and a Redis Cluster: the
 * topology matrix. Each matrix project starts its topology once in its globalSetup (from the
 * redis-server binary, on free ports) and its setupFiles make TestApp use it.
 */
const suites = (names) => names.map((suite) => `<rootDir>/test/e2e/${suite}.e2e-spec.ts`);
const matrix = suites([
  'kv',
  'hashes',
  'streams',
  'streams-events',
  'pubsub',
  'locks',
  'limits',
  'upstash',
  'upstash-subscribe',
  'near-cache-topology',
]);

/** Answers read with fetch keep the OpenAPI contract too, in every project. */
const CONTRACT_FETCH = '<rootDir>/test/support/contract-fetch.setup.ts';
/** A failed test runs once more, its first failure logged (test/support/retry.setup.ts). */
const RETRY = ['<rootDir>/test/support/retry.setup.ts'];

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      ...base,
      displayName: 'standalone',
      testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
      setupFiles: [CONTRACT_FETCH],
      setupFilesAfterEnv: RETRY,
    },
    {
      ...base,
      displayName: 'sentinel',
      testMatch: matrix,
      globalSetup: '<rootDir>/test/support/matrix/sentinel.global-setup.ts',
      globalTeardown: '<rootDir>/test/support/matrix/sentinel.global-teardown.ts',
      setupFiles: [CONTRACT_FETCH, '<rootDir>/test/support/matrix/sentinel.setup.ts'],
      setupFilesAfterEnv: RETRY,
    },
    {
      ...base,
      displayName: 'cluster',
      testMatch: matrix,
      globalSetup: '<rootDir>/test/support/matrix/cluster.global-setup.ts',
      globalTeardown: '<rootDir>/test/support/matrix/cluster.global-teardown.ts',
      setupFiles: [CONTRACT_FETCH, '<rootDir>/test/support/matrix/cluster.setup.ts'],
      setupFilesAfterEnv: RETRY,
    },
  ],
  testTimeout: 30000,
  maxWorkers: 2,
  forceExit: false,
};

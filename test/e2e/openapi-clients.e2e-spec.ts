import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ts from 'typescript';
import { OPENAPI_FILE } from '../../src/openapi/openapi';
import { TestApp } from '../support/app';

/**
 * A second generator on the committed document: @hey-api/openapi-ts with its fetch client and
 * SDK. openapi-typescript (in openapi.e2e-spec.ts) only reads paths and schemas; hey-api also
 * turns each operationId into a function and each security requirement into an auth header,
 * so a document mistake that one generator tolerates can still break the other.
 */
const WORK_DIR = resolve(__dirname, '../../.tmp/openapi-clients');
const SDK_DIR = join(WORK_DIR, 'hey-api');

/**
 * The generator is an ES module (jest cannot import it), so it runs in its own node process.
 * `module.extension: null` makes the generated imports extensionless: with the repository's
 * NodeNext tsconfig hey-api would write `./client/index.js`, which jest's resolver does not
 * map to the `.ts` file it generated.
 */
const GENERATE = `
import { createClient } from '@hey-api/openapi-ts';
const [input, path] = process.argv.slice(1);
await createClient({
  input,
  output: { path, module: { extension: null } },
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
  logs: { file: false, level: 'silent' },
});
`;

// A program written against the generated SDK: it must type-check, and the line marked
// with a ts-expect-error directive proves the types are real (with `any` types the directive
// would be an error itself).
const CLIENT_PROGRAM = `import { createClient } from './hey-api/client';
import { hashesGetField, hashesPut, kvGet, kvPut, pubSubPublish, type KvPutData } from './hey-api';

export interface RoundTrip {
  value: string;
  ttl: number;
  missing: { status: number; code: string };
  field: string;
  added: number;
  receivers: number;
}

// @ts-expect-error: the document makes ttl a number, so a string is refused
const wrongTtl: KvPutData['body']['ttl'] = '60';
void wrongTtl;

export async function roundTrip(baseUrl: string, token: string): Promise<RoundTrip> {
  // The SDK adds Authorization: Bearer from the operations' security requirement.
  const client = createClient({ baseUrl, auth: token });
  const written = await kvPut({
    client,
    path: { key: 'hey-api:client' },
    body: { value: 'from hey-api', ttl: 120 },
  });
  if (written.error || written.data.key !== 'hey-api:client') {
    throw new Error(\`PUT failed: \${written.response.status}\`);
  }
  const read = await kvGet({ client, path: { key: 'hey-api:client' } });
  if (read.error) {
    throw new Error(\`GET failed: \${read.error.code}\`);
  }
  const missing = await kvGet({ client, path: { key: 'hey-api:absent' } });
  if (!missing.error) {
    throw new Error('a miss must be an error');
  }
  const hash = await hashesPut({
    client,
    path: { key: 'hey-api:hash' },
    body: { fields: { name: 'Ada', born: '1815' } },
  });
  if (hash.error) {
    throw new Error(\`HSET failed: \${hash.error.code}\`);
  }
  const field = await hashesGetField({ client, path: { key: 'hey-api:hash', field: 'name' } });
  if (field.error) {
    throw new Error(\`HGET failed: \${field.error.code}\`);
  }
  const published = await pubSubPublish({
    client,
    path: { channel: 'hey-api:channel' },
    body: { message: 'hi' },
  });
  if (published.error) {
    throw new Error(\`PUBLISH failed: \${published.error.code}\`);
  }
  return {
    value: read.data.value,
    ttl: read.data.ttl,
    missing: { status: missing.response.status, code: missing.error.code },
    field: field.data.value,
    added: hash.data.added,
    receivers: published.data.receivers,
  };
}
`;

function generateSdk(): void {
  mkdirSync(WORK_DIR, { recursive: true });
  execFileSync(
    process.execPath,
    ['--input-type=module', '--eval', GENERATE, OPENAPI_FILE, SDK_DIR],
    { cwd: resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

/**
 * Bundler resolution, as the extensionless imports need; strict, with the DOM library for
 * fetch's types, and nothing else from the project (`types: []`) so that only the generated
 * code and the program are judged.
 */
function typeErrors(files: string[]): string[] {
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2023,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: [],
    skipLibCheck: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
}

describe('OpenAPI clients', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({ listen: true });
  });

  afterAll(async () => {
    await t.close();
  });

  it('generates a typed SDK (@hey-api/openapi-ts, fetch client) that round-trips KV, a hash and a publish', async () => {
    generateSdk();
    const program = join(WORK_DIR, 'round-trip.ts');
    writeFileSync(program, CLIENT_PROGRAM);

    expect(typeErrors([program])).toEqual([]);

    // jest's swc transform compiles the generated TypeScript on require, like the program.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { roundTrip } = require(program) as {
      roundTrip: (baseUrl: string, token: string) => Promise<Record<string, unknown>>;
    };
    const result = await roundTrip(t.baseUrl, t.tokens.both);
    expect(result).toEqual({
      value: 'from hey-api',
      ttl: expect.any(Number),
      missing: { status: 404, code: 'NOT_FOUND' },
      field: 'Ada',
      added: 2,
      receivers: 0,
    });
    expect(result.ttl).toBeGreaterThan(100);
    expect(await t.redis.get(`${t.prefix}hey-api:client`)).toBe('from hey-api');
    expect(await t.redis.hgetall(`${t.prefix}hey-api:hash`)).toEqual({ name: 'Ada', born: '1815' });
    expect(await t.storedKeys()).toEqual(['hey-api:client', 'hey-api:hash']);
  }, 60000);
});

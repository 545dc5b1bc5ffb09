import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as ts from 'typescript';
import { OPENAPI_FILE, buildOpenApiDocument } from '../../src/openapi/openapi';
import { TestApp } from '../support/app';

const CLIENT_DIR = resolve(__dirname, '../../.tmp/openapi-client');

// A client program written against the generated types: it must type-check, and the line
// marked @ts-expect-error proves the types are real (with `any` types it would be an error).
const CLIENT_PROGRAM = `import createClient from 'openapi-fetch';
import type { paths } from './api';

export async function roundTrip(baseUrl: string, token: string): Promise<{ value: string; ttl: number }> {
  const client = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${token}\` } });
  const written = await client.PUT('/redis/kv/{key}', {
    params: { path: { key: 'generated:client' } },
    body: { value: 'from a generated client', ttl: 120 },
  });
  if (written.error || written.data.key !== 'generated:client') {
    throw new Error('PUT failed');
  }
  // @ts-expect-error: the document has no such path
  void client.GET('/redis/no-such-path');
  const read = await client.GET('/redis/kv/{key}', { params: { path: { key: 'generated:client' } } });
  if (read.error) {
    throw new Error(\`GET failed: \${read.error.code}\`);
  }
  // The 200 is JSON or, with Accept: application/octet-stream, the raw bytes: the types say both.
  if (typeof read.data === 'string') {
    throw new Error('asked for JSON, got the raw bytes');
  }
  const missing = await client.GET('/redis/kv/{key}', { params: { path: { key: 'generated:absent' } } });
  if (missing.response.status !== 404 || missing.error?.code !== 'NOT_FOUND') {
    throw new Error('a miss must be a typed 404 problem');
  }
  return { value: read.data.value, ttl: read.data.ttl };
}
`;

function typeErrors(files: string[]): string[] {
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: [],
    skipLibCheck: true,
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('OpenAPI document', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create({ listen: true });
  });

  afterAll(async () => {
    await t.close();
  });

  it('the committed openapi.json is the document the code generates (run `npm run openapi`)', () => {
    const committed: unknown = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'));
    const generated: unknown = JSON.parse(JSON.stringify(buildOpenApiDocument(t.app)));
    expect(committed).toEqual(generated);
  });

  it('is served at /openapi.json with its UI at /docs, without a token', async () => {
    const served = await t.call('GET', '/openapi.json');
    expect(served.statusCode).toBe(200);
    const document = served.json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths)).toContain('/redis/kv/{key}');
    const ui = await t.call('GET', '/docs');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
  });

  it('declares the bearer scheme, each operation with its scopes and problem+json errors', () => {
    const document = buildOpenApiDocument(t.app);
    expect(document.components?.securitySchemes?.bearer).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    const get = document.paths['/redis/kv/{key}'].get;
    expect(get?.security).toEqual([{ bearer: ['redis:read'] }]);
    expect(document.paths['/redis/kv/{key}'].put?.security).toEqual([{ bearer: ['redis:write'] }]);
    for (const status of ['401', '403', '404', '503', '504']) {
      const response = get?.responses[status] as { content?: Record<string, unknown> } | undefined;
      expect(Object.keys(response?.content ?? {})).toEqual(['application/problem+json']);
    }
    expect(document.paths['/healthz'].get?.security).toBeUndefined();
  });

  it('generates a typed client (openapi-typescript + openapi-fetch) that round-trips a value', async () => {
    // Exactly what README tells users to run (the CLI is an ES module, so it runs outside jest).
    mkdirSync(CLIENT_DIR, { recursive: true });
    execFileSync(process.execPath, [
      join(dirname(require.resolve('openapi-typescript/package.json')), 'bin', 'cli.js'),
      OPENAPI_FILE,
      '--output',
      join(CLIENT_DIR, 'api.d.ts'),
    ]);
    const program = join(CLIENT_DIR, 'round-trip.ts');
    writeFileSync(program, CLIENT_PROGRAM);

    expect(typeErrors([program])).toEqual([]);

    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { roundTrip } = require(program) as {
      roundTrip: (baseUrl: string, token: string) => Promise<{ value: string; ttl: number }>;
    };
    const result = await roundTrip(t.baseUrl, t.tokens.both);
    expect(result.value).toBe('from a generated client');
    expect(result.ttl).toBeGreaterThan(100);
    expect(await t.redis.get(`${t.prefix}generated:client`)).toBe('from a generated client');
  }, 60000);
});

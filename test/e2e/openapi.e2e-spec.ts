import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as ts from 'typescript';
import type {
  OpenAPIObject,
  OperationObject,
  ParameterObject,
  ReferenceObject,
  RequestBodyObject,
  ResponseObject,
  SchemaObject,
} from '@nestjs/swagger';
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

  describe('states exactly what the server does', () => {
    type Operation = OperationObject & { path: string; method: string };
    let document: OpenAPIObject;
    let operations: Operation[];

    beforeAll(() => {
      document = buildOpenApiDocument(t.app);
      operations = Object.entries(document.paths).flatMap(([path, item]) =>
        (['get', 'put', 'post', 'delete'] as const).flatMap((method) =>
          item[method] ? [{ ...item[method], path, method }] : [],
        ),
      );
    });

    const response = (operation: OperationObject, status: string) =>
      operation.responses[status] as ResponseObject;
    const requestContent = (operation: OperationObject) =>
      (operation.requestBody as RequestBodyObject | undefined)?.content;
    const name = (operation: Operation) => `${operation.method.toUpperCase()} ${operation.path}`;

    it('answers the raw GET as binary and the JSON GET as ValueDto, with X-TTL and X-Cache', () => {
      const ok = response(document.paths['/redis/kv/{key}'].get!, '200');
      expect(ok.content).toEqual({
        'application/json': { schema: { $ref: '#/components/schemas/ValueDto' } },
        'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
      });
      expect(Object.keys(ok.headers ?? {})).toEqual(['X-Request-Id', 'X-TTL', 'X-Cache']);
      const mget = response(document.paths['/redis/kv/_mget'].post!, '200');
      expect(mget.headers).toHaveProperty('X-Cache');
    });

    it('gives each write one request media type: JSON on PUT {key}, raw bytes on PUT {key}/raw', () => {
      expect(Object.keys(requestContent(document.paths['/redis/kv/{key}'].put!) ?? {})).toEqual([
        'application/json',
      ]);
      expect(requestContent(document.paths['/redis/kv/{key}/raw'].put!)).toEqual({
        'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
      });
      for (const operation of operations) {
        expect({
          op: name(operation),
          types: Object.keys(requestContent(operation) ?? {}).length,
        }).toEqual({ op: name(operation), types: requestContent(operation) ? 1 : 0 });
      }
    });

    it('documents 413 wherever a body is read, 415 wherever it is JSON, 429 and 503 on every /redis operation', () => {
      for (const operation of operations) {
        const statuses = Object.keys(operation.responses);
        const expected = [
          ...(requestContent(operation) ? ['413'] : []),
          ...(requestContent(operation)?.['application/json'] ? ['415'] : []),
          ...(operation.path.startsWith('/redis') ? ['401', '403', '429', '503'] : []),
        ];
        expect({ op: name(operation), statuses }).toEqual({
          op: name(operation),
          statuses: expect.arrayContaining(expected),
        });
      }
    });

    it('puts X-Request-Id on every response, Retry-After on 429 and 503 problems, WWW-Authenticate on 401', () => {
      expect(Object.keys(document.components?.headers ?? {})).toEqual(
        expect.arrayContaining(['RequestId', 'RetryAfter', 'WwwAuthenticate', 'TTL', 'Cache']),
      );
      for (const operation of operations) {
        for (const [status, answer] of Object.entries(operation.responses)) {
          const headers = (answer as ResponseObject).headers ?? {};
          const where = `${name(operation)} ${status}`;
          expect({ where, id: headers['X-Request-Id'] }).toEqual({
            where,
            id: { $ref: '#/components/headers/RequestId' },
          });
          // On every refusal: readiness' own 503 report is an answer, not a refusal.
          const refusal = (answer as ResponseObject).content?.['application/problem+json'];
          if (['429', '503'].includes(status) && refusal) {
            expect({ where, retry: headers['Retry-After'] }).toEqual({
              where,
              retry: { $ref: expect.stringMatching(/^#\/components\/headers\/RetryAfter/) },
            });
          }
          if (status === '401') {
            expect(headers['WWW-Authenticate']).toEqual({
              $ref: '#/components/headers/WwwAuthenticate',
            });
          }
        }
      }
      // LOCK_HELD invites a retry too.
      const held = response(document.paths['/redis/locks/{name}'].post!, '409');
      expect(held.headers?.['Retry-After']).toEqual({ $ref: '#/components/headers/RetryAfter' });
    });

    it('types whole numbers as integers (only increments, counters and a latency are numbers)', () => {
      const numbers: string[] = [];
      const walk = (schema: SchemaObject | ReferenceObject, at: string): void => {
        if ('$ref' in schema) {
          return;
        }
        const types = ([] as unknown[]).concat(schema.type);
        if (types.includes('number')) {
          numbers.push(at);
        }
        Object.entries(schema.properties ?? {}).forEach(([key, member]) =>
          walk(member, `${at}.${key}`),
        );
      };
      Object.entries(document.components?.schemas ?? {}).forEach(([key, schema]) =>
        walk(schema, key),
      );
      expect(numbers.sort()).toEqual([
        'CounterDto.value',
        'HashCounterDto.value',
        'IncrDto.by',
        'StatusDto.latencyMs',
      ]);
      const schemas = document.components?.schemas as Record<string, SchemaObject>;
      expect(schemas.TtlDto.properties?.ttl).toMatchObject({ type: 'integer', minimum: 1 });
      expect(schemas.GroupReadDto.properties?.blockMs).toMatchObject({
        type: 'integer',
        maximum: 2147483647,
      });
      expect(schemas.ExtendLockDto.properties?.token).toMatchObject({
        pattern: '^[0-9a-f]{32}$',
      });
      const release = document.paths['/redis/locks/{name}'].delete!;
      expect(release.parameters).toContainEqual(
        expect.objectContaining({
          name: 'Lock-Token',
          schema: expect.objectContaining({ pattern: '^[0-9a-f]{32}$' }),
        }),
      );
      const key = (document.paths['/redis/kv/{key}'].get!.parameters as ParameterObject[])[0];
      expect(key.schema).toEqual({ type: 'string', minLength: 1, maxLength: 1024 });
    });

    it('closes every request body schema (additionalProperties: false)', () => {
      const schemas = document.components?.schemas as Record<string, SchemaObject>;
      for (const operation of operations) {
        const schema = requestContent(operation)?.['application/json']?.schema;
        if (schema && '$ref' in schema) {
          const target = schema.$ref.split('/').pop() ?? '';
          expect({ target, closed: schemas[target].additionalProperties }).toEqual({
            target,
            closed: false,
          });
        }
      }
    });

    it('answers SSE as text/event-stream, to the bearer token or a ticket', () => {
      expect(document.components?.securitySchemes?.ticket).toEqual(
        expect.objectContaining({ type: 'apiKey', in: 'query', name: 'ticket' }),
      );
      const streams = operations.filter((operation) =>
        Object.keys(response(operation, '200')?.content ?? {}).includes('text/event-stream'),
      );
      expect(streams.map(name).sort()).toEqual([
        'GET /redis/pubsub/channels/{channel}/events',
        'GET /redis/pubsub/patterns/{pattern}/events',
        'GET /redis/streams/{key}/events',
      ]);
      for (const operation of streams) {
        expect(response(operation, '200').content).toEqual({
          'text/event-stream': { schema: { type: 'string' } },
        });
        expect(operation.security).toEqual([{ bearer: ['redis:read'] }, { ticket: [] }]);
      }
    });
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

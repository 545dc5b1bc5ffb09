import { Controller, Get } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { Public } from '../../src/common/public.decorator';
import { discoverRoutes, type RouteAccess } from '../../src/auth/route-access';
import { TICKET_SCHEME } from '../../src/auth/accepts-ticket.decorator';
import { BEARER_SCHEME, RequireScopes } from '../../src/auth/require-scopes.decorator';
import { ALL_SCOPES } from '../../src/auth/scopes';
import { buildOpenApiDocument } from '../../src/openapi/openapi';
import { TestApp } from '../support/app';

/**
 * Who may reach each route (A-11, Z-5, Z-9). The table is read from Nest's own metadata —
 * every controller method with a route, its HTTP method, full path, `@RequireScopes()` and
 * `@Public()` — and compared with the one below, so a change of access is a change to this file
 * and shows in review. Access fails closed: a route with neither annotation is refused for
 * everyone by the request guard, and fails this test.
 */
const EXPECTED_ACCESS = `
GET     /healthz                     public
GET     /metrics                     public
GET     /readyz                      public
DELETE  /redis/hashes/:key                    redis:write
GET     /redis/hashes/:key                    redis:read
PUT     /redis/hashes/:key                    redis:write
POST    /redis/hashes/:key/_mget              redis:read
DELETE  /redis/hashes/:key/fields/:field      redis:write
GET     /redis/hashes/:key/fields/:field      redis:read
POST    /redis/hashes/:key/fields/:field/incr redis:write
GET     /redis/kv                    redis:read
POST    /redis/kv                    redis:write
DELETE  /redis/kv/:key               redis:write
GET     /redis/kv/:key               redis:read
PUT     /redis/kv/:key               redis:write
POST    /redis/kv/:key/incr          redis:write
PUT     /redis/kv/:key/raw           redis:write
DELETE  /redis/kv/:key/ttl           redis:write
GET     /redis/kv/:key/ttl           redis:read
PUT     /redis/kv/:key/ttl           redis:write
POST    /redis/kv/_delete            redis:write
POST    /redis/kv/_mget              redis:read
DELETE  /redis/locks/:name           redis:write
GET     /redis/locks/:name           redis:read
POST    /redis/locks/:name           redis:write
POST    /redis/locks/:name/extend    redis:write
GET     /redis/pubsub/channels/:channel/events       redis:read
POST    /redis/pubsub/channels/:channel/messages     redis:write
GET     /redis/pubsub/patterns/:pattern/events       redis:read
GET     /redis/status                redis:read
GET     /redis/streams/:key                          redis:read
GET     /redis/streams/:key/entries                  redis:read
POST    /redis/streams/:key/entries                  redis:write
DELETE  /redis/streams/:key/entries/:id              redis:write
GET     /redis/streams/:key/events                   redis:read
GET     /redis/streams/:key/groups                   redis:read
POST    /redis/streams/:key/groups                   redis:write
DELETE  /redis/streams/:key/groups/:group            redis:write
POST    /redis/streams/:key/groups/:group/ack        redis:write
POST    /redis/streams/:key/groups/:group/claim      redis:write
GET     /redis/streams/:key/groups/:group/pending    redis:read
POST    /redis/streams/:key/groups/:group/read       redis:write
POST    /redis/streams/:key/trim                     redis:write
POST    /redis/tickets                               redis:read
`;

const NOT_ANNOTATED = 'NOT ANNOTATED (refused for everyone)';

type Route = RouteAccess;

function access(route: Route): string {
  if (route.isPublic) {
    return 'public';
  }
  return route.scopes && route.scopes.length > 0 ? route.scopes.join(' ') : NOT_ANNOTATED;
}

const tableLines = (table: string): string[] =>
  table
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).join(' '));

/** `/redis/kv/:key/ttl` → `/redis/kv/{key}/ttl` */
const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('routes and their scopes (A-11, Z-5, Z-9)', () => {
  let t: TestApp;
  let routes: Route[];

  beforeAll(async () => {
    t = await TestApp.create({ listen: true });
    routes = discoverRoutes(t.app);
  });

  afterAll(async () => {
    await t.close();
  });

  it('finds the routes (the discovery itself works)', () => {
    expect(routes.length).toBeGreaterThanOrEqual(10);
    expect(routes).toContainEqual(
      expect.objectContaining({
        method: 'GET',
        path: '/redis/kv/:key',
        handler: 'KvController.get',
      }),
    );
  });

  it('tells a route without annotations apart (the check below can fail)', async () => {
    @Controller('probe')
    class ProbeController {
      @Get('open')
      @Public()
      open(): void {}

      @Get('scoped')
      @RequireScopes('redis:read')
      scoped(): void {}

      @Get('forgotten')
      forgotten(): void {}
    }
    const probe = await Test.createTestingModule({ controllers: [ProbeController] }).compile();
    expect(discoverRoutes(probe).map((route) => `${route.path} ${access(route)}`)).toEqual([
      `/probe/forgotten ${NOT_ANNOTATED}`,
      '/probe/open public',
      '/probe/scoped redis:read',
    ]);
    await probe.close();
  });

  it('matches the expected access table exactly', () => {
    const actual = routes.map((route) => `${route.method} ${route.path} ${access(route)}`);
    expect(actual).toEqual(tableLines(EXPECTED_ACCESS));
  });

  it('has no route with neither @RequireScopes() nor @Public()', () => {
    const unannotated = routes.filter((route) => access(route) === NOT_ANNOTATED);
    expect(unannotated.map((route) => route.handler)).toEqual([]);
  });

  it('has no route that is both public and scoped, and only known scopes', () => {
    expect(routes.filter((route) => route.isPublic && route.scopes).map((r) => r.handler)).toEqual(
      [],
    );
    for (const route of routes) {
      for (const scope of route.scopes ?? []) {
        expect(ALL_SCOPES).toContain(scope);
      }
    }
  });

  it('keeps public routes out of /redis (every path under /redis needs a token)', () => {
    const publicUnderRedis = routes.filter(
      (route) => route.isPublic && route.path.startsWith('/redis'),
    );
    expect(publicUnderRedis.map((route) => `${route.method} ${route.path}`)).toEqual([]);
  });

  describe('Z-9 the OpenAPI document lists every route with its security', () => {
    let document: OpenAPIObject;

    beforeAll(() => {
      document = buildOpenApiDocument(t.app);
    });

    it('declares the bearer scheme', () => {
      expect(document.components?.securitySchemes?.[BEARER_SCHEME]).toMatchObject({
        type: 'http',
        scheme: 'bearer',
      });
    });

    it('documents each non-public route with the bearer requirement listing exactly its scopes, and the ticket where it is accepted', () => {
      for (const route of routes.filter((r) => !r.isPublic)) {
        const operation =
          document.paths[openApiPath(route.path)]?.[route.method.toLowerCase() as 'get'];
        expect({ route: `${route.method} ${route.path}`, security: operation?.security }).toEqual({
          route: `${route.method} ${route.path}`,
          security: [
            { [BEARER_SCHEME]: route.scopes },
            ...(route.acceptsTicket ? [{ [TICKET_SCHEME]: [] }] : []),
          ],
        });
        expect(operation?.responses).toHaveProperty('401');
        expect(operation?.responses).toHaveProperty('403');
      }
    });

    it('documents each public route without a security requirement', () => {
      for (const route of routes.filter((r) => r.isPublic)) {
        const operation =
          document.paths[openApiPath(route.path)]?.[route.method.toLowerCase() as 'get'];
        expect({
          route: `${route.method} ${route.path}`,
          documented: operation !== undefined,
        }).toEqual({ route: `${route.method} ${route.path}`, documented: true });
        expect(operation?.security ?? []).toEqual([]);
      }
    });

    it('documents no operation that is not a route (no phantom or stale entries)', () => {
      const registered = new Set(
        routes.map((route) => `${route.method.toLowerCase()} ${openApiPath(route.path)}`),
      );
      const documented = Object.entries(document.paths).flatMap(([path, item]) =>
        ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']
          .filter((method) => (item as Record<string, unknown>)[method] !== undefined)
          .map((method) => `${method} ${path}`),
      );
      expect(documented.filter((entry) => !registered.has(entry))).toEqual([]);
    });
  });

  describe('A-11 the guards enforce the table (every route, generated from the metadata)', () => {
    interface Answer {
      status: number;
      challenge: string | null;
      code: string | undefined;
    }

    /**
     * Over a real socket, so a streaming route answers once its headers are sent. Names in the
     * path are `x`, and tokens that hold the scopes carry a key pattern `x` cannot match, so a
     * request that passes the scope check stops at the name check (or at body validation)
     * without changing anything.
     */
    async function call(route: Route, token?: string): Promise<Answer> {
      const hasBody = ['POST', 'PUT', 'PATCH'].includes(route.method);
      const response = await fetch(`${t.baseUrl}${route.path.replace(/:[A-Za-z0-9_]+/g, 'x')}`, {
        method: route.method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(hasBody ? { 'content-type': 'application/json' } : {}),
        },
        body: hasBody ? '{}' : undefined,
        signal: AbortSignal.timeout(5000),
      });
      const challenge = response.headers.get('www-authenticate');
      if (!response.headers.get('content-type')?.includes('json')) {
        await response.body?.cancel();
        return { status: response.status, challenge, code: undefined };
      }
      const body = (await response.json()) as { code?: string };
      return { status: response.status, challenge, code: body.code };
    }

    const tokenWith = (scopes: readonly string[]) =>
      t.token({ scopes, keyPatterns: ['nothing-matches-this:*'] });

    const guarded = () => routes.filter((route) => !route.isPublic);
    const label = (route: Route) => `${route.method} ${route.path}`;

    it('refuses every guarded route without a token (401 invalid_token)', async () => {
      const wrong: string[] = [];
      for (const route of guarded()) {
        const answer = await call(route);
        if (answer.status !== 401 || answer.challenge !== 'Bearer error="invalid_token"') {
          wrong.push(`${label(route)}: ${answer.status} ${answer.challenge}`);
        }
      }
      expect(wrong).toEqual([]);
    });

    it('refuses every guarded route to a token missing one of its scopes (403 insufficient_scope)', async () => {
      const wrong: string[] = [];
      let checked = 0;
      for (const route of guarded()) {
        const required = route.scopes ?? [];
        const challenge = `Bearer error="insufficient_scope", scope="${required.join(' ')}"`;
        for (const missing of required) {
          const answer = await call(
            route,
            await tokenWith(ALL_SCOPES.filter((s) => s !== missing)),
          );
          checked++;
          if (
            answer.status !== 403 ||
            answer.code !== 'INSUFFICIENT_SCOPE' ||
            answer.challenge !== challenge
          ) {
            wrong.push(`${label(route)} without ${missing}: ${JSON.stringify(answer)}`);
          }
        }
      }
      expect(checked).toBeGreaterThanOrEqual(guarded().length);
      expect(wrong).toEqual([]);
    });

    it('lets a token with exactly the required scopes past the scope check', async () => {
      const wrong: string[] = [];
      for (const route of guarded()) {
        const answer = await call(route, await tokenWith(route.scopes ?? []));
        const refused =
          answer.status === 401 || (answer.status === 403 && answer.code === 'INSUFFICIENT_SCOPE');
        if (refused || answer.status >= 500) {
          wrong.push(`${label(route)}: ${JSON.stringify(answer)}`);
        }
      }
      expect(wrong).toEqual([]);
    });

    it('serves the public routes without a token', async () => {
      const wrong: string[] = [];
      for (const route of routes.filter((r) => r.isPublic && r.method === 'GET')) {
        const answer = await call(route);
        if (answer.status !== 200) {
          wrong.push(`${label(route)}: ${answer.status}`);
        }
      }
      expect(wrong).toEqual([]);
    });

    it('serves the documentation routes (registered outside the controllers) without a token', async () => {
      const json = await fetch(`${t.baseUrl}/openapi.json`);
      expect(json.status).toBe(200);
      expect(((await json.json()) as OpenAPIObject).openapi).toMatch(/^3\./);
      const docs = await fetch(`${t.baseUrl}/docs`);
      expect(docs.status).toBe(200);
      await docs.body?.cancel();
    });
  });
});

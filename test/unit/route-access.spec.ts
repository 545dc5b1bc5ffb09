import { Controller, Get } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Principal } from '../../src/auth/principal';
import { scopeRefusal } from '../../src/auth/request-guard';
import { RequireScopes } from '../../src/auth/require-scopes.decorator';
import { discoverRoutes, RouteAccessTable, type RouteAccess } from '../../src/auth/route-access';
import { SCOPES } from '../../src/auth/scopes';
import { Public } from '../../src/common/public.decorator';

/** Routes declared with the real decorators; the table reads their metadata. */
@Controller('kv-like')
class KvLikeController {
  @Get('read')
  @RequireScopes(SCOPES.read)
  read(): void {}

  @Get('both')
  @RequireScopes(SCOPES.read, SCOPES.write)
  readAndWrite(): void {}

  @Get('open')
  @Public()
  open(): void {}

  @Get('empty')
  @RequireScopes()
  emptyScopes(): void {}

  @Get('forgotten')
  forgotten(): void {}
}

@Controller('write-default')
@RequireScopes(SCOPES.write)
class WriteByDefaultController {
  @Get('inherited')
  inherited(): void {}

  @Get('overridden')
  @RequireScopes(SCOPES.read)
  overridden(): void {}

  @Get('open')
  @Public()
  open(): void {}
}

@Controller('public')
@Public()
class PublicController {
  @Get('status')
  status(): void {}
}

function principal(...scopes: string[]): Principal {
  return { sub: 'client', scopes: new Set(scopes), keyPatterns: null, exp: 0 };
}

describe('route access (the request guard’s table and scope check)', () => {
  let table: RouteAccessTable;

  beforeAll(async () => {
    const module = await Test.createTestingModule({
      controllers: [KvLikeController, WriteByDefaultController, PublicController],
    }).compile();
    table = new RouteAccessTable(discoverRoutes(module));
    await module.close();
  });

  const route = (path: string): RouteAccess => {
    const access = table.of('GET', path);
    if (!access) {
      throw new Error(`no route ${path}`);
    }
    return access;
  };

  describe('a route that needs redis:read', () => {
    it('refuses a token with no scopes, with the insufficient_scope challenge', () => {
      const error = scopeRefusal(route('/kv-like/read'), principal());
      expect(error?.code).toBe('INSUFFICIENT_SCOPE');
      expect(error?.headers).toEqual({
        'www-authenticate': 'Bearer error="insufficient_scope", scope="redis:read"',
      });
    });

    it('lets a token with the scope through, and one with more scopes', () => {
      expect(scopeRefusal(route('/kv-like/read'), principal(SCOPES.read))).toBeNull();
      expect(
        scopeRefusal(route('/kv-like/read'), principal(SCOPES.write, SCOPES.read, 'other')),
      ).toBeNull();
    });

    it.each([['redis:write'], ['redis:reader'], ['REDIS:READ'], ['redis:read ']])(
      'refuses a token holding only %j',
      (scope) => {
        expect(scopeRefusal(route('/kv-like/read'), principal(scope))?.code).toBe(
          'INSUFFICIENT_SCOPE',
        );
      },
    );
  });

  describe('a route that needs every one of two scopes', () => {
    it.each([[[]], [[SCOPES.read]], [[SCOPES.write]]])('refuses %j (partial)', (scopes) => {
      const error = scopeRefusal(route('/kv-like/both'), principal(...scopes));
      expect(error?.code).toBe('INSUFFICIENT_SCOPE');
      expect(error?.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:read redis:write"',
      );
    });

    it('lets a token with both through', () => {
      expect(scopeRefusal(route('/kv-like/both'), principal(...Object.values(SCOPES)))).toBeNull();
    });
  });

  describe('public routes', () => {
    it('are marked public, on the method or on the class', () => {
      expect(route('/kv-like/open').isPublic).toBe(true);
      expect(route('/public/status').isPublic).toBe(true);
    });

    it('win over scopes declared on the class', () => {
      expect(route('/write-default/open').isPublic).toBe(true);
    });
  });

  describe('class-level scopes', () => {
    it('apply to a method without its own', () => {
      expect(scopeRefusal(route('/write-default/inherited'), principal(SCOPES.read))?.code).toBe(
        'INSUFFICIENT_SCOPE',
      );
      expect(scopeRefusal(route('/write-default/inherited'), principal(SCOPES.write))).toBeNull();
    });

    it("give way to the method's own", () => {
      expect(scopeRefusal(route('/write-default/overridden'), principal(SCOPES.read))).toBeNull();
    });
  });

  describe('fail-closed', () => {
    it.each([['/kv-like/forgotten'], ['/kv-like/empty']])(
      'refuses a route with no scopes and no @Public() (%s), even to a token with every scope',
      (path) => {
        const error = scopeRefusal(route(path), principal(...Object.values(SCOPES)));
        expect(error?.code).toBe('INSUFFICIENT_SCOPE');
        // No scope would help, so no challenge names one.
        expect(error?.headers).toEqual({});
      },
    );
  });

  it('looks HEAD up as the GET it answers for, and leaves unknown routes alone', () => {
    expect(table.of('HEAD', '/kv-like/read')).toEqual(table.of('GET', '/kv-like/read'));
    expect(table.of('GET', '/no/such/route')).toBeUndefined();
  });
});

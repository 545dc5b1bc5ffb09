import { Logger, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Principal } from '../../src/auth/principal';
import { Public } from '../../src/common/public.decorator';
import { RequireScopes } from '../../src/auth/require-scopes.decorator';
import { SCOPES } from '../../src/auth/scopes';
import { ScopesGuard } from '../../src/auth/scopes.guard';
import { AppError } from '../../src/errors/app-error';

/** Routes declared with the real decorators; the guard reads their metadata. */
class KvLikeController {
  @RequireScopes(SCOPES.read)
  read(): void {}

  @RequireScopes(SCOPES.read, SCOPES.write)
  readAndWrite(): void {}

  @Public()
  open(): void {}

  @RequireScopes()
  emptyScopes(): void {}

  forgotten(): void {}
}

@RequireScopes(SCOPES.write)
class WriteByDefaultController {
  inherited(): void {}

  @RequireScopes(SCOPES.read)
  overridden(): void {}

  @Public()
  open(): void {}
}

@Public()
class PublicController {
  status(): void {}
}

type Handler = (...args: unknown[]) => unknown;

function principal(...scopes: string[]): Principal {
  return { sub: 'client', scopes: new Set(scopes), keyPatterns: null, exp: 0 };
}

/** A plain ExecutionContext: the guard only reads the handler, the class and request.user. */
function contextFor(controller: object, method: string, user?: Principal): ExecutionContext {
  const type = controller as new () => object;
  const handler = (type.prototype as Record<string, Handler>)[method];
  return {
    getHandler: () => handler,
    getClass: () => type,
    switchToHttp: () => ({ getRequest: () => ({ user }) }),
  } as unknown as ExecutionContext;
}

const guard = new ScopesGuard(new Reflector());

function refusal(context: ExecutionContext): AppError {
  try {
    guard.canActivate(context);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('the guard let the request through');
}

describe('ScopesGuard', () => {
  describe('a route that needs redis:read', () => {
    it('refuses a token with no scopes, with the insufficient_scope challenge', () => {
      const error = refusal(contextFor(KvLikeController, 'read', principal()));
      expect(error.code).toBe('INSUFFICIENT_SCOPE');
      expect(error.headers).toEqual({
        'www-authenticate': 'Bearer error="insufficient_scope", scope="redis:read"',
      });
    });

    it('lets a token with the scope through, and one with more scopes', () => {
      expect(guard.canActivate(contextFor(KvLikeController, 'read', principal(SCOPES.read)))).toBe(
        true,
      );
      expect(
        guard.canActivate(
          contextFor(KvLikeController, 'read', principal(SCOPES.write, SCOPES.read, 'other')),
        ),
      ).toBe(true);
    });

    it.each([['redis:write'], ['redis:reader'], ['REDIS:READ'], ['redis:read ']])(
      'refuses a token holding only %j',
      (scope) => {
        expect(refusal(contextFor(KvLikeController, 'read', principal(scope))).code).toBe(
          'INSUFFICIENT_SCOPE',
        );
      },
    );
  });

  describe('a route that needs every one of two scopes', () => {
    it.each([[[]], [[SCOPES.read]], [[SCOPES.write]]])('refuses %j (partial)', (scopes) => {
      const error = refusal(contextFor(KvLikeController, 'readAndWrite', principal(...scopes)));
      expect(error.code).toBe('INSUFFICIENT_SCOPE');
      expect(error.headers['www-authenticate']).toBe(
        'Bearer error="insufficient_scope", scope="redis:read redis:write"',
      );
    });

    it('lets a token with both through', () => {
      const context = contextFor(
        KvLikeController,
        'readAndWrite',
        principal(...Object.values(SCOPES)),
      );
      expect(guard.canActivate(context)).toBe(true);
    });
  });

  describe('public routes', () => {
    it('let a request without any principal through', () => {
      expect(guard.canActivate(contextFor(KvLikeController, 'open'))).toBe(true);
      expect(guard.canActivate(contextFor(PublicController, 'status'))).toBe(true);
    });

    it('win over scopes declared on the class', () => {
      expect(guard.canActivate(contextFor(WriteByDefaultController, 'open'))).toBe(true);
    });
  });

  describe('class-level scopes', () => {
    it('apply to a method without its own', () => {
      expect(
        refusal(contextFor(WriteByDefaultController, 'inherited', principal(SCOPES.read))).code,
      ).toBe('INSUFFICIENT_SCOPE');
      expect(
        guard.canActivate(
          contextFor(WriteByDefaultController, 'inherited', principal(SCOPES.write)),
        ),
      ).toBe(true);
    });

    it("give way to the method's own", () => {
      expect(
        guard.canActivate(
          contextFor(WriteByDefaultController, 'overridden', principal(SCOPES.read)),
        ),
      ).toBe(true);
    });
  });

  describe('fail-closed', () => {
    it.each([['forgotten'], ['emptyScopes']])(
      'refuses a route with no scopes and no @Public() (%s), even to a token with every scope',
      (method) => {
        const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
        try {
          const error = refusal(
            contextFor(KvLikeController, method, principal(...Object.values(SCOPES))),
          );
          expect(error.code).toBe('INSUFFICIENT_SCOPE');
          // No scope would help, so no challenge names one.
          expect(error.headers).toEqual({});
          // The mistake is logged with the handler's name, for whoever deployed it.
          expect(logged).toHaveBeenCalledWith(
            { handler: `KvLikeController.${method}` },
            expect.stringContaining('not @Public()'),
          );
        } finally {
          logged.mockRestore();
        }
      },
    );
  });
});

import type { InjectOptions } from 'fastify';
import type { Response, TestApp } from './app';

/** The `code` of a JSON answer, if it has one (undefined for any other body). */
function codeOf(response: Response): unknown {
  try {
    return response.json<{ code?: unknown }>().code;
  } catch {
    return undefined;
  }
}

/**
 * The answer is problem+json with this status and stable code. Status and code are compared
 * together first, so a wrong answer shows which problem came instead (a 503 REDIS_UNAVAILABLE
 * where a 409 was expected, say).
 */
export function expectProblem(response: Response, status: number, code: string): void {
  expect({ status: response.statusCode, code: codeOf(response) }).toEqual({ status, code });
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({ status, code, type: 'about:blank' });
}

/**
 * A route that needs `redis:<scope>` refuses a request without a token (401 with the
 * invalid_token challenge), and a token with no scope or only the other one (403 with the
 * insufficient_scope challenge naming the scope it needs).
 */
export async function expectScopeGuarded(
  t: TestApp,
  method: InjectOptions['method'],
  url: string,
  scope: 'read' | 'write',
  body?: unknown,
): Promise<void> {
  const noToken = await t.call(method, url, { body });
  expectProblem(noToken, 401, 'INVALID_TOKEN');
  expect(noToken.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
  const other = scope === 'read' ? t.tokens.write : t.tokens.read;
  for (const token of [t.tokens.none, other]) {
    const response = await t.call(method, url, { token, body });
    expectProblem(response, 403, 'INSUFFICIENT_SCOPE');
    expect(response.headers['www-authenticate']).toBe(
      `Bearer error="insufficient_scope", scope="redis:${scope}"`,
    );
  }
}

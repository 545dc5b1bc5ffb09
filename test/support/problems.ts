import type { Response } from './app';

/** The answer is problem+json with this status and stable code. */
export function expectProblem(response: Response, status: number, code: string): void {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({ status, code, type: 'about:blank' });
}

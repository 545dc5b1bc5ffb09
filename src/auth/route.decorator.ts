import {
  HttpCode,
  RequestMapping,
  RequestMethod,
  applyDecorators,
  type Type,
} from '@nestjs/common';
import { ApiOperation, ApiResponse } from '@nestjs/swagger';
import { ApiProblems, type ProblemEntry } from '../errors/api-problems.decorator';
import { RequireScopes } from './require-scopes.decorator';
import { SCOPES, type Scope } from './scopes';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface RouteSpec {
  summary: string;
  description?: string;
  /** The success status: 200 unless said (201 for a creation, 204 for no body). */
  status?: 200 | 201 | 204;
  /** The DTO of the success body (none for 204). */
  body?: Type<unknown>;
  /** What the success body is, where the DTO does not say it all. */
  bodyDescription?: string;
  /** Problems beyond those every route of its scope can answer. */
  problems?: ProblemEntry[];
}

/** The problems every Redis-backed route of a scope can answer, besides its own. */
const SCOPE_PROBLEMS: Record<Scope, ProblemEntry[]> = {
  [SCOPES.read]: [400, 429, 503, 504],
  [SCOPES.write]: [400, 429, 503, 504, 507],
};

/**
 * One route, declared once: the HTTP method and path, the scope it needs (fail-closed, see
 * RequestGuard), the success status and body, and every problem it can answer, for the router,
 * the guards and the OpenAPI document alike.
 */
function route(scope: Scope, method: Method, path: string, spec: RouteSpec): MethodDecorator {
  const status = spec.status ?? 200;
  return applyDecorators(
    RequestMapping({ path, method: RequestMethod[method] }),
    HttpCode(status),
    RequireScopes(scope),
    ApiOperation({ summary: spec.summary, description: spec.description }),
    ApiResponse({
      status,
      type: spec.body,
      description: spec.bodyDescription ?? (status === 204 ? 'Done; no body' : undefined),
    }),
    ApiProblems(...SCOPE_PROBLEMS[scope], ...(spec.problems ?? [])),
  );
}

/** A route that only reads (`redis:read`). */
export const ReadRoute = (method: Method, path: string, spec: RouteSpec): MethodDecorator =>
  route(SCOPES.read, method, path, spec);

/** A route that changes Redis (`redis:write`). */
export const WriteRoute = (method: Method, path: string, spec: RouteSpec): MethodDecorator =>
  route(SCOPES.write, method, path, spec);

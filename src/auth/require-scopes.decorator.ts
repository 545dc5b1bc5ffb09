import { SetMetadata, applyDecorators } from '@nestjs/common';
import { ApiSecurity } from '@nestjs/swagger';
import { ApiProblem } from '../errors/api-problems.decorator';
import type { Scope } from './scopes';

export const REQUIRED_SCOPES = 'auth:scopes';
export const BEARER_SCHEME = 'bearer';

/**
 * Every listed scope is required. Also documents the bearer security requirement with its
 * scopes and the 401/403 problem responses in OpenAPI, so the two cannot drift apart.
 */
export const RequireScopes = (...scopes: Scope[]): MethodDecorator & ClassDecorator =>
  applyDecorators(
    SetMetadata(REQUIRED_SCOPES, scopes),
    ApiSecurity(BEARER_SCHEME, scopes),
    ApiProblem(401, 'No token, or an invalid one (`INVALID_TOKEN`), with WWW-Authenticate'),
    ApiProblem(
      403,
      `Missing scope ${scopes.join(', ')} (\`INSUFFICIENT_SCOPE\`) or a name outside the token's key patterns (\`KEY_FORBIDDEN\`)`,
    ),
  );

import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error';
import type { Scope } from './scopes';

/** Who is calling: what a verified access token grants. */
export interface Principal {
  /** The token's subject (`sub`). */
  readonly sub: string;
  readonly scopes: ReadonlySet<string>;
  /**
   * Redis glob patterns every name must match (the key-pattern claim), or null when the token
   * carries no such claim and every name is allowed.
   */
  readonly keyPatterns: readonly string[] | null;
  /** Expiry of the token, in seconds since the epoch. */
  readonly exp: number;
}

/** The challenge of every 401: RFC 6750 asks for one on each refusal of a bearer token. */
export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';

/** 401 INVALID_TOKEN with its challenge. */
export function invalidToken(detail = 'The access token is missing or not valid.'): AppError {
  return new AppError('INVALID_TOKEN', detail, {
    headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE },
  });
}

/** The verified caller of a request; a route that reaches it without one is refused (401). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.user) {
    throw invalidToken();
  }
  return request.user;
}

export function hasScopes(principal: Principal, required: readonly Scope[]): boolean {
  return required.every((scope) => principal.scopes.has(scope));
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller, set by the authentication guard (absent on public routes). */
    user?: Principal;
  }
}

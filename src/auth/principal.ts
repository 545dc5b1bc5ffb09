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

/** The verified caller of a request; a route that reaches it without one is refused (401). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.user) {
    throw new AppError('INVALID_TOKEN', 'The access token is missing or not valid.');
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

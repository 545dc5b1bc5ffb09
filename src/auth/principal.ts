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

export function hasScopes(principal: Principal, required: readonly Scope[]): boolean {
  return required.every((scope) => principal.scopes.has(scope));
}

/** The scopes, as data; `Scope` is derived from them. */
export const SCOPES = {
  read: 'redis:read',
  write: 'redis:write',
} as const;

export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

export const ALL_SCOPES: readonly Scope[] = Object.values(SCOPES);

/** The path of a lock's endpoints (acquire, status, release; `/extend` below it). */
export const lockPath = (name: string): string => `/redis/locks/${encodeURIComponent(name)}`;

/** A 201 answer to an acquisition: the lease, its secret token and its fencing token. */
export interface Grant {
  name: string;
  token: string;
  fencingToken: number;
  expiresAt: string;
  ttlMs: number;
}

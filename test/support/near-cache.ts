import type { NearCacheState } from '../../src/near-cache/near-cache';
import type { Response, TestApp } from './app';

/** What `X-Cache` said of a read: HIT, MISS, or nothing (the cache is off). */
export const xCache = (response: Response) => response.headers['x-cache'];

/** The near-cache part of /redis/status (entries and bytes are null for a confined token). */
export type NearCacheStatus = Omit<NearCacheState, 'entries' | 'bytes'> & {
  entries: number | null;
  bytes: number | null;
};

export async function nearCacheStatus(t: TestApp): Promise<NearCacheStatus> {
  const response = await t.call('GET', '/redis/status', { token: t.tokens.read });
  return response.json().gateway.nearCache as NearCacheStatus;
}

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { RedisExecutor } from '../redis/executor';
import { Keyspace } from '../redis/keys';
import { RedisScripts, type ScriptRunner } from '../redis/scripts';
import type { ScriptArg } from '../redis/types';
import { retryAfter } from './lock-nodes';

/**
 * quotas.locksPerSubject: the locks each subject holds, counted on the gateway's Redis by a
 * script (lock-quota-1.lua), so the quota holds across instances and in cluster mode.
 */
@Injectable()
export class LockQuota {
  private readonly quotaScript: ScriptRunner;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly keyspace: Keyspace,
    private readonly config: AppConfig,
    scripts: RedisScripts,
  ) {
    this.quotaScript = scripts.load(join(__dirname, 'scripts', 'lock-quota-1.lua'));
  }

  /**
   * Counts a lock about to be acquired against quotas.locksPerSubject, for `ms` (the wait and
   * the lease): 429 QUOTA_EXCEEDED past it. True when counted now (to be uncounted if not
   * granted), false when the subject already holds that name or there is no quota.
   */
  async count(principal: Principal, name: string, ms: number): Promise<boolean> {
    const { locksPerSubject } = this.config.quotas;
    if (locksPerSubject === 0) {
      return false;
    }
    const [result, waitMs] = await this.quota(principal, ['take', name, ms, locksPerSubject]);
    if (result === 0) {
      throw new AppError(
        'QUOTA_EXCEEDED',
        `This subject holds its quota of ${locksPerSubject} locks (quotas.locksPerSubject).`,
        { headers: retryAfter(waitMs ?? 1000), reason: 'locks' },
      );
    }
    return result === 1;
  }

  /** Takes a lock out of the subject's count (released, or not granted after all). */
  uncount(principal: Principal, name: string): void {
    if (this.config.quotas.locksPerSubject > 0) {
      this.quota(principal, ['drop', name]).catch(() => undefined);
    }
  }

  /** Sets when the subject's lease of a lock ends (after an extend); failures are ignored. */
  async hold(principal: Principal, name: string, ttlMs: number): Promise<void> {
    await this.quota(principal, ['hold', name, ttlMs]).catch(() => undefined);
  }

  private quota(principal: Principal, args: ScriptArg[]): Promise<[number, number?]> {
    const digest = createHash('sha256').update(principal.sub).digest('base64url');
    const key = this.keyspace.reservedKey(`quota:locks:${digest}`);
    return this.redis.run(
      'locks.quota',
      'write',
      (client) => this.quotaScript([key], args, client) as Promise<[number, number?]>,
    );
  }
}

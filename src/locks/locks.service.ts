import { performance } from 'node:perf_hooks';
import { Injectable, Logger } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { AppError, type ErrorCode } from '../errors/app-error';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { Keyspace } from '../redis/keys';
import {
  LOCK_TOKEN_PATTERN,
  type AcquireLockDto,
  type ExtendLockDto,
} from './dto/lock-requests.dto';
import type { LockGrantDto, LockLeaseDto, LockStatusDto } from './dto/lock-responses.dto';
import { LockGrants, type LockKeys } from './lock-grants';
import { LockNodes, ownerDigest } from './lock-nodes';
import { LockQuota } from './lock-quota';

type LockOperation = 'acquire' | 'extend' | 'release' | 'status';

/**
 * Distributed locks as leases: Redlock for acquisition with jittered retry and the majority
 * quorum over `locks.nodes` (or the gateway's own Redis alone; LockGrants), owned-lease Lua
 * scripts for extend and release, a fencing counter per name in the lock's hash slot, the
 * delayed restart after a Redis lost its locks (LockNode), and a quota of locks per subject.
 */
@Injectable()
export class LocksService {
  private readonly logger = new Logger('Locks');

  constructor(
    private readonly lockNodes: LockNodes,
    private readonly grants: LockGrants,
    private readonly quota: LockQuota,
    private readonly access: KeyAccess,
    private readonly keyspace: Keyspace,
    private readonly metrics: GatewayMetrics,
    private readonly config: AppConfig,
  ) {}

  acquire(principal: Principal, name: string, body: AcquireLockDto): Promise<LockGrantDto> {
    return this.counted('acquire', async () => {
      const keys = this.lockKeys(principal, name);
      this.checkTtl(body.ttlMs);
      const waitMs = body.waitMs ?? 0;
      const { maxBlockMs } = this.config.limits;
      if (waitMs > maxBlockMs) {
        throw AppError.validation([
          { field: 'waitMs', message: `waitMs must not be greater than ${maxBlockMs}` },
        ]);
      }
      const started = performance.now();
      const counted = await this.quota.count(principal, name, waitMs + body.ttlMs);
      try {
        await this.lockNodes.checkGrantable();
        return await this.grants.grant(
          principal,
          name,
          keys,
          body.ttlMs,
          waitMs,
          body.retryDelayMs,
        );
      } catch (error) {
        if (counted) {
          this.quota.uncount(principal, name);
        }
        throw error;
      } finally {
        this.metrics.lockWait.observe((performance.now() - started) / 1000);
      }
    });
  }

  extend(principal: Principal, name: string, body: ExtendLockDto): Promise<LockLeaseDto> {
    return this.counted('extend', async () => {
      const keys = this.lockKeys(principal, name);
      this.checkTtl(body.ttlMs);
      const owner = ownerDigest(principal.sub, body.token);
      const started = performance.now();
      const replies = await this.lockNodes.onEveryNode('locks.extend', 'write', (client) =>
        this.lockNodes.ownedLeaseScript([keys.lock], [owner, body.ttlMs], client),
      );
      const { done, answered } = this.tally(replies);
      if (done >= this.lockNodes.quorum) {
        await this.quota.hold(principal, name, body.ttlMs);
        return { name, ...this.lockNodes.validity(started, body.ttlMs) };
      }
      if (answered < this.lockNodes.quorum) {
        throw this.lockNodes.unavailable(replies);
      }
      throw new AppError('LOCK_NOT_OWNER', 'The token does not hold this lock (any more).');
    });
  }

  release(principal: Principal, name: string, token: string | undefined): Promise<void> {
    return this.counted('release', async () => {
      const keys = this.lockKeys(principal, name);
      if (token === undefined || !LOCK_TOKEN_PATTERN.test(token)) {
        throw AppError.validation([
          { field: 'Lock-Token', message: 'the Lock-Token header must hold a lock token' },
        ]);
      }
      const owner = ownerDigest(principal.sub, token);
      const replies = await this.lockNodes.onEveryNode('locks.release', 'write', (client) =>
        this.lockNodes.ownedLeaseScript([keys.lock], [owner], client),
      );
      const { done, foreign, answered } = this.tally(replies);
      if (answered < this.lockNodes.quorum) {
        throw this.lockNodes.unavailable(replies);
      }
      if (done > 0) {
        this.quota.uncount(principal, name);
        return;
      }
      if (foreign > 0) {
        throw new AppError('LOCK_NOT_OWNER', 'The lock is held by another owner.');
      }
      throw AppError.notFound('The lock');
    });
  }

  status(principal: Principal, name: string): Promise<LockStatusDto> {
    return this.counted('status', async () => {
      const keys = this.lockKeys(principal, name);
      const replies = await this.lockNodes.onEveryNode('locks.status', 'read', (client) =>
        client.pttl(keys.lock),
      );
      const remaining = replies.filter((reply): reply is number => typeof reply === 'number');
      if (remaining.length < this.lockNodes.quorum) {
        throw this.lockNodes.unavailable(replies);
      }
      // Held while a majority holds it: until the quorum-th longest lease ends.
      const leases = remaining.filter((ms) => ms > 0).sort((a, b) => b - a);
      const held = leases.length >= this.lockNodes.quorum;
      return { name, held, ttlMs: held ? leases[this.lockNodes.quorum - 1] : 0 };
    });
  }

  /**
   * Validates and authorises the name exactly as a data key (400, 403 for key patterns and the
   * reserved namespace), then places the lock and its fencing counter in the gateway's own
   * namespace. Both keys share the hash tag `{lock:<name>}`: in cluster mode they live in one
   * slot, whatever braces the name holds (the tag is never empty).
   */
  private lockKeys(principal: Principal, name: string): LockKeys {
    this.access.redisKey(principal, name, 'name');
    return this.keyspace.lockKeys(name);
  }

  private checkTtl(ttlMs: number): void {
    const { maxTtlMs } = this.config.locks;
    if (ttlMs > maxTtlMs) {
      throw AppError.validation([
        { field: 'ttlMs', message: `ttlMs must not be greater than ${maxTtlMs} (locks.maxTtlMs)` },
      ]);
    }
  }

  /** Counts the replies of the owned-lease scripts: 1 done, 0 no lock, -1 another owner's. */
  private tally(replies: unknown[]) {
    const count = (value: number) => replies.filter((reply) => reply === value).length;
    const done = count(1);
    const foreign = count(-1);
    return { done, foreign, answered: done + foreign + count(0) };
  }

  /** Counts every operation in redis_gateway_lock_operations_total by how it ended. */
  private async counted<T>(operation: LockOperation, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.metrics.lockOperations.inc({ operation, result: 'ok' });
      return result;
    } catch (error) {
      const code: ErrorCode = error instanceof AppError ? error.code : 'INTERNAL';
      this.metrics.lockOperations.inc({ operation, result: RESULT_LABELS[code] ?? 'error' });
      if (code === 'INTERNAL') {
        this.logger.error({ err: error, operation }, 'Lock operation failed');
      }
      throw error;
    }
  }
}

/** The `result` label of a failed lock operation, by error code (`error` for the rest). */
const RESULT_LABELS: Partial<Record<ErrorCode, string>> = {
  LOCK_HELD: 'held',
  LOCK_NOT_OWNER: 'not_owner',
  NOT_FOUND: 'not_found',
  LOCK_SERVICE_RECOVERING: 'recovering',
  VALIDATION_FAILED: 'rejected',
  KEY_FORBIDDEN: 'rejected',
  LOCK_QUORUM_UNAVAILABLE: 'unavailable',
  QUOTA_EXCEEDED: 'quota',
  REDIS_UNAVAILABLE: 'unavailable',
  REDIS_READONLY: 'unavailable',
  REDIS_TIMEOUT: 'unavailable',
  OUTCOME_UNKNOWN: 'unavailable',
};

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { RedisConnections } from '../redis/connections';
import { RedisExecutor } from '../redis/executor';
import type { OperationKind } from '../redis/redis-errors';
import { RedisScripts, type ScriptRunner } from '../redis/scripts';
import type { RedisClient } from '../redis/types';
import { LockNode } from './lock-node';

/** Redlock's clock-drift allowance: a lease is trusted for ttl * (1 - factor) - 2 ms. */
export const DRIFT_FACTOR = 0.01;

const drift = (ttlMs: number) => Math.round(DRIFT_FACTOR * ttlMs) + 2;

export const retryAfter = (ms: number) => ({
  'retry-after': String(Math.max(1, Math.ceil(ms / 1000))),
});

/** The lock owner stored in Redis: bound to the subject, and never the token itself. */
export function ownerDigest(sub: string, token: string): string {
  return createHash('sha256').update(sub).update('\0').update(token).digest('base64url');
}

/**
 * The Redis servers that take part in locking, and their quorum: the `locks.nodes`, or the
 * gateway's own Redis alone. It runs the owned-lease scripts on every node at once and says,
 * from their answers, whether a majority is there.
 */
@Injectable()
export class LockNodes {
  readonly nodes: LockNode[];
  readonly quorum: number;
  readonly acquireScript: ScriptRunner;
  /** Extends the owner's lease (ARGV: owner, ttlMs) or ends it (ARGV: owner). */
  readonly ownedLeaseScript: ScriptRunner;
  readonly raiseFenceScript: ScriptRunner;

  constructor(
    connections: RedisConnections,
    redis: RedisExecutor,
    scripts: RedisScripts,
    config: AppConfig,
  ) {
    const { nodes: urls, delayedRestartMs } = config.locks;
    const clients = urls.map((url, index) => connections.lockNode(url, `lock-node-${index + 1}`));
    const script = (file: string) => scripts.load(join(__dirname, 'scripts', file), { clients });
    this.acquireScript = script('acquire-2.lua');
    this.ownedLeaseScript = script('owned-lease-1.lua');
    this.raiseFenceScript = script('raise-fence-1.lua');
    this.nodes =
      clients.length > 0
        ? clients.map(
            (client, index) =>
              new LockNode(`lock-node-${index + 1}`, client, redis, delayedRestartMs),
          )
        : [new LockNode('redis', connections.command, redis, delayedRestartMs)];
    this.quorum = Math.floor(this.nodes.length / 2) + 1;
  }

  /** Answers at once, without waiting, when too few nodes could grant anything. */
  async checkGrantable(): Promise<void> {
    const states = await Promise.all(
      this.nodes.map((node) =>
        node.recoveringMs().then(
          (ms) => ms,
          (error: unknown) => error as AppError,
        ),
      ),
    );
    const ready = states.filter((state) => state === 0).length;
    if (ready >= this.quorum) {
      return;
    }
    const recovering = states
      .filter((state): state is number => typeof state === 'number' && state > 0)
      .sort((a, b) => a - b);
    if (ready + recovering.length >= this.quorum) {
      throw this.recovering(recovering[this.quorum - ready - 1]);
    }
    throw this.unavailable(states.filter((state) => state instanceof AppError));
  }

  /** The same operation on every node at once; each answers its reply or its AppError. */
  onEveryNode<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
  ): Promise<(T | AppError)[]> {
    return Promise.all(
      this.nodes.map((node) =>
        node.run(operation, kind, run).catch((error: unknown) => {
          if (error instanceof AppError) {
            return error;
          }
          throw error;
        }),
      ),
    );
  }

  validity(startedAt: number, ttlMs: number): { expiresAt: string; ttlMs: number } {
    const left = Math.floor(startedAt + ttlMs - drift(ttlMs) - performance.now());
    return { expiresAt: new Date(Date.now() + left).toISOString(), ttlMs: left };
  }

  recovering(waitMs: number): AppError {
    return new AppError(
      'LOCK_SERVICE_RECOVERING',
      'Redis restarted without persistence and forgot the locks it held; no lock is granted until every lease it may have held has ended.',
      { headers: retryAfter(waitMs) },
    );
  }

  /** Too few nodes answered: the one node's own error, or the quorum's. */
  unavailable(replies: unknown[]): AppError {
    const errors = replies.filter((reply) => reply instanceof AppError);
    if (this.nodes.length === 1 && errors.length > 0) {
      return errors[0];
    }
    return new AppError(
      'LOCK_QUORUM_UNAVAILABLE',
      `Fewer than ${this.quorum} of the ${this.nodes.length} lock nodes answered.`,
    );
  }
}

import { performance } from 'node:perf_hooks';
import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { GatewayMetrics } from '../observability/gateway-metrics';
import type { BlockingLease } from './blocking-pool';
import { RedisConnections } from './connections';
import { withDeadline } from './deadline';
import { notReady, translateRedisError, type OperationKind } from './redis-errors';
import type { RedisClient } from './types';

/**
 * How long past its BLOCK time a blocking command may take before its connection is presumed
 * dead (half-open) and closed: ioredis has no deadline of its own that also frees it.
 */
export const BLOCKING_GRACE_MS = 1000;

export interface BlockingOptions {
  /** Aborts when the HTTP client went away: the connection is closed, ending the block. */
  signal?: AbortSignal;
  /** Charged to this owner's share of the blocking pool (a token subject). */
  owner?: string;
}

/**
 * Runs every Redis operation of the gateway: on the connection its kind calls for, at once 503
 * when that connection is not ready, under one deadline for the whole operation (504 after
 * it), with `redis_gateway_operations_*` recorded, and every rejection turned into an AppError.
 */
@Injectable()
export class RedisExecutor {
  private readonly logger = new Logger('Redis');

  constructor(
    private readonly connections: RedisConnections,
    private readonly metrics: GatewayMetrics,
    private readonly config: AppConfig,
  ) {}

  /** An operation on the reads connection (`read`) or the writes connection (the others). */
  run<T>(
    operation: string,
    kind: OperationKind,
    work: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    const { reads, command } = this.connections;
    return this.runOn(kind === 'read' ? reads : command, operation, kind, work, isMiss);
  }

  /**
   * An operation on a given connection (a lock node, say). ioredis arms commandTimeout only
   * when a command is written, and auto-pipelining holds a batch back until the previous batch
   * has settled: behind a stalled batch a command waits up to one timeout unsent, then another
   * one sent; an operation of several round trips adds up its commands' timeouts. The request
   * budget is the whole operation's, so it gets one deadline of its own.
   */
  async runOn<T>(
    client: RedisClient,
    operation: string,
    kind: OperationKind,
    work: (client: RedisClient) => Promise<T>,
    isMiss?: (result: T) => boolean,
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    if (client.status !== 'ready') {
      this.metrics.recordOperation(operation, 'error', seconds());
      throw notReady();
    }
    try {
      const result = await withDeadline(work(client), this.config.redis.commandTimeoutMs);
      this.metrics.recordOperation(operation, isMiss?.(result) ? 'miss' : 'ok', seconds());
      return result;
    } catch (error) {
      throw this.failed(operation, kind, error, seconds());
    }
  }

  /**
   * One blocking command on a connection of the blocking pool (503 when the pool is spent or
   * Redis is down, 429 past the owner's share). It gets BLOCK + BLOCKING_GRACE_MS to answer,
   * else its connection is closed as half-open (504); when the signal aborts, the connection is
   * closed at once, which also ends the block inside Redis.
   */
  async runBlocking<T>(
    operation: string,
    kind: OperationKind,
    blockMs: number,
    work: (client: RedisClient) => Promise<T>,
    { signal, owner }: BlockingOptions = {},
  ): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let lease;
    try {
      lease = await this.connections.blocking.lease(owner);
    } catch (error) {
      this.metrics.recordOperation(operation, 'error', seconds());
      throw error;
    }
    const { release } = lease;
    const abandon = () => release(false);
    signal?.addEventListener('abort', abandon, { once: true });
    try {
      const result = await withDeadline(work(lease.client), blockMs + BLOCKING_GRACE_MS, {
        onTimeout: abandon,
      });
      release(true);
      this.metrics.recordOperation(operation, 'ok', seconds());
      return result;
    } catch (error) {
      // An error reply leaves the connection usable; anything else may have left it mid-command.
      release(error instanceof Error && error.name === 'ReplyError');
      throw this.failed(operation, kind, error, seconds());
    } finally {
      signal?.removeEventListener('abort', abandon);
    }
  }

  /**
   * One blocking command on a connection its caller holds on lease (a stream tail's): the same
   * deadline of BLOCK + BLOCKING_GRACE_MS, metrics and error translation as `runBlocking`; the
   * caller decides what becomes of the lease when it fails.
   */
  async runBlockingOn<T>(
    lease: BlockingLease,
    operation: string,
    blockMs: number,
    work: (client: RedisClient) => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    try {
      const result = await withDeadline(work(lease.client), blockMs + BLOCKING_GRACE_MS);
      this.metrics.recordOperation(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      throw this.failed(operation, 'read', error, (performance.now() - started) / 1000);
    }
  }

  private failed(operation: string, kind: OperationKind, error: unknown, seconds: number) {
    this.metrics.recordOperation(operation, 'error', seconds);
    const translated = translateRedisError(error, kind);
    if (translated.code === 'INTERNAL' || translated.code === 'REDIS_NO_PERMISSION') {
      this.logger.error({ err: error, operation }, 'Redis operation failed');
    }
    return translated;
  }
}

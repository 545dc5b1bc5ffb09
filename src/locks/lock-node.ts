import { performance } from 'node:perf_hooks';
import { Logger } from '@nestjs/common';
import { Cluster, type Redis } from 'ioredis';
import { AppError } from '../errors/app-error';
import type { RedisExecutor } from '../redis/executor';
import { parseInfo } from '../redis/info';
import { notReady, type OperationKind } from '../redis/redis-errors';
import type { RedisClient } from '../redis/types';

/** One server's INFO fields the restart check reads. */
interface ServerState {
  address: string;
  runId: string;
  uptimeMs: number;
  persistent: boolean;
}

/**
 * One Redis server (or cluster) taking part in locking: the gateway's own Redis, or one of
 * `locks.nodes`. It runs commands with the gateway's fail-fast rules and keeps the delayed
 * restart of redis.io's lock page: a server without AOF persistence that restarted (its
 * `run_id` changed, or it has been up for less than `locks.delayedRestartMs`) forgot every lock
 * it held, so it grants none until that long after its restart.
 */
export class LockNode {
  private readonly logger = new Logger('Locks');
  /** Bumped on every new connection: each one is checked before it may grant. */
  private generation = 0;
  private check?: Promise<void>;
  private readonly runIds = new Map<string, string>();
  /** performance.now() until which this node grants nothing. */
  private recoveringUntil = 0;

  constructor(
    readonly label: string,
    readonly client: RedisClient,
    private readonly redis: RedisExecutor,
    private readonly delayedRestartMs: number,
  ) {
    const reconnected = () => {
      this.generation += 1;
      this.check = undefined;
    };
    client.on('ready', reconnected);
    if (client instanceof Cluster) {
      client.on('+node', (node: Redis) => node.on('ready', reconnected));
    }
  }

  /** One operation on this node: 503 at once when it is not connected, a deadline, metrics. */
  run<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
  ): Promise<T> {
    return this.redis.runOn(this.client, operation, kind, run);
  }

  /**
   * Milliseconds until this node may grant again (0: it may grant now), after checking its
   * current connection once; rejects with an AppError when the node cannot be reached.
   */
  async recoveringMs(): Promise<number> {
    for (;;) {
      const generation = this.generation;
      this.check ??= this.inspect(generation).catch((error: unknown) => {
        this.check = undefined;
        throw error instanceof AppError ? error : notReady();
      });
      await this.check;
      if (generation === this.generation) {
        return Math.max(0, this.recoveringUntil - performance.now());
      }
    }
  }

  private async inspect(generation: number): Promise<void> {
    const states = await this.run('locks.inspect', 'read', (client) => {
      const servers = client instanceof Cluster ? client.nodes('master') : [client];
      return Promise.all(servers.map((server) => this.serverState(server)));
    });
    if (generation !== this.generation) {
      return; // a newer connection came up meanwhile: its own check decides
    }
    const now = performance.now();
    for (const state of states) {
      const previous = this.runIds.get(state.address);
      this.runIds.set(state.address, state.runId);
      if (state.persistent || this.delayedRestartMs === 0) {
        continue;
      }
      // A restart this process saw waits the whole delay (a failover to a replica is one, with
      // a long uptime); a server first seen waits out what remains of it since its start.
      const restarted = previous !== undefined && previous !== state.runId;
      const waitMs = restarted ? this.delayedRestartMs : this.delayedRestartMs - state.uptimeMs;
      if (waitMs > 0) {
        this.recoveringUntil = Math.max(this.recoveringUntil, now + waitMs);
        this.logger.warn(
          { node: this.label, server: state.address, runId: state.runId, waitMs },
          'Redis restarted without persistence: it forgot its locks, so it grants none for a while',
        );
      }
    }
  }

  private async serverState(server: Redis): Promise<ServerState> {
    const [info, persistence] = (
      await Promise.all([server.info('server'), server.info('persistence')])
    ).map(parseInfo);
    return {
      address: `${server.options.host}:${server.options.port}`,
      runId: info.server?.run_id ?? '',
      uptimeMs: Number(info.server?.uptime_in_seconds ?? 0) * 1000,
      persistent: persistence.persistence?.aof_enabled === '1',
    };
  }
}

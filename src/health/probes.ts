import { performance } from 'node:perf_hooks';
import { Injectable } from '@nestjs/common';
import { Cluster } from 'ioredis';
import { AppConfig } from '../config/app-config';
import { RedisConnections } from '../redis/connections';
import { RedisExecutor } from '../redis/executor';
import { parseInfo, type Info } from '../redis/info';
import { mastersInOrder, nodeAddress } from '../redis/key-scan';
import { notReady } from '../redis/redis-errors';

/** A server of the topology, as /redis/status lists it. */
export interface RedisNode {
  address: string;
  role: 'master' | 'replica' | 'sentinel';
  /** Cluster masters: how many hash slots they serve, in how many contiguous ranges. */
  slots?: number;
  slotRanges?: number;
}

/** What the health endpoints ask Redis: a PING, INFO, and the servers the client knows. */
@Injectable()
export class RedisProbes {
  constructor(
    private readonly connections: RedisConnections,
    private readonly redis: RedisExecutor,
    private readonly config: AppConfig,
  ) {}

  /**
   * Round-trip time of a PING (on the reads connection) in milliseconds; rejects like any
   * operation, and with 503 while the writes connection is not ready either.
   */
  async ping(): Promise<number> {
    if (this.connections.command.status !== 'ready') {
      throw notReady();
    }
    const started = performance.now();
    await this.redis.run('ping', 'read', (client) => client.ping());
    return performance.now() - started;
  }

  /**
   * INFO, by section: of the server, or in cluster mode of every master that answers (at least
   * one must; a dead master is left out, and shows in the slot map of `topology`).
   */
  async info(): Promise<Info[]> {
    const texts = await this.redis.run('info', 'read', async (client) => {
      if (!(client instanceof Cluster)) {
        return [await client.info()];
      }
      const answers = await Promise.allSettled(client.nodes('master').map((node) => node.info()));
      const texts = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      if (texts.length === 0) {
        const failed = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected');
        throw failed ? failed.reason : notReady();
      }
      return texts;
    });
    return texts.map(parseInfo);
  }

  /**
   * The servers behind the command connections, from what the client already knows (no round
   * trip): standalone, the server (`serverRole` is its INFO role); sentinel, the primary the
   * reads connection is on and the configured Sentinels; cluster, every node of the slot map,
   * masters with the slots they serve.
   */
  topology(serverRole: string | null): RedisNode[] {
    const role = serverRole === 'slave' ? 'replica' : 'master';
    const { reads } = this.connections;
    if (reads instanceof Cluster) {
      const served = new Map<string, { slots: number; slotRanges: number }>();
      let previous: string | undefined;
      for (const owners of reads.slots) {
        const owner = owners?.[0];
        if (owner !== undefined) {
          const entry = served.get(owner) ?? { slots: 0, slotRanges: 0 };
          entry.slots += 1;
          entry.slotRanges += owner === previous ? 0 : 1;
          served.set(owner, entry);
        }
        previous = owner;
      }
      const masters = mastersInOrder(reads).map(({ address, node }) => ({
        address,
        role: 'master' as const,
        ...(served.get(`${node.options.host}:${node.options.port}`) ?? {
          slots: 0,
          slotRanges: 0,
        }),
      }));
      const replicas = reads
        .nodes('slave')
        .map((node) => ({ address: nodeAddress(node), role: 'replica' as const }))
        .sort((a, b) => (a.address < b.address ? -1 : 1));
      return [...masters, ...replicas];
    }
    if (this.connections.mode === 'sentinel') {
      const socket = reads.stream;
      const host = socket?.remoteAddress ?? '';
      const address = `${host.includes(':') ? `[${host}]` : host}:${socket?.remotePort ?? ''}`;
      return [
        { address, role },
        ...this.config.redis.sentinels.map((sentinel) => ({
          address: sentinel,
          role: 'sentinel' as const,
        })),
      ];
    }
    return [{ address: nodeAddress(reads), role }];
  }
}

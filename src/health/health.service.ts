import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { NearCache } from '../near-cache/near-cache';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { RedisConnections } from '../redis/connections';
import type { Info } from '../redis/info';
import { RedisProbes } from './probes';
import type { KeyspaceDbDto, StatusDto } from './dto/status.dto';

const GATEWAY_VERSION = (
  JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }
).version;

function toNumber(value: string | undefined): number | null {
  return value === undefined || Number.isNaN(Number(value)) ? null : Number(value);
}

/** A field of every server's INFO, added up (null when one of them lacks it). */
function sumOf(infos: Info[], section: string, field: string): number | null {
  let sum = 0;
  for (const info of infos) {
    const value = toNumber(info[section]?.[field]);
    if (value === null) {
      return null;
    }
    sum += value;
  }
  return sum;
}

/**
 * `db0:keys=1,expires=0,avg_ttl=0` lines into objects, added up over the servers (the masters
 * of a cluster each hold a share of the keys); avgTtl weighted by each server's expiring keys.
 */
function parseKeyspace(infos: Info[]): Record<string, KeyspaceDbDto> {
  const keyspace: Record<string, KeyspaceDbDto> = {};
  for (const info of infos) {
    for (const [db, line] of Object.entries(info.keyspace ?? {})) {
      const fields: Record<string, string> = Object.fromEntries(
        line.split(',').map((pair) => pair.split('=') as [string, string]),
      );
      const entry = (keyspace[db] ??= { keys: 0, expires: 0, avgTtl: 0 });
      const expires = Number(fields.expires ?? 0);
      const ttlTotal = entry.avgTtl * entry.expires + Number(fields.avg_ttl ?? 0) * expires;
      entry.keys += Number(fields.keys ?? 0);
      entry.expires += expires;
      entry.avgTtl = entry.expires > 0 ? Math.round(ttlTotal / entry.expires) : 0;
    }
  }
  return keyspace;
}

@Injectable()
export class HealthService {
  private readonly startedAt = Date.now();

  constructor(
    private readonly probes: RedisProbes,
    private readonly connections: RedisConnections,
    private readonly metrics: GatewayMetrics,
    private readonly near: NearCache,
  ) {}

  /** Ready when Redis answers PING within the command timeout. */
  async isReady(): Promise<boolean> {
    try {
      await this.probes.ping();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The state of Redis and of this instance; `confined` (a caller limited by key patterns)
   * leaves out the server-wide figures: key counts, memory and clients describe every tenant.
   */
  async status(confined = false): Promise<StatusDto> {
    const near = this.near.state();
    const gateway = {
      version: GATEWAY_VERSION,
      uptimeS: Math.floor((Date.now() - this.startedAt) / 1000),
      sseSubscribers: await this.metrics.sseClientCount(),
      nearCache: {
        ...near,
        entries: confined ? null : near.entries,
        bytes: confined ? null : near.bytes,
      },
    };
    try {
      const latencyMs = await this.probes.ping();
      // One server, or every master of a cluster: sizes and counts are the totals.
      const infos = await this.probes.info();
      const [info] = infos;
      const role = info.replication?.role ?? null;
      return {
        status: 'up',
        latencyMs: Math.round(latencyMs * 1000) / 1000,
        redis: {
          version: info.server?.redis_version ?? null,
          mode: this.connections.mode,
          role,
          nodes: this.probes.topology(role),
          usedMemoryBytes: confined ? null : sumOf(infos, 'memory', 'used_memory'),
          connectedClients: confined ? null : sumOf(infos, 'clients', 'connected_clients'),
          keyspace: confined ? null : parseKeyspace(infos),
        },
        gateway,
      };
    } catch {
      return {
        status: 'down',
        latencyMs: null,
        redis: {
          version: null,
          mode: this.connections.mode,
          role: null,
          nodes: [],
          usedMemoryBytes: null,
          connectedClients: null,
          keyspace: null,
        },
        gateway,
      };
    }
  }
}

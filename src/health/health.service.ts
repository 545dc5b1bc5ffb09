import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { RedisManager } from '../redis/redis-manager';
import type { KeyspaceDbDto, StatusDto } from './dto/status.dto';

const GATEWAY_VERSION = (
  JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }
).version;

function toNumber(value: string | undefined): number | null {
  return value === undefined || Number.isNaN(Number(value)) ? null : Number(value);
}

/** `db0:keys=1,expires=0,avg_ttl=0` lines into objects. */
function parseKeyspace(section: Record<string, string> = {}): Record<string, KeyspaceDbDto> {
  const keyspace: Record<string, KeyspaceDbDto> = {};
  for (const [db, line] of Object.entries(section)) {
    const fields: Record<string, string> = Object.fromEntries(
      line.split(',').map((pair) => pair.split('=') as [string, string]),
    );
    keyspace[db] = {
      keys: Number(fields.keys ?? 0),
      expires: Number(fields.expires ?? 0),
      avgTtl: Number(fields.avg_ttl ?? 0),
    };
  }
  return keyspace;
}

@Injectable()
export class HealthService {
  private readonly startedAt = Date.now();

  constructor(
    private readonly redis: RedisManager,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** Ready when Redis answers PING within the command timeout. */
  async isReady(): Promise<boolean> {
    try {
      await this.redis.ping();
      return true;
    } catch {
      return false;
    }
  }

  async status(): Promise<StatusDto> {
    const gateway = {
      version: GATEWAY_VERSION,
      uptimeS: Math.floor((Date.now() - this.startedAt) / 1000),
      sseSubscribers: await this.metrics.sseClientCount(),
    };
    try {
      const latencyMs = await this.redis.ping();
      const info = await this.redis.info();
      const role = info.replication?.role ?? null;
      return {
        status: 'up',
        latencyMs: Math.round(latencyMs * 1000) / 1000,
        redis: {
          version: info.server?.redis_version ?? null,
          mode: this.redis.mode,
          role,
          nodes: this.redis.topology(role),
          usedMemoryBytes: toNumber(info.memory?.used_memory),
          connectedClients: toNumber(info.clients?.connected_clients),
          keyspace: parseKeyspace(info.keyspace),
        },
        gateway,
      };
    } catch {
      return {
        status: 'down',
        latencyMs: null,
        redis: {
          version: null,
          mode: this.redis.mode,
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

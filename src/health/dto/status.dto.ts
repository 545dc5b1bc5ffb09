import { ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import { REDIS_MODES, type RedisMode } from '../../config/app-config';

export class HealthDto {
  @ApiProperty({ enum: ['ok', 'ready', 'not_ready'] })
  status!: 'ok' | 'ready' | 'not_ready';
}

export class KeyspaceDbDto {
  @ApiProperty({ type: 'integer' }) keys!: number;
  @ApiProperty({ type: 'integer' }) expires!: number;
  @ApiProperty({ type: 'integer' }) avgTtl!: number;
}

export class RedisNodeDto {
  @ApiProperty({ description: 'host:port', example: '10.0.0.5:6379' })
  address!: string;

  @ApiProperty({
    enum: ['master', 'replica', 'sentinel'],
    description:
      'standalone: the server; sentinel: the primary the gateway is connected to and the ' +
      'configured Sentinels; cluster: every node of the slot map',
  })
  role!: 'master' | 'replica' | 'sentinel';

  @ApiPropertyOptional({
    type: 'integer',
    description: 'Cluster masters: the hash slots they serve',
    example: 5461,
  })
  slots?: number;

  @ApiPropertyOptional({
    type: 'integer',
    description: 'Cluster masters: in how many contiguous slot ranges',
    example: 1,
  })
  slotRanges?: number;
}

export class RedisInfoDto {
  @ApiProperty({ type: String, nullable: true, example: '7.0.15' })
  version!: string | null;

  @ApiProperty({ enum: REDIS_MODES })
  mode!: RedisMode;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'master',
    description: 'INFO role of the server answering (cluster: one of the masters)',
  })
  role!: string | null;

  @ApiProperty({
    type: [RedisNodeDto],
    description: 'The servers of the topology; empty while Redis is down',
  })
  nodes!: RedisNodeDto[];

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'INFO used_memory; cluster: the sum over the masters that answer',
  })
  usedMemoryBytes!: number | null;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'INFO connected_clients; cluster: the sum over the masters that answer',
  })
  connectedClients!: number | null;

  @ApiProperty({
    type: 'object',
    description: 'INFO keyspace by database; cluster: keys and expires summed over the masters',
    additionalProperties: { $ref: getSchemaPath(KeyspaceDbDto) },
    nullable: true,
    example: { db0: { keys: 12, expires: 3, avgTtl: 0 } },
  })
  keyspace!: Record<string, KeyspaceDbDto> | null;
}

export class NearCacheStatusDto {
  @ApiProperty({ description: 'nearCache.enabled' })
  enabled!: boolean;

  @ApiProperty({
    description: 'Redis client tracking is armed: reads are answered from memory (else from Redis)',
  })
  trackingArmed!: boolean;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'Cached entries (null for a token confined by key patterns)',
  })
  entries!: number | null;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'Bytes cached (null for a token confined by key patterns)',
  })
  bytes!: number | null;
}

export class GatewayInfoDto {
  @ApiProperty({ example: '0.1.0' })
  version!: string;

  @ApiProperty({ type: 'integer' })
  uptimeS!: number;

  @ApiProperty({ type: 'integer' })
  sseSubscribers!: number;

  @ApiProperty({ type: NearCacheStatusDto })
  nearCache!: NearCacheStatusDto;
}

export class StatusDto {
  @ApiProperty({ enum: ['up', 'down'] })
  status!: 'up' | 'down';

  @ApiProperty({ type: Number, nullable: true, description: 'PING round trip' })
  latencyMs!: number | null;

  @ApiProperty({ type: RedisInfoDto })
  redis!: RedisInfoDto;

  @ApiProperty({ type: GatewayInfoDto })
  gateway!: GatewayInfoDto;
}

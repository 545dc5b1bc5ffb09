import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge, Histogram } from 'prom-client';

export type OperationResult = 'ok' | 'miss' | 'error';
export type ConnectionRole = 'command' | 'subscriber' | 'blocking';
export type SseKind = 'channel' | 'pattern' | 'stream';

/** The gateway's own metrics (the README lists them), in one injectable place. */
@Injectable()
export class GatewayMetrics {
  constructor(
    @InjectMetric('http_requests_total')
    readonly httpRequests: Counter<'method' | 'route' | 'status'>,
    @InjectMetric('http_request_duration_seconds')
    readonly httpDuration: Histogram<'method' | 'route' | 'status'>,
    @InjectMetric('redis_gateway_operations_total')
    readonly operations: Counter<'operation' | 'result'>,
    @InjectMetric('redis_gateway_operation_duration_seconds')
    readonly operationDuration: Histogram<'operation'>,
    @InjectMetric('redis_gateway_cache_hits_total') readonly cacheHits: Counter,
    @InjectMetric('redis_gateway_cache_misses_total') readonly cacheMisses: Counter,
    @InjectMetric('redis_gateway_redis_up') readonly redisUp: Gauge,
    @InjectMetric('redis_gateway_redis_connections') readonly connections: Gauge<'role'>,
    @InjectMetric('redis_gateway_sse_clients') readonly sseClients: Gauge<'kind'>,
    @InjectMetric('redis_gateway_auth_failures_total') readonly authFailures: Counter<'reason'>,
    @InjectMetric('redis_gateway_sse_events_total')
    readonly sseEvents: Counter<'kind' | 'result'>,
    @InjectMetric('redis_gateway_blocking_pool_in_use') readonly blockingInUse: Gauge,
    @InjectMetric('redis_gateway_blocking_pool_size') readonly blockingPoolSize: Gauge,
    @InjectMetric('redis_gateway_lock_operations_total')
    readonly lockOperations: Counter<'operation' | 'result'>,
    @InjectMetric('redis_gateway_lock_wait_seconds') readonly lockWait: Histogram,
    @InjectMetric('redis_gateway_rate_limited_total') readonly rateLimited: Counter<'reason'>,
    @InjectMetric('redis_gateway_near_cache_hits_total') readonly nearCacheHits: Counter,
    @InjectMetric('redis_gateway_near_cache_misses_total') readonly nearCacheMisses: Counter,
    @InjectMetric('redis_gateway_near_cache_invalidations_total')
    readonly nearCacheInvalidations: Counter,
    @InjectMetric('redis_gateway_near_cache_evictions_total') readonly nearCacheEvictions: Counter,
    @InjectMetric('redis_gateway_near_cache_flushes_total') readonly nearCacheFlushes: Counter,
    @InjectMetric('redis_gateway_near_cache_bytes') readonly nearCacheBytes: Gauge,
    @InjectMetric('redis_gateway_upstash_commands_total')
    readonly upstashCommands: Counter<'family' | 'result'>,
  ) {}

  recordHttp(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  recordOperation(operation: string, result: OperationResult, seconds: number): void {
    this.operations.inc({ operation, result });
    this.operationDuration.observe({ operation }, seconds);
  }

  /** Open SSE streams of every kind together (for /redis/status). */
  async sseClientCount(): Promise<number> {
    const { values } = await this.sseClients.get();
    return values.reduce((sum, { value }) => sum + value, 0);
  }
}

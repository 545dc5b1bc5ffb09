import { Controller, Get, Module, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import {
  PrometheusController,
  PrometheusModule,
  makeCounterProvider,
  makeGaugeProvider,
  makeHistogramProvider,
} from '@willsoto/nestjs-prometheus';
import { Public } from '../common/public.decorator';
import { GatewayMetrics } from './gateway-metrics';

@ApiTags('operations')
@Public()
@Controller()
export class MetricsController extends PrometheusController {
  @Get()
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format); no token' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text format', schema: { type: 'string' } })
  override index(@Res({ passthrough: true }) response: unknown): Promise<string> {
    return super.index(response);
  }
}

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** `/metrics` and every metric of the gateway, created once and reused across app instances. */
@Module({
  imports: [
    PrometheusModule.register({
      controller: MetricsController,
      path: '/metrics',
      defaultMetrics: { enabled: true },
    }),
  ],
  providers: [
    makeCounterProvider({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route template and status',
      labelNames: ['method', 'route', 'status'],
    }),
    makeHistogramProvider({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: DURATION_BUCKETS,
    }),
    makeCounterProvider({
      name: 'redis_gateway_operations_total',
      help: 'Redis operations by operation and result (ok, miss, error)',
      labelNames: ['operation', 'result'],
    }),
    makeHistogramProvider({
      name: 'redis_gateway_operation_duration_seconds',
      help: 'Redis operation duration by operation',
      labelNames: ['operation'],
      buckets: DURATION_BUCKETS,
    }),
    makeCounterProvider({
      name: 'redis_gateway_cache_hits_total',
      help: 'Key-value reads that found their key',
    }),
    makeCounterProvider({
      name: 'redis_gateway_cache_misses_total',
      help: 'Key-value reads that did not find their key',
    }),
    makeGaugeProvider({
      name: 'redis_gateway_redis_up',
      help: '1 while the command connection to Redis is ready, else 0',
    }),
    makeGaugeProvider({
      name: 'redis_gateway_redis_connections',
      help: 'Open Redis connections by role (command, subscriber, blocking)',
      labelNames: ['role'],
    }),
    makeGaugeProvider({
      name: 'redis_gateway_sse_clients',
      help: 'Open Server-Sent Events streams by kind (channel, pattern, stream)',
      labelNames: ['kind'],
    }),
    makeCounterProvider({
      name: 'redis_gateway_auth_failures_total',
      help: 'Requests refused for their token, by reason',
      labelNames: ['reason'],
    }),
    makeCounterProvider({
      name: 'redis_gateway_sse_events_total',
      help: 'Server-Sent Events by kind and result (delivered, or dropped with a slow consumer)',
      labelNames: ['kind', 'result'],
    }),
    makeGaugeProvider({
      name: 'redis_gateway_blocking_pool_in_use',
      help: 'Blocking-pool connections lent out (blocked reads and stream tails)',
    }),
    makeGaugeProvider({
      name: 'redis_gateway_blocking_pool_size',
      help: 'The blocking pool bound (redis.blockingPoolSize)',
    }),
    makeCounterProvider({
      name: 'redis_gateway_lock_operations_total',
      help: 'Lock operations by operation (acquire, extend, release, status) and result',
      labelNames: ['operation', 'result'],
    }),
    makeHistogramProvider({
      name: 'redis_gateway_lock_wait_seconds',
      help: 'Time an acquisition waited, granted or not',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    makeCounterProvider({
      name: 'redis_gateway_rate_limited_total',
      help: 'Requests answered 429, by the limit they met (requests, auth_failures, locks, blocking, sse_streams)',
      labelNames: ['reason'],
    }),
    makeCounterProvider({
      name: 'redis_gateway_near_cache_hits_total',
      help: 'Near-cache lookups answered from memory',
    }),
    makeCounterProvider({
      name: 'redis_gateway_near_cache_misses_total',
      help: 'Near-cache lookups that went to Redis (absent, expired, or tracking not armed)',
    }),
    makeCounterProvider({
      name: 'redis_gateway_near_cache_invalidations_total',
      help: 'Near-cache entries removed by an invalidation (Redis tracking or a write through this instance)',
    }),
    makeCounterProvider({
      name: 'redis_gateway_near_cache_evictions_total',
      help: 'Near-cache entries evicted to stay within nearCache.maxBytes, or at their expiry',
    }),
    makeCounterProvider({
      name: 'redis_gateway_near_cache_flushes_total',
      help: 'Whole near-cache flushes (FLUSHALL/FLUSHDB, a lost or reconnected tracking connection)',
    }),
    makeGaugeProvider({
      name: 'redis_gateway_near_cache_bytes',
      help: 'Bytes the near-cache holds (values, names and a fixed overhead per entry)',
    }),
    makeCounterProvider({
      name: 'redis_gateway_upstash_commands_total',
      help: 'Commands of the Upstash-compatible endpoint by family (COMMAND DOCS group) and result (ok, error, refused)',
      labelNames: ['family', 'result'],
    }),
    GatewayMetrics,
  ],
  exports: [GatewayMetrics],
})
export class MetricsModule {}

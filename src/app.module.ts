import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { AuthModule } from './auth/auth.module';
import { CommonModule } from './common/common.module';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { ProblemFilter } from './errors/problem.filter';
import { HealthModule } from './health/health.module';
import { HashesModule } from './hashes/hashes.module';
import { KvModule } from './kv/kv.module';
import { LocksModule } from './locks/locks.module';
import type { DestinationStream } from 'pino';
import { LOG_DESTINATION, LoggingModule } from './observability/logging.module';
import { MetricsModule } from './observability/metrics.module';
import { PubSubModule } from './pubsub/pubsub.module';
import { RedisModule } from './redis/redis.module';
import { SseModule } from './sse/sse.module';
import { StreamsModule } from './streams/streams.module';
import { UpstashModule } from './upstash/upstash.module';

export interface AppOptions {
  /** Where the JSON log lines go (standard output by default). */
  logDestination?: DestinationStream;
}

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, options: AppOptions = {}): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        ConfigModule.forRoot(config),
        CommonModule,
        LoggingModule,
        MetricsModule,
        RedisModule,
        AuthModule,
        HealthModule,
        SseModule,
        KvModule,
        HashesModule,
        StreamsModule,
        PubSubModule,
        LocksModule,
        ...(config.upstash.enabled ? [UpstashModule] : []),
      ],
      providers: [
        { provide: APP_FILTER, useClass: ProblemFilter },
        ...(options.logDestination
          ? [{ provide: LOG_DESTINATION, useValue: options.logDestination }]
          : []),
      ],
      exports: options.logDestination ? [LOG_DESTINATION] : [],
    };
  }
}

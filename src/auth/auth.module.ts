import { Global, Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { LimitsModule } from '../limits/limits.module';
import { MetricsModule } from '../observability/metrics.module';
import { JwksKeyResolver } from './jwks';
import { Authenticator } from './authenticator';
import { JwtStrategy } from './jwt.strategy';
import { KeyAccess } from './key-patterns';
import { TicketsController } from './tickets.controller';
import { TicketsService } from './tickets.service';
import { RequestGuard } from './request-guard';

/**
 * Bearer-token authentication, the caller's rate limit and scope checks for every controller
 * route (RequestGuard, a Fastify hook installed by the app factory), stream tickets, and the
 * key-pattern decisions every module asks (KeyAccess).
 */
@Global()
@Module({
  imports: [PassportModule.register({ session: false }), MetricsModule, LimitsModule],
  controllers: [TicketsController],
  providers: [JwksKeyResolver, JwtStrategy, TicketsService, KeyAccess, Authenticator, RequestGuard],
  exports: [KeyAccess, RequestGuard],
})
export class AuthModule {}

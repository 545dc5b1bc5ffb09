import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { LimitsModule } from '../limits/limits.module';
import { RateLimitGuard } from '../limits/rate-limit.guard';
import { MetricsModule } from '../observability/metrics.module';
import { JwksKeyResolver } from './jwks';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { KeyAccess } from './key-patterns';
import { TicketsController } from './tickets.controller';
import { TicketsService } from './tickets.service';
import { ScopesGuard } from './scopes.guard';

/**
 * Bearer-token authentication, the caller's rate limit and scope checks for every route
 * (global guards, in this order), stream tickets, and the key-pattern decisions every module
 * asks (KeyAccess).
 */
@Global()
@Module({
  imports: [PassportModule.register({ session: false }), MetricsModule, LimitsModule],
  controllers: [TicketsController],
  providers: [
    JwksKeyResolver,
    JwtStrategy,
    TicketsService,
    KeyAccess,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RateLimitGuard },
    { provide: APP_GUARD, useClass: ScopesGuard },
  ],
  exports: [KeyAccess],
})
export class AuthModule {}

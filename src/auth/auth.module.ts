import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { LimitsModule } from '../limits/limits.module';
import { RateLimitGuard } from '../limits/rate-limit.guard';
import { MetricsModule } from '../observability/metrics.module';
import { JwksKeyResolver } from './jwks';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { ScopesGuard } from './scopes.guard';

/**
 * Bearer-token authentication, the caller's rate limit and scope checks for every route
 * (global guards, in this order).
 */
@Module({
  imports: [PassportModule.register({ session: false }), MetricsModule, LimitsModule],
  providers: [
    JwksKeyResolver,
    JwtStrategy,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RateLimitGuard },
    { provide: APP_GUARD, useClass: ScopesGuard },
  ],
})
export class AuthModule {}

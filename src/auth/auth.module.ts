import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { MetricsModule } from '../observability/metrics.module';
import { JwksKeyResolver } from './jwks';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { ScopesGuard } from './scopes.guard';

/** Bearer-token authentication and scope checks for every route (global guards, in order). */
@Module({
  imports: [PassportModule.register({ session: false }), MetricsModule],
  providers: [
    JwksKeyResolver,
    JwtStrategy,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: ScopesGuard },
  ],
})
export class AuthModule {}

import { createHash, randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AppError } from '../errors/app-error';
import { RedisExecutor } from '../redis/executor';
import { Keyspace } from '../redis/keys';
import type { TicketDto } from './dto/tickets.dto';
import { invalidToken, type Principal } from './principal';

/** How long a ticket is valid. */
export const TICKET_TTL_MS = 30000;

/** The SSE paths a ticket may open: one name segment each. */
const SSE_PATH = /^\/redis\/(streams\/[^/?#]+|pubsub\/(channels|patterns)\/[^/?#]+)\/events$/;

interface StoredTicket {
  sub: string;
  scopes: string[];
  keyPatterns: string[] | null;
  exp: number;
  path: string;
}

/** A path compared by its decoded segments, so `a%3Ab` and `a:b` are the same path. */
function canonicalPath(path: string): string | null {
  try {
    return JSON.stringify(path.split('/').map((segment) => decodeURIComponent(segment)));
  } catch {
    return null;
  }
}

/**
 * Single-use stream tickets for browsers, whose EventSource cannot send an Authorization
 * header: a random ticket bound to the token's subject, scopes and key patterns and
 * to one SSE path, valid for 30 s. It lives in Redis (under the gateway's namespace, by its
 * hash only), so any instance behind a load balancer can redeem it, exactly once (GETDEL).
 */
@Injectable()
export class TicketsService {
  constructor(
    private readonly redis: RedisExecutor,
    private readonly keyspace: Keyspace,
  ) {}

  async issue(principal: Principal, path: string): Promise<TicketDto> {
    const canonical = SSE_PATH.test(path) ? canonicalPath(path) : null;
    if (canonical === null) {
      throw AppError.validation([
        {
          field: 'path',
          message: 'must be the path of an SSE endpoint, such as /redis/streams/{key}/events',
        },
      ]);
    }
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = Math.min(Date.now() + TICKET_TTL_MS, principal.exp * 1000);
    if (expiresAt <= Date.now()) {
      throw invalidToken('The access token is about to expire.');
    }
    const stored: StoredTicket = {
      sub: principal.sub,
      scopes: [...principal.scopes],
      keyPatterns: principal.keyPatterns === null ? null : [...principal.keyPatterns],
      exp: principal.exp,
      path: canonical,
    };
    await this.redis.run('tickets.issue', 'write', (client) =>
      client.set(this.recordKey(ticket), JSON.stringify(stored), 'PXAT', expiresAt),
    );
    return { ticket, expiresAt: new Date(expiresAt).toISOString() };
  }

  /**
   * The principal a ticket stands for, if it is unused, unexpired and was issued for this path;
   * it is used up either way. Null when it is not valid (the caller answers 401).
   */
  async redeem(ticket: string, path: string): Promise<Principal | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(ticket)) {
      return null;
    }
    const raw = await this.redis.run('tickets.redeem', 'write', (client) =>
      client.getdel(this.recordKey(ticket)),
    );
    if (raw === null) {
      return null;
    }
    const stored = JSON.parse(raw) as StoredTicket;
    if (stored.path !== canonicalPath(path) || stored.exp * 1000 <= Date.now()) {
      return null;
    }
    return {
      sub: stored.sub,
      scopes: new Set(stored.scopes),
      keyPatterns: stored.keyPatterns,
      exp: stored.exp,
    };
  }

  private recordKey(ticket: string): string {
    const digest = createHash('sha256').update(ticket).digest('hex');
    return this.keyspace.reservedKey(`ticket:${digest}`);
  }
}

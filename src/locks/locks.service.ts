import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ExecutionError, Redlock, type Lock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { AppError, type ErrorCode } from '../errors/app-error';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { Keyspace, RESERVED_NAMESPACE } from '../redis/keys';
import type { OperationKind } from '../redis/redis-errors';
import {
  RedisManager,
  type RedisClient,
  type ScriptArg,
  type ScriptRunner,
} from '../redis/redis-manager';
import {
  DEFAULT_RETRY_DELAY_MS,
  LOCK_TOKEN_PATTERN,
  type AcquireLockDto,
  type ExtendLockDto,
} from './dto/lock-requests.dto';
import type { LockGrantDto, LockLeaseDto, LockStatusDto } from './dto/lock-responses.dto';
import { LockNode } from './lock-node';

/** Redlock's clock-drift allowance: a lease is trusted for ttl * (1 - factor) - 2 ms. */
const DRIFT_FACTOR = 0.01;
/** How long a fencing counter outlives the last grant of its lock (then reseeded from the clock). */
const FENCE_TTL_MS = 7 * 24 * 3600 * 1000;

type LockOperation = 'acquire' | 'extend' | 'release' | 'status';

interface LockKeys {
  lock: string;
  fence: string;
}

/** What one node answered to the latest acquisition attempt on it that has been answered. */
type NodeOutcome =
  | { kind: 'granted'; call: number; startedAt: number; fencingToken: number }
  | { kind: 'held'; remainingMs: number }
  | { kind: 'recovering'; remainingMs: number }
  | { kind: 'failed'; error: AppError };

/** How the nodes answered one of Redlock's attempts (each attempt asks every node once). */
interface AttemptTally {
  granted: number;
  refused: number;
  /** Settles as soon as the attempt has won (a majority granted) or can no longer win. */
  verdict: Promise<boolean>;
  decide: (won: boolean) => void;
}

function newTally(): AttemptTally {
  let decide: (won: boolean) => void = () => undefined;
  const verdict = new Promise<boolean>((resolve) => (decide = resolve));
  return { granted: 0, refused: 0, verdict, decide };
}

/** One acquisition in progress. Redlock knows it only by an opaque resource id. */
interface Acquisition {
  keys: LockKeys;
  owner: (token: string) => string;
  /** The caller has been answered (waitMs ran out): no further attempt touches Redis. */
  abandoned: boolean;
  /** Calls made on the nodes so far: attempt k (from 0) makes calls k·n+1 … k·n+n. */
  calls: number;
  attempts: AttemptTally[];
  latestCall: Map<LockNode, number>;
  outcomes: Map<LockNode, NodeOutcome>;
}

/**
 * What Redlock calls on each of its "clients" (it only ever calls these three and checks that
 * `acquireLock` exists): our owned-lease scripts with the fencing counter, run per node.
 */
interface RedlockNode {
  acquireLock(count: number, id: string, db: number, token: string, ttl: number): Promise<number>;
  extendLock(): Promise<number>;
  releaseLock(count: number, id: string, db: number, token: string): Promise<number>;
}

/** Raised inside an attempt on one node: Redlock counts it as a vote against. */
class VoteAgainst extends Error {}

// Thrown thousands of times a second by waiting acquisitions: made once (a stack is costly).
const HELD = new VoteAgainst('held by another owner');
const RECOVERING = new VoteAgainst('recovering from a restart');
const OVER = new VoteAgainst('the acquisition is over');

/** The lock owner stored in Redis: bound to the subject, and never the token itself. */
function ownerDigest(sub: string, token: string): string {
  return createHash('sha256').update(sub).update('\0').update(token).digest('base64url');
}

const drift = (ttlMs: number) => Math.round(DRIFT_FACTOR * ttlMs) + 2;
const retryAfter = (ms: number) => ({ 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) });

/**
 * Distributed locks as leases (ARCHITECTURE.md "Locks are leases", API.md "Distributed locks"):
 * Redlock for acquisition with jittered retry and the majority quorum over `locks.nodes` (or the
 * gateway's own Redis alone), owned-lease Lua scripts for extend and release, a fencing counter
 * per name in the lock's hash slot, and the delayed restart after a Redis lost its locks.
 */
@Injectable()
export class LocksService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Locks');
  private readonly nodeClients: Redis[];
  private readonly nodes: LockNode[];
  private readonly quorum: number;
  private readonly redlock: Redlock;
  private readonly acquisitions = new Map<string, Acquisition>();
  private readonly acquireScript: ScriptRunner;
  private readonly extendScript: ScriptRunner;
  private readonly releaseScript: ScriptRunner;
  private readonly raiseFenceScript: ScriptRunner;
  private readonly quotaScript: ScriptRunner;

  constructor(
    private readonly redis: RedisManager,
    private readonly keyspace: Keyspace,
    private readonly metrics: GatewayMetrics,
    private readonly config: AppConfig,
  ) {
    const { nodes: urls, delayedRestartMs } = config.locks;
    this.nodeClients = urls.map((url, index) =>
      redis.createNodeClient(url, `lock-node-${index + 1}`),
    );
    const script = (file: string) =>
      redis.defineScript(join(__dirname, 'scripts', file), { clients: this.nodeClients });
    this.acquireScript = script('acquire-2.lua');
    this.extendScript = script('extend-1.lua');
    this.releaseScript = script('release-1.lua');
    this.raiseFenceScript = script('raise-fence-1.lua');
    this.quotaScript = redis.defineScript(join(__dirname, 'scripts', 'lock-quota-1.lua'));
    this.nodes =
      this.nodeClients.length > 0
        ? this.nodeClients.map(
            (client, index) =>
              new LockNode(`lock-node-${index + 1}`, client, redis, delayedRestartMs),
          )
        : [new LockNode('redis', redis.command, redis, delayedRestartMs)];
    this.quorum = Math.floor(this.nodes.length / 2) + 1;
    const clients = this.nodes.map((node) => this.redlockNode(node));
    // Redlock's default settings are replaced per acquisition (retries follow waitMs).
    this.redlock = new Redlock(clients as unknown as Redis[], {
      driftFactor: DRIFT_FACTOR,
      retryCount: 0,
    });
  }

  onModuleInit(): void {
    for (const client of this.nodeClients) {
      client.connect().catch(() => undefined);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(
      this.nodeClients.map(async (client) => {
        try {
          await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 1000))]);
        } catch {
          // A connection that is already down has nothing left to close gracefully.
        }
        client.disconnect();
      }),
    );
  }

  acquire(principal: Principal, name: string, body: AcquireLockDto): Promise<LockGrantDto> {
    return this.counted('acquire', async () => {
      const keys = this.lockKeys(principal, name);
      this.checkTtl(body.ttlMs);
      const waitMs = body.waitMs ?? 0;
      const { maxBlockMs } = this.config.limits;
      if (waitMs > maxBlockMs) {
        throw AppError.validation([
          { field: 'waitMs', message: `waitMs must not be greater than ${maxBlockMs}` },
        ]);
      }
      const started = performance.now();
      const counted = await this.countLock(principal, name, waitMs + body.ttlMs);
      try {
        await this.checkGrantable();
        return await this.grant(principal, name, keys, body.ttlMs, waitMs, body.retryDelayMs);
      } catch (error) {
        if (counted) {
          this.uncountLock(principal, name);
        }
        throw error;
      } finally {
        this.metrics.lockWait.observe((performance.now() - started) / 1000);
      }
    });
  }

  extend(principal: Principal, name: string, body: ExtendLockDto): Promise<LockLeaseDto> {
    return this.counted('extend', async () => {
      const keys = this.lockKeys(principal, name);
      this.checkTtl(body.ttlMs);
      const owner = ownerDigest(principal.sub, body.token);
      const started = performance.now();
      const replies = await this.onEveryNode('locks.extend', 'write', (client) =>
        this.extendScript([keys.lock], [owner, body.ttlMs], client),
      );
      const { done, answered } = this.tally(replies);
      if (done >= this.quorum) {
        await this.quota(principal, ['hold', name, body.ttlMs]).catch(() => undefined);
        return { name, ...this.validity(started, body.ttlMs) };
      }
      if (answered < this.quorum) {
        throw this.unavailable(replies);
      }
      throw new AppError('LOCK_NOT_OWNER', 'The token does not hold this lock (any more).');
    });
  }

  release(principal: Principal, name: string, token: string | undefined): Promise<void> {
    return this.counted('release', async () => {
      const keys = this.lockKeys(principal, name);
      if (token === undefined || !LOCK_TOKEN_PATTERN.test(token)) {
        throw AppError.validation([
          { field: 'Lock-Token', message: 'the Lock-Token header must hold a lock token' },
        ]);
      }
      const owner = ownerDigest(principal.sub, token);
      const replies = await this.onEveryNode('locks.release', 'write', (client) =>
        this.releaseScript([keys.lock], [owner], client),
      );
      const { done, foreign, answered } = this.tally(replies);
      if (answered < this.quorum) {
        throw this.unavailable(replies);
      }
      if (done > 0) {
        this.uncountLock(principal, name);
        return;
      }
      if (foreign > 0) {
        throw new AppError('LOCK_NOT_OWNER', 'The lock is held by another owner.');
      }
      throw AppError.notFound('The lock');
    });
  }

  status(principal: Principal, name: string): Promise<LockStatusDto> {
    return this.counted('status', async () => {
      const keys = this.lockKeys(principal, name);
      const replies = await this.onEveryNode('locks.status', 'read', (client) =>
        client.pttl(keys.lock),
      );
      const remaining = replies.filter((reply): reply is number => typeof reply === 'number');
      if (remaining.length < this.quorum) {
        throw this.unavailable(replies);
      }
      // Held while a majority holds it: until the quorum-th longest lease ends.
      const leases = remaining.filter((ms) => ms > 0).sort((a, b) => b - a);
      const held = leases.length >= this.quorum;
      return { name, held, ttlMs: held ? leases[this.quorum - 1] : 0 };
    });
  }

  /**
   * Validates and authorises the name exactly as a data key (400, 403 for key patterns and the
   * reserved namespace), then places the lock and its fencing counter in the gateway's own
   * namespace. Both keys share the hash tag `{lock:<name>}`: in cluster mode they live in one
   * slot, whatever braces the name holds (the tag is never empty).
   */
  private lockKeys(principal: Principal, name: string): LockKeys {
    this.keyspace.key(principal, name, 'name');
    const lock = `${this.keyspace.prefix}${RESERVED_NAMESPACE}{lock:${name}}`;
    return { lock, fence: `${lock}:fence` };
  }

  /**
   * Counts a lock about to be acquired against quotas.locksPerSubject, for `ms` (the wait and
   * the lease): 429 QUOTA_EXCEEDED past it. True when counted now (to be uncounted if not
   * granted), false when the subject already holds that name or there is no quota.
   */
  private async countLock(principal: Principal, name: string, ms: number): Promise<boolean> {
    const { locksPerSubject } = this.config.quotas;
    if (locksPerSubject === 0) {
      return false;
    }
    const [result, waitMs] = await this.quota(principal, ['take', name, ms, locksPerSubject]);
    if (result === 0) {
      throw new AppError(
        'QUOTA_EXCEEDED',
        `This subject holds its quota of ${locksPerSubject} locks (quotas.locksPerSubject).`,
        { headers: retryAfter(waitMs ?? 1000), reason: 'locks' },
      );
    }
    return result === 1;
  }

  /** Takes a lock out of the subject's count (released, or not granted after all). */
  private uncountLock(principal: Principal, name: string): void {
    if (this.config.quotas.locksPerSubject > 0) {
      this.quota(principal, ['drop', name]).catch(() => undefined);
    }
  }

  private quota(principal: Principal, args: ScriptArg[]): Promise<[number, number?]> {
    const key = this.keyspace.reservedKey(
      'quota:locks',
      createHash('sha256').update(principal.sub).digest('base64url'),
    );
    return this.redis.exec(
      'locks.quota',
      'write',
      (client) => this.quotaScript([key], args, client) as Promise<[number, number?]>,
    );
  }

  private checkTtl(ttlMs: number): void {
    const { maxTtlMs } = this.config.locks;
    if (ttlMs > maxTtlMs) {
      throw AppError.validation([
        { field: 'ttlMs', message: `ttlMs must not be greater than ${maxTtlMs} (locks.maxTtlMs)` },
      ]);
    }
  }

  /** Answers at once, without waiting, when too few nodes could grant anything. */
  private async checkGrantable(): Promise<void> {
    const states = await Promise.all(
      this.nodes.map((node) =>
        node.recoveringMs().then(
          (ms) => ms,
          (error: unknown) => error as AppError,
        ),
      ),
    );
    const ready = states.filter((state) => state === 0).length;
    if (ready >= this.quorum) {
      return;
    }
    const recovering = states
      .filter((state): state is number => typeof state === 'number' && state > 0)
      .sort((a, b) => a - b);
    if (ready + recovering.length >= this.quorum) {
      throw this.recovering(recovering[this.quorum - ready - 1]);
    }
    throw this.unavailable(states.filter((state) => state instanceof AppError));
  }

  private async grant(
    principal: Principal,
    name: string,
    keys: LockKeys,
    ttlMs: number,
    waitMs: number,
    retryDelayMs = DEFAULT_RETRY_DELAY_MS,
  ): Promise<LockGrantDto> {
    const id = randomUUID();
    let digest: string | undefined;
    const acquisition: Acquisition = {
      keys,
      // Redlock makes one token per acquisition and passes it to every attempt.
      owner: (token) => (digest ??= ownerDigest(principal.sub, token)),
      abandoned: false,
      calls: 0,
      attempts: [],
      latestCall: new Map(),
      outcomes: new Map(),
    };
    this.acquisitions.set(id, acquisition);
    // Redlock pauses retryDelay ± retryJitter between attempts: enough attempts that even the
    // shortest pauses fill waitMs (so it never gives up early), and `within` ends the wait.
    const retryJitter = Math.floor(retryDelayMs / 2);
    const attempts = this.redlock
      .acquire([id], ttlMs, {
        retryCount: waitMs === 0 ? 0 : Math.ceil(waitMs / (retryDelayMs - retryJitter)),
        retryDelay: retryDelayMs,
        retryJitter,
      })
      .finally(() => this.acquisitions.delete(id));
    let lock: Lock;
    try {
      lock = waitMs === 0 ? await attempts : await this.within(attempts, waitMs, acquisition);
    } catch (error) {
      throw this.notAcquired(acquisition, error);
    }
    // The grants of the attempt that won (the last calls made), not an earlier partial one.
    const lastAttempt = acquisition.calls - this.nodes.length;
    const granted = [...acquisition.outcomes.values()].flatMap((outcome) =>
      outcome.kind === 'granted' && outcome.call > lastAttempt ? [outcome] : [],
    );
    const fencingToken = Math.max(...granted.map((outcome) => outcome.fencingToken));
    const startedAt = Math.min(...granted.map((outcome) => outcome.startedAt));
    try {
      if (!Number.isSafeInteger(fencingToken) || fencingToken <= 0) {
        throw new AppError('INTERNAL', 'No fencing token was issued.');
      }
      if (granted.filter((outcome) => outcome.fencingToken === fencingToken).length < this.quorum) {
        await this.raiseFences(keys, fencingToken);
      }
      const lease = this.validity(startedAt, ttlMs);
      if (lease.ttlMs <= 0) {
        throw new AppError('REDIS_TIMEOUT', 'The lock was granted too late to be of use.');
      }
      return { name, token: lock.value, fencingToken, ...lease };
    } catch (error) {
      this.releaseQuietly(acquisition, lock.value);
      throw error;
    }
  }

  /**
   * Redlock's attempts, cut at waitMs: the caller is answered then, and no later attempt
   * touches Redis. An attempt in flight at that moment still counts (as the only attempt of
   * waitMs 0 does): its verdict is awaited, and a lease it wins after all is kept if it won the
   * majority, else released.
   */
  private async within(attempts: Promise<Lock>, waitMs: number, acquisition: Acquisition) {
    const settled = attempts.then(
      (lock) => ({ lock }),
      (error: unknown) => ({ error }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<undefined>(
      (resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)),
    );
    try {
      const first = await Promise.race([settled, timeUp]);
      if (first && 'lock' in first) {
        return first.lock;
      }
      if (first) {
        throw first.error;
      }
    } finally {
      clearTimeout(timer);
    }
    if (await acquisition.attempts.at(-1)?.verdict) {
      return attempts; // Redlock counts the same votes: it resolves with this attempt's lock
    }
    acquisition.abandoned = true;
    void settled.then((late) => {
      if ('lock' in late) {
        this.releaseQuietly(acquisition, late.lock.value);
      }
    });
    throw OVER;
  }

  /** The error an acquisition that got no majority answers with, from what each node said. */
  private notAcquired(acquisition: Acquisition, error: unknown): AppError {
    if (!(error instanceof ExecutionError || error instanceof VoteAgainst)) {
      return error instanceof AppError ? error : new AppError('INTERNAL', 'Locking failed.');
    }
    const outcomes = [...acquisition.outcomes.values()];
    const held = outcomes
      .flatMap((outcome) => (outcome.kind === 'held' ? [outcome.remainingMs] : []))
      .sort((a, b) => a - b);
    const free = outcomes.filter((outcome) => outcome.kind === 'granted').length;
    if (held.length + free >= this.quorum) {
      // Free again once enough of the holder's leases have ended to leave a majority.
      const needed = this.quorum - (this.nodes.length - held.length);
      const waitMs = needed > 0 ? held[needed - 1] : 0;
      return new AppError('LOCK_HELD', 'Another owner holds the lock.', {
        headers: retryAfter(waitMs),
      });
    }
    const recovering = outcomes
      .flatMap((outcome) => (outcome.kind === 'recovering' ? [outcome.remainingMs] : []))
      .sort((a, b) => a - b);
    const usable = held.length + free;
    if (recovering.length > 0 && usable + recovering.length >= this.quorum) {
      return this.recovering(recovering[this.quorum - usable - 1]);
    }
    const failures = outcomes.flatMap((outcome) =>
      outcome.kind === 'failed' ? [outcome.error] : [],
    );
    return this.unavailable(failures);
  }

  /**
   * With several nodes each keeps its own counter, and the token is the largest a majority
   * issued. Raising the counters of a majority to it means any later majority, which overlaps
   * this one, issues a larger token.
   */
  private async raiseFences(keys: LockKeys, fencingToken: number): Promise<void> {
    const replies = await this.onEveryNode('locks.raise_fence', 'write', (client) =>
      this.raiseFenceScript([keys.fence], [fencingToken, FENCE_TTL_MS], client),
    );
    if (replies.filter((reply) => typeof reply === 'number').length < this.quorum) {
      throw this.unavailable(replies);
    }
  }

  /** Releases a lease nobody will use (fire and forget: it expires by itself otherwise). */
  private releaseQuietly(acquisition: Acquisition, token: string): void {
    const owner = acquisition.owner(token);
    void this.onEveryNode('locks.release', 'write', (client) =>
      this.releaseScript([acquisition.keys.lock], [owner], client),
    );
  }

  /** The three calls Redlock makes on one node. */
  private redlockNode(node: LockNode): RedlockNode {
    return {
      acquireLock: (_count, id, _db, token, ttl) => this.attempt(node, id, token, ttl),
      extendLock: () => Promise.reject(new Error('extend runs through the owned-lease script')),
      releaseLock: async (_count, id, _db, token) => {
        // Redlock's own clean-up after a failed acquisition: partial grants on a minority.
        const acquisition = this.acquisitions.get(id);
        if (!acquisition) {
          return 0;
        }
        const owner = acquisition.owner(token);
        const reply = await node.run('locks.release', 'write', (client) =>
          this.releaseScript([acquisition.keys.lock], [owner], client),
        );
        return reply === 1 ? 1 : 0;
      },
    };
  }

  /** One acquisition attempt on one node: 1 (Redlock's vote for) or a rejection (against). */
  private async attempt(node: LockNode, id: string, token: string, ttlMs: number) {
    const acquisition = this.acquisitions.get(id);
    if (!acquisition) {
      throw OVER;
    }
    if (acquisition.abandoned) {
      // The caller was answered when waitMs ran out, and Redlock would go on until its retries
      // are spent. A vote for, cast without touching Redis, ends its loop at the next attempt;
      // `within` then releases whatever this acquisition may hold.
      return 1;
    }
    const call = ++acquisition.calls;
    const tally = (acquisition.attempts[Math.floor((call - 1) / this.nodes.length)] ??= newTally());
    const startedAt = performance.now();
    acquisition.latestCall.set(node, call);
    // A slow answer to an earlier attempt must not overwrite the answer to a later one.
    const record = (outcome: NodeOutcome) => {
      if (acquisition.latestCall.get(node) === call) {
        acquisition.outcomes.set(node, outcome);
      }
    };
    let granted = false;
    try {
      const recoveringMs = await node.recoveringMs();
      if (recoveringMs > 0) {
        record({ kind: 'recovering', remainingMs: recoveringMs });
        throw RECOVERING;
      }
      const [took, value] = (await node.run('locks.acquire', 'write', (client) =>
        this.acquireScript(
          [acquisition.keys.lock, acquisition.keys.fence],
          [acquisition.owner(token), ttlMs, Date.now() * 1000, FENCE_TTL_MS],
          client,
        ),
      )) as [number, number];
      if (took !== 1) {
        record({ kind: 'held', remainingMs: value });
        throw HELD;
      }
      record({ kind: 'granted', call, startedAt, fencingToken: value });
      granted = true;
      return 1;
    } catch (error) {
      if (error instanceof AppError) {
        record({ kind: 'failed', error });
      }
      throw error;
    } finally {
      tally[granted ? 'granted' : 'refused'] += 1;
      if (tally.granted >= this.quorum) {
        tally.decide(true);
      } else if (tally.refused > this.nodes.length - this.quorum) {
        tally.decide(false);
      }
    }
  }

  /** The same operation on every node at once; each answers its reply or its AppError. */
  private onEveryNode<T>(
    operation: string,
    kind: OperationKind,
    run: (client: RedisClient) => Promise<T>,
  ): Promise<(T | AppError)[]> {
    return Promise.all(
      this.nodes.map((node) =>
        node.run(operation, kind, run).catch((error: unknown) => {
          if (error instanceof AppError) {
            return error;
          }
          throw error;
        }),
      ),
    );
  }

  /** Counts the replies of the owned-lease scripts: 1 done, 0 no lock, -1 another owner's. */
  private tally(replies: unknown[]) {
    const count = (value: number) => replies.filter((reply) => reply === value).length;
    const done = count(1);
    const foreign = count(-1);
    return { done, foreign, answered: done + foreign + count(0) };
  }

  private validity(startedAt: number, ttlMs: number): { expiresAt: string; ttlMs: number } {
    const left = Math.floor(startedAt + ttlMs - drift(ttlMs) - performance.now());
    return { expiresAt: new Date(Date.now() + left).toISOString(), ttlMs: left };
  }

  private recovering(waitMs: number): AppError {
    return new AppError(
      'LOCK_SERVICE_RECOVERING',
      'Redis restarted without persistence and forgot the locks it held; no lock is granted until every lease it may have held has ended.',
      { headers: retryAfter(waitMs) },
    );
  }

  /** Too few nodes answered: the one node's own error, or the quorum's. */
  private unavailable(replies: unknown[]): AppError {
    const errors = replies.filter((reply) => reply instanceof AppError);
    if (this.nodes.length === 1 && errors.length > 0) {
      return errors[0];
    }
    return new AppError(
      'LOCK_QUORUM_UNAVAILABLE',
      `Fewer than ${this.quorum} of the ${this.nodes.length} lock nodes answered.`,
    );
  }

  /** Counts every operation in redis_gateway_lock_operations_total by how it ended. */
  private async counted<T>(operation: LockOperation, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.metrics.lockOperations.inc({ operation, result: 'ok' });
      return result;
    } catch (error) {
      const code: ErrorCode = error instanceof AppError ? error.code : 'INTERNAL';
      this.metrics.lockOperations.inc({ operation, result: RESULT_LABELS[code] ?? 'error' });
      if (code === 'INTERNAL') {
        this.logger.error({ err: error, operation }, 'Lock operation failed');
      }
      throw error;
    }
  }
}

/** The `result` label of a failed lock operation, by error code (`error` for the rest). */
const RESULT_LABELS: Partial<Record<ErrorCode, string>> = {
  LOCK_HELD: 'held',
  LOCK_NOT_OWNER: 'not_owner',
  NOT_FOUND: 'not_found',
  LOCK_SERVICE_RECOVERING: 'recovering',
  VALIDATION_FAILED: 'rejected',
  KEY_FORBIDDEN: 'rejected',
  LOCK_QUORUM_UNAVAILABLE: 'unavailable',
  QUOTA_EXCEEDED: 'quota',
  REDIS_UNAVAILABLE: 'unavailable',
  REDIS_READONLY: 'unavailable',
  REDIS_TIMEOUT: 'unavailable',
  OUTCOME_UNKNOWN: 'unavailable',
};

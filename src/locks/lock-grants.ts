import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Injectable } from '@nestjs/common';
import { ExecutionError, Redlock, type Lock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import type { Principal } from '../auth/principal';
import { AppError } from '../errors/app-error';
import { DEFAULT_RETRY_DELAY_MS } from './dto/lock-requests.dto';
import type { LockGrantDto } from './dto/lock-responses.dto';
import type { LockNode } from './lock-node';
import { DRIFT_FACTOR, LockNodes, ownerDigest, retryAfter } from './lock-nodes';

/** How long a fencing counter outlives the last grant of its lock (then reseeded from the clock). */
const FENCE_TTL_MS = 7 * 24 * 3600 * 1000;

export interface LockKeys {
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

/**
 * Acquisition with Redlock: jittered retries until waitMs, a majority of the lock nodes, and
 * on each node our owned-lease script, which also issues the lock's next fencing token.
 * Redlock knows an acquisition only by an opaque resource id; the votes of each of its
 * attempts are tallied here, so the caller is answered exactly at waitMs.
 */
@Injectable()
export class LockGrants {
  private readonly redlock: Redlock;
  private readonly acquisitions = new Map<string, Acquisition>();

  constructor(private readonly lockNodes: LockNodes) {
    const clients = lockNodes.nodes.map((node) => this.redlockNode(node));
    // Redlock's default settings are replaced per acquisition (retries follow waitMs).
    this.redlock = new Redlock(clients as unknown as Redis[], {
      driftFactor: DRIFT_FACTOR,
      retryCount: 0,
    });
  }

  async grant(
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
    const lastAttempt = acquisition.calls - this.lockNodes.nodes.length;
    const granted = [...acquisition.outcomes.values()].flatMap((outcome) =>
      outcome.kind === 'granted' && outcome.call > lastAttempt ? [outcome] : [],
    );
    const fencingToken = Math.max(...granted.map((outcome) => outcome.fencingToken));
    const startedAt = Math.min(...granted.map((outcome) => outcome.startedAt));
    try {
      if (!Number.isSafeInteger(fencingToken) || fencingToken <= 0) {
        throw new AppError('INTERNAL', 'No fencing token was issued.');
      }
      if (
        granted.filter((outcome) => outcome.fencingToken === fencingToken).length <
        this.lockNodes.quorum
      ) {
        await this.raiseFences(keys, fencingToken);
      }
      const lease = this.lockNodes.validity(startedAt, ttlMs);
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
    if (held.length + free >= this.lockNodes.quorum) {
      // Free again once enough of the holder's leases have ended to leave a majority.
      const needed = this.lockNodes.quorum - (this.lockNodes.nodes.length - held.length);
      const waitMs = needed > 0 ? held[needed - 1] : 0;
      return new AppError('LOCK_HELD', 'Another owner holds the lock.', {
        headers: retryAfter(waitMs),
      });
    }
    const recovering = outcomes
      .flatMap((outcome) => (outcome.kind === 'recovering' ? [outcome.remainingMs] : []))
      .sort((a, b) => a - b);
    const usable = held.length + free;
    if (recovering.length > 0 && usable + recovering.length >= this.lockNodes.quorum) {
      return this.lockNodes.recovering(recovering[this.lockNodes.quorum - usable - 1]);
    }
    const failures = outcomes.flatMap((outcome) =>
      outcome.kind === 'failed' ? [outcome.error] : [],
    );
    return this.lockNodes.unavailable(failures);
  }

  /**
   * With several nodes each keeps its own counter, and the token is the largest a majority
   * issued. Raising the counters of a majority to it means any later majority, which overlaps
   * this one, issues a larger token.
   */
  private async raiseFences(keys: LockKeys, fencingToken: number): Promise<void> {
    const replies = await this.lockNodes.onEveryNode('locks.raise_fence', 'write', (client) =>
      this.lockNodes.raiseFenceScript([keys.fence], [fencingToken, FENCE_TTL_MS], client),
    );
    if (replies.filter((reply) => typeof reply === 'number').length < this.lockNodes.quorum) {
      throw this.lockNodes.unavailable(replies);
    }
  }

  /** Releases a lease nobody will use (fire and forget: it expires by itself otherwise). */
  private releaseQuietly(acquisition: Acquisition, token: string): void {
    const owner = acquisition.owner(token);
    void this.lockNodes.onEveryNode('locks.release', 'write', (client) =>
      this.lockNodes.ownedLeaseScript([acquisition.keys.lock], [owner], client),
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
          this.lockNodes.ownedLeaseScript([acquisition.keys.lock], [owner], client),
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
    const tally = (acquisition.attempts[Math.floor((call - 1) / this.lockNodes.nodes.length)] ??=
      newTally());
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
        this.lockNodes.acquireScript(
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
      if (tally.granted >= this.lockNodes.quorum) {
        tally.decide(true);
      } else if (tally.refused > this.lockNodes.nodes.length - this.lockNodes.quorum) {
        tally.decide(false);
      }
    }
  }
}

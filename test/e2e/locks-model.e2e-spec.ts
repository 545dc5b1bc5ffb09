/**
 * L-14: a model check of lock semantics. fast-check generates sequences of acquire, extend,
 * release, status and sleep by two owners on one lock name, runs them through the HTTP API
 * against real Redis, and compares every answer with a model that knows when each lease may
 * have expired.
 *
 * Time is the hard part: a lease granted by a request sent at s and answered at r lives until
 * some moment in [s + ttl, r + ttl] (Redis set its expiry in between), plus a drift tolerance.
 * A command whose own [sent, answered] window lies wholly before that interval must see the
 * lease alive, wholly after it must see it gone, and anywhere in between may see either: the
 * model then follows what the gateway answered. So a slow machine widens what is allowed and
 * never fails a correct gateway, while any answer outside the window is a divergence.
 */
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { TestApp, type Response } from '../support/app';
import { sleep } from '../support/ports';

const TTL_MS = 250;
/** Redis's expiry clock against ours (the drift allowance), and the timer granularity. */
const TOLERANCE_MS = 25;
const OWNERS = 2;

/** A lease the model knows of: who holds it and when it may end. */
interface Lease {
  owner: number;
  /** Before this (performance.now()), it is certainly alive. */
  aliveUntil: number;
  /** After this, it is certainly gone. */
  goneAfter: number;
}

interface Real {
  t: TestApp;
  name: string;
  /** Each owner's lock token from its latest grant (undefined before its first). */
  tokens: (string | undefined)[];
}

interface Model {
  lease?: Lease;
  lastFencing: number;
  /** What happened, for the failure message. */
  log: string[];
}

/** When a command sent at `sent` and answered at `answered` ran, relative to the lease. */
function phase(lease: Lease | undefined, sent: number, answered: number) {
  if (!lease) {
    return 'free';
  }
  if (answered < lease.aliveUntil) {
    return 'alive';
  }
  if (sent > lease.goneAfter) {
    return 'free';
  }
  return 'either';
}

function leaseFrom(owner: number, sent: number, answered: number): Lease {
  return {
    owner,
    aliveUntil: sent + TTL_MS - TOLERANCE_MS,
    goneAfter: answered + TTL_MS + TOLERANCE_MS,
  };
}

/** Runs one HTTP call, timed. */
async function timed(
  call: () => Promise<Response>,
): Promise<{ response: Response; sent: number; answered: number }> {
  const sent = performance.now();
  const response = await call();
  return { response, sent, answered: performance.now() };
}

function expectOneOf(model: Model, what: string, status: number, allowed: number[]): void {
  if (!allowed.includes(status)) {
    throw new Error(
      `${what} answered ${status}, the model allows ${allowed.join(' or ')}\n${model.log.join('\n')}`,
    );
  }
}

class Acquire implements fc.AsyncCommand<Model, Real> {
  constructor(readonly owner: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const { response, sent, answered } = await timed(() =>
      real.t.call('POST', `/redis/locks/${real.name}`, {
        token: real.t.tokens.write,
        body: { ttlMs: TTL_MS, waitMs: 0 },
      }),
    );
    const state = phase(model.lease, sent, answered);
    model.log.push(`${this.toString()} → ${response.statusCode} (${state})`);
    expectOneOf(
      model,
      this.toString(),
      response.statusCode,
      {
        alive: [409],
        free: [201],
        either: [201, 409],
      }[state],
    );
    if (response.statusCode === 201) {
      const grant = response.json<{ token: string; fencingToken: number }>();
      if (!(grant.fencingToken > model.lastFencing)) {
        throw new Error(`fencing token ${grant.fencingToken} after ${model.lastFencing}`);
      }
      model.lastFencing = grant.fencingToken;
      real.tokens[this.owner] = grant.token;
      model.lease = leaseFrom(this.owner, sent, answered);
    }
  }
  toString = () => `acquire(${this.owner})`;
}

class Extend implements fc.AsyncCommand<Model, Real> {
  constructor(readonly owner: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const token = real.tokens[this.owner];
    if (token === undefined) {
      return;
    }
    const { response, sent, answered } = await timed(() =>
      real.t.call('POST', `/redis/locks/${real.name}/extend`, {
        token: real.t.tokens.write,
        body: { token, ttlMs: TTL_MS },
      }),
    );
    const mine = model.lease?.owner === this.owner;
    const state = phase(model.lease, sent, answered);
    model.log.push(`${this.toString()} → ${response.statusCode} (${state}, mine ${mine})`);
    const allowed = !mine || state === 'free' ? [409] : state === 'alive' ? [200] : [200, 409];
    expectOneOf(model, this.toString(), response.statusCode, allowed);
    if (response.statusCode === 200) {
      model.lease = leaseFrom(this.owner, sent, answered);
    } else if (mine) {
      model.lease = undefined; // it had expired
    }
  }
  toString = () => `extend(${this.owner})`;
}

class Release implements fc.AsyncCommand<Model, Real> {
  constructor(readonly owner: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const token = real.tokens[this.owner];
    if (token === undefined) {
      return;
    }
    const { response, sent, answered } = await timed(() =>
      real.t.call('DELETE', `/redis/locks/${real.name}`, {
        token: real.t.tokens.write,
        headers: { 'lock-token': token },
      }),
    );
    const mine = model.lease?.owner === this.owner;
    const state = phase(model.lease, sent, answered);
    model.log.push(`${this.toString()} → ${response.statusCode} (${state}, mine ${mine})`);
    // Held by the owner: released. Held by the other: 409, untouched. Not held: 404.
    const held = {
      alive: mine ? [204] : [409],
      free: [404],
      either: mine ? [204, 404] : [409, 404],
    };
    expectOneOf(model, this.toString(), response.statusCode, held[state]);
    if (response.statusCode === 204 || response.statusCode === 404) {
      model.lease = undefined;
    }
  }
  toString = () => `release(${this.owner})`;
}

class Status implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const { response, sent, answered } = await timed(() =>
      real.t.call('GET', `/redis/locks/${real.name}`, { token: real.t.tokens.read }),
    );
    expect(response.statusCode).toBe(200);
    const { held } = response.json<{ held: boolean }>();
    const state = phase(model.lease, sent, answered);
    model.log.push(`status → held ${held} (${state})`);
    if ((state === 'alive' && !held) || (state === 'free' && held)) {
      throw new Error(
        `status says held ${held} while the model says ${state}\n${model.log.join('\n')}`,
      );
    }
    if (!held) {
      model.lease = undefined;
    }
  }
  toString = () => 'status';
}

class Sleep implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model): Promise<void> {
    model.log.push(this.toString());
    await sleep(this.ms);
  }
  toString = () => `sleep(${this.ms})`;
}

describe('lock semantics against a model (L-14)', () => {
  let t: TestApp;
  let run = 0;

  beforeAll(async () => {
    t = await TestApp.create({ config: { locks: { delayedRestartMs: 0 } } });
  });

  afterAll(async () => {
    await t.close();
  });

  it('acquire, extend, release, status and time by two owners: no divergence in 60 runs', async () => {
    const owner = fc.integer({ min: 0, max: OWNERS - 1 });
    const commands = [
      owner.map((o) => new Acquire(o)),
      owner.map((o) => new Extend(o)),
      owner.map((o) => new Release(o)),
      fc.constant(new Status()),
      // Well inside a lease, about its length, and past it.
      fc.constantFrom(30, TTL_MS, TTL_MS + 80).map((ms) => new Sleep(ms)),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 14 }), async (cmds) => {
        run += 1;
        const real: Real = { t, name: `model:${run}`, tokens: [] };
        const model: Model = { lastFencing: 0, log: [] };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
      }),
      { numRuns: 60 },
    );
  }, 120000);
});

import { EventEmitter } from 'node:events';
import type { Logger } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import { ClusterTracking } from '../../src/near-cache/cluster-tracking';
import { INVALIDATE_CHANNEL } from '../../src/near-cache/tracking';

/**
 * ClusterTracking's rules on a fake cluster client, for what a shared test cluster cannot show:
 * a replica becoming a master with no event, a slot map refreshed, a master's connection lost.
 * The fakes answer what TrackingLink asks (INFO's run_id, CLIENT ID, SUBSCRIBE, CLIENT TRACKING).
 */
class FakeNode extends EventEmitter {
  status = 'ready';
  condition?: { subscriber: boolean };
  readonly tracking: unknown[][] = [];

  constructor(
    readonly options: { host: string; port: number },
    private readonly runId: string,
  ) {
    super();
  }

  info(): Promise<string> {
    return Promise.resolve(`# Server\r\nrun_id:${this.runId}\r\n`);
  }

  client(): Promise<number> {
    return Promise.resolve(this.options.port);
  }

  subscribe(): Promise<number> {
    this.condition = { subscriber: true };
    return Promise.resolve(1);
  }

  call(...args: unknown[]): Promise<string> {
    this.tracking.push(args);
    return Promise.resolve('OK');
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  /** The server closed this connection. */
  close(): void {
    this.status = 'end';
    this.emit('close');
  }
}

class FakeCluster extends EventEmitter {
  status = 'ready';
  readonly options = { scaleReads: 'master' };
  slots: string[][] = [];
  masters: FakeNode[] = [];
  readonly refreshSlotsCache = jest.fn();

  nodes(): FakeNode[] {
    return this.masters;
  }

  /** Slots split evenly over the masters, in their order. */
  spread(): void {
    const share = Math.ceil(16384 / this.masters.length);
    this.slots = Array.from({ length: 16384 }, (_, slot) => {
      const { host, port } = this.masters[Math.floor(slot / share)].options;
      return [`${host}:${port}`];
    });
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
const logger = { log: () => undefined, warn: () => undefined } as unknown as Logger;

describe('ClusterTracking (N-11)', () => {
  let cluster: FakeCluster;
  let subscribers: FakeNode[];
  let released: FakeNode[];
  let flushes: string[];
  let invalidated: string[];
  let tracking: ClusterTracking;

  const master = (port: number) => new FakeNode({ host: '127.0.0.1', port }, `run-${port}`);

  beforeEach(async () => {
    cluster = new FakeCluster();
    cluster.masters = [master(1), master(2), master(3)];
    cluster.spread();
    subscribers = [];
    released = [];
    flushes = [];
    invalidated = [];
    tracking = new ClusterTracking(
      cluster as unknown as Cluster,
      {
        nodeSubscriber: (host, port) => {
          const node = new FakeNode({ host, port }, `run-${port}`);
          subscribers.push(node);
          return node as unknown as Redis;
        },
        release: (client) => void released.push(client as unknown as FakeNode),
      },
      'p:',
      1000,
      {
        invalidate: (keys) => invalidated.push(...keys),
        flush: (reason) => flushes.push(reason),
      },
      logger,
    );
    tracking.start();
    await settle();
  });

  afterEach(() => tracking.stop());

  it('arms every master: its reads connection tracks the prefix, redirected to a subscriber there', () => {
    expect(tracking.armed).toBe(true);
    expect(subscribers.map((node) => node.options.port)).toEqual([1, 2, 3]);
    for (const node of cluster.masters) {
      expect(node.tracking).toContainEqual([
        'CLIENT',
        'TRACKING',
        'on',
        'REDIRECT',
        node.options.port,
        'BCAST',
        'PREFIX',
        'p:',
      ]);
    }
  });

  it('passes on the invalidations of every master', () => {
    subscribers.forEach((node, n) =>
      node.emit('messageBuffer', Buffer.from(INVALIDATE_CHANNEL), [Buffer.from(`p:${n}`)]),
    );
    expect(invalidated).toEqual(['p:0', 'p:1', 'p:2']);
  });

  it('a replica turned master with no event (a MOVED to it): not armed at once, flushed, then armed with a link to it', async () => {
    flushes.length = 0;
    const promoted = master(4);
    cluster.masters = [cluster.masters[0], cluster.masters[1], promoted];
    expect(tracking.armed).toBe(false);
    expect(flushes).toHaveLength(1);
    expect(released.map((node) => node.options.port)).toEqual([3]);
    cluster.spread();
    cluster.emit('refresh');
    await settle();
    expect(tracking.armed).toBe(true);
    expect(promoted.tracking.length).toBeGreaterThan(0);
  });

  it('asks for the slot map every 5 s while armed: a master demoted while it stays up (a manual failover) flushes', async () => {
    const promoted = master(4);
    cluster.refreshSlotsCache.mockImplementation(() => {
      cluster.masters = [cluster.masters[0], cluster.masters[1], promoted];
      cluster.spread();
      cluster.emit('refresh');
    });
    flushes.length = 0;
    const clock = jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 6000);
    try {
      await new Promise((resolve) => setTimeout(resolve, 600));
    } finally {
      clock.mockRestore();
    }
    expect(cluster.refreshSlotsCache).toHaveBeenCalledTimes(1);
    expect(flushes).toHaveLength(1);
    await settle();
    expect(tracking.armed).toBe(true);
    expect(promoted.tracking.length).toBeGreaterThan(0);
  });

  it('flushes on another slot map, and stays armed; a refresh that changes nothing keeps the cache', () => {
    flushes.length = 0;
    cluster.emit('refresh');
    expect(flushes).toHaveLength(0);
    cluster.slots[0] = ['127.0.0.1:2'];
    cluster.emit('refresh');
    expect(flushes).toHaveLength(1);
    expect(tracking.armed).toBe(true);
  });

  it("a master's connection closing flushes; until the client has a new one nothing is armed and a slot refresh is asked for", async () => {
    flushes.length = 0;
    const [lost] = cluster.masters;
    lost.close();
    expect(flushes.length).toBeGreaterThanOrEqual(1);
    expect(tracking.armed).toBe(false);
    cluster.masters = cluster.masters.slice(1);
    cluster.emit('-node', lost);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(tracking.armed).toBe(false);
    expect(cluster.refreshSlotsCache).toHaveBeenCalled();
    const back = master(1);
    cluster.masters = [back, ...cluster.masters];
    cluster.emit('+node', back);
    await settle();
    expect(tracking.armed).toBe(true);
  });

  it('one subscriber closing disarms the whole cluster until it is back', async () => {
    subscribers[1].close();
    expect(tracking.armed).toBe(false);
    subscribers[1].status = 'ready';
    subscribers[1].condition = undefined;
    subscribers[1].emit('ready');
    await settle();
    expect(tracking.armed).toBe(true);
  });
});

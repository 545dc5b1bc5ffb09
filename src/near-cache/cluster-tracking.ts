import type { Logger } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import { TrackingLink, type Tracking, type TrackingListener } from './tracking';

/** How often an incomplete cluster tracking looks at the topology again. */
const CHECK_MS = 500;
/**
 * How often an armed one asks for the slot map: a master demoted while it stays up (a manual
 * failover) keeps its connections and reports none of the new master's writes it replicates, and
 * a read answered from memory meets no MOVED. The same bound as the subscribers' PING.
 */
const REFRESH_MS = 5000;
const SLOTS = 16384;

/** The connections a cluster tracking needs besides the reads: one subscriber per master. */
export interface NodeSubscribers {
  nodeSubscriber(host: string, port: number, name: string): Redis;
  release(client: Redis): void;
}

/** A master's link: the reads client's connection to it, and the invalidations it redirects to. */
interface MasterLink {
  node: Redis;
  invalidations: Redis;
  link: TrackingLink;
}

function keyOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/**
 * Client tracking over a Redis Cluster: one TrackingLink per master. A server in broadcast mode
 * reports changes of its own keys only, so every master needs its own tracking and its own
 * invalidation connection: the reads client's connection to that master is armed, redirected
 * to a subscriber on the same master. Reads go to masters only (scaleReads 'master'), so no
 * replica connection needs tracking.
 *
 * Armed only while every master that owns slots has an armed link, and the reads client's
 * masters are exactly the linked connections. With every master tracked, a key's changes are
 * reported wherever its slot is served, even while a slot migrates (MIGRATE deletes the key at
 * the source, which reports it). Any change of the topology (a node added or removed, a master's
 * connection replaced, another slot map, a failover that turned a replica into a master) or the
 * loss of one link flushes the whole cache: the simplest rule that stays exact, for events that
 * are rare. While armed it reads the slot map every REFRESH_MS, since a master demoted while up
 * changes nothing the client sees until then.
 */
export class ClusterTracking implements Tracking {
  private readonly links = new Map<string, MasterLink>();
  /** The slot map as last seen: ranges and their owners. */
  private slotMap = '';
  /** Whether every slot owner had a link at the last sync. */
  private complete = false;
  private check?: NodeJS.Timeout;
  private refreshedAt = Date.now();
  private stopped = false;
  private readonly handlers: [string, () => void][] = [];

  constructor(
    private readonly reads: Cluster,
    private readonly connections: NodeSubscribers,
    private readonly prefix: string,
    private readonly timeoutMs: number,
    private readonly listener: TrackingListener,
    private readonly logger: Logger,
  ) {}

  get armed(): boolean {
    if (!this.linksArmed()) {
      return false;
    }
    // A failover the client learnt of through a MOVED turns a replica into a master with no
    // event: found here, before a read is cached or answered.
    if (!this.sameMasters()) {
      this.sync('a master changed');
      return false;
    }
    return true;
  }

  start(): void {
    const events: [string, string][] = [
      ['+node', 'node added'],
      ['-node', 'node removed'],
      ['refresh', 'slot map refreshed'],
      ['ready', 'cluster connected'],
    ];
    for (const [event, reason] of events) {
      const handler = () => this.sync(reason);
      this.reads.on(event, handler);
      this.handlers.push([event, handler]);
    }
    this.check = setInterval(() => this.recheck(), CHECK_MS);
    this.check.unref();
    this.sync('start');
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.check);
    for (const [event, handler] of this.handlers) {
      this.reads.off(event, handler);
    }
    for (const [key, entry] of this.links) {
      this.drop(key, entry);
    }
  }

  private linksArmed(): boolean {
    if (!this.complete || this.links.size === 0) {
      return false;
    }
    for (const { link } of this.links.values()) {
      if (!link.armed) {
        return false;
      }
    }
    return true;
  }

  /** Whether the reads client's masters are exactly the linked connections. */
  private sameMasters(): boolean {
    const masters = this.reads.nodes('master');
    return (
      masters.length === this.links.size &&
      masters.every((node) => this.links.get(keyOf(node))?.node === node)
    );
  }

  /**
   * While not armed: a master whose connection was closed has left the client's pool and comes
   * back only with a command to its slots or a slot refresh, so ask for one; and look again.
   * While armed: a slot refresh every REFRESH_MS, to notice a demoted master.
   */
  private recheck(): void {
    if (this.stopped || this.reads.status !== 'ready') {
      return;
    }
    if (this.linksArmed()) {
      if (Date.now() - this.refreshedAt >= REFRESH_MS) {
        this.refresh();
      }
      return;
    }
    this.sync('check');
    if (!this.slotOwners().every((key) => this.links.has(key))) {
      this.refresh();
    }
  }

  /** A new slot map from the cluster; its 'refresh' event syncs the links. */
  private refresh(): void {
    this.refreshedAt = Date.now();
    this.reads.refreshSlotsCache();
  }

  /**
   * Links every master of the reads client and drops the links of connections it no longer
   * has; any change, or another slot map, flushes the cache.
   */
  private sync(reason: string): void {
    if (this.stopped) {
      return;
    }
    const wasArmed = this.linksArmed();
    const masters = new Map(this.reads.nodes('master').map((node) => [keyOf(node), node]));
    let changed = false;
    for (const [key, entry] of this.links) {
      if (masters.get(key) !== entry.node) {
        this.drop(key, entry);
        changed = true;
      }
    }
    // New links only while the cluster client is connected: it announces its nodes before,
    // and a link made while it shuts down would reconnect a node it is closing.
    const linking = this.reads.status === 'ready';
    for (const [key, node] of masters) {
      if (linking && !this.links.has(key)) {
        this.links.set(key, this.link(node));
        changed = true;
      }
    }
    const owners = this.slotOwners();
    this.complete = owners.length > 0 && owners.every((key) => this.links.has(key));
    const slotMap = this.describeSlots();
    if (slotMap !== this.slotMap) {
      this.slotMap = slotMap;
      changed = true;
    }
    if (changed) {
      this.listener.flush(`cluster topology changed: ${reason}`, wasArmed);
      if (wasArmed) {
        this.logger.warn({ reason }, 'Near-cache flushed: the cluster topology changed');
      }
    }
  }

  private link(node: Redis): MasterLink {
    const { host, port } = node.options;
    const invalidations = this.connections.nodeSubscriber(host!, port!, 'invalidations');
    const link = new TrackingLink(
      node,
      invalidations,
      this.prefix,
      this.timeoutMs,
      this.listener,
      this.logger,
    );
    link.start();
    // The cluster client connects a node when it first sends it a command: arm it before.
    if (node.status === 'wait') {
      node.connect().catch(() => undefined);
    }
    return { node, invalidations, link };
  }

  private drop(key: string, { link, invalidations }: MasterLink): void {
    link.stop();
    this.connections.release(invalidations);
    this.links.delete(key);
  }

  /** The `host:port` of every master that owns a slot, by the client's slot map. */
  private slotOwners(): string[] {
    const owners = new Set<string>();
    for (const nodes of this.reads.slots) {
      if (nodes?.[0] !== undefined) {
        owners.add(nodes[0]);
      }
    }
    return [...owners];
  }

  /** The slot map as ranges of slots and their owner, to notice any change of it. */
  private describeSlots(): string {
    const ranges: string[] = [];
    let owner: string | undefined;
    for (let slot = 0; slot < SLOTS; slot += 1) {
      const next = this.reads.slots[slot]?.[0];
      if (slot === 0 || next !== owner) {
        owner = next;
        ranges.push(`${slot}:${owner ?? '-'}`);
      }
    }
    return ranges.join(',');
  }
}

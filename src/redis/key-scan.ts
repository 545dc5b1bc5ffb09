import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { AppError } from '../errors/app-error';
import type { RedisClient } from './types';

/** Redis's own cursor (standalone and sentinel mode), unchanged. */
const SERVER_CURSOR = /^\d{1,20}$/;
/** Cluster mode: `<master index>-<that master's cursor>-<fingerprint of its address>`. */
const CLUSTER_CURSOR = /^(\d{1,4})-(\d{1,20})-([0-9a-f]{8})$/;

const notACursor = () =>
  AppError.validation([
    { field: 'cursor', message: 'cursor must be a cursor returned by a previous page' },
  ]);

/** `host:port` of a node connection (IPv6 hosts in brackets). */
export function nodeAddress(node: Redis): string {
  const { host = '', port } = node.options;
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The masters of a cluster in the stable order (by address) that cluster cursors count in. */
export function mastersInOrder(cluster: Cluster): { address: string; node: Redis }[] {
  return cluster
    .nodes('master')
    .map((node) => ({ address: nodeAddress(node), node }))
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function scanOnce(
  node: Redis,
  cursor: string,
  match: string,
  count: number,
  type: string | undefined,
): Promise<[string, string[]]> {
  return type === undefined
    ? node.scan(cursor, 'MATCH', match, 'COUNT', count)
    : node.scan(cursor, 'MATCH', match, 'COUNT', count, 'TYPE', type);
}

function fingerprint(address: string): string {
  return createHash('sha256').update(address).digest('hex').slice(0, 8);
}

/**
 * One keyspace-wide SCAN, resumed from the opaque cursor a previous page handed out; "0" starts
 * and ends it. Standalone and sentinel: Redis's own cursor, as it is. Cluster: SCAN runs on
 * every master in turn, in address order, and the cursor names the master (its index and a
 * fingerprint of its address) and that master's own cursor. A cursor whose master is gone or is
 * another node now (the cluster's masters changed) is refused with a 400: SCAN's guarantees
 * would not hold across that change, so the listing starts again.
 */
export class KeyScan {
  private done = false;

  private constructor(
    private readonly cluster: boolean,
    private master: number,
    private cursor: string,
    private expected: string | null,
  ) {}

  /** Parses a cursor of this topology; a 400 when it is not one. */
  static from(text: string, cluster: boolean): KeyScan {
    if (text === '0') {
      return new KeyScan(cluster, 0, '0', null);
    }
    if (!cluster) {
      if (!SERVER_CURSOR.test(text)) {
        throw notACursor();
      }
      return new KeyScan(false, 0, text, null);
    }
    const match = CLUSTER_CURSOR.exec(text);
    if (!match) {
      throw notACursor();
    }
    return new KeyScan(true, Number(match[1]), match[2], match[3]);
  }

  /** Whether the whole keyspace has been scanned. */
  get finished(): boolean {
    return this.done;
  }

  /** The cursor of the next page: "0" when finished. */
  get next(): string {
    if (this.done) {
      return '0';
    }
    return this.cluster ? `${this.master}-${this.cursor}-${this.expected}` : this.cursor;
  }

  /** One SCAN call (on one master in cluster mode), of keys of `type` if given; its keys. */
  async step(client: RedisClient, match: string, count: number, type?: string): Promise<string[]> {
    if (!(client instanceof Cluster)) {
      const [cursor, keys] = await scanOnce(client, this.cursor, match, count, type);
      this.cursor = cursor;
      this.done = cursor === '0';
      return keys;
    }
    const masters = mastersInOrder(client);
    const current = masters[this.master];
    if (!current || (this.expected !== null && fingerprint(current.address) !== this.expected)) {
      throw AppError.validation([
        {
          field: 'cursor',
          message:
            "the cluster's masters changed since this cursor was issued; list again from cursor 0",
        },
      ]);
    }
    const [cursor, keys] = await scanOnce(current.node, this.cursor, match, count, type);
    this.cursor = cursor;
    this.expected = fingerprint(current.address);
    if (cursor === '0') {
      const following = masters[this.master + 1];
      if (following) {
        this.master += 1;
        this.expected = fingerprint(following.address);
      } else {
        this.done = true;
      }
    }
    return keys;
  }
}

import { Injectable } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';
import { escapeGlob, globMatch } from '../auth/glob';
import type { Principal } from '../auth/principal';

/** Names starting with this belong to the gateway itself (locks, counters, tickets). */
export const RESERVED_NAMESPACE = '__gw:';

// C0 controls, DEL and C1 controls (API.md forbids C0 and DEL; C1 controls are never a
// legitimate part of a name and break logs and terminals the same way).
// eslint-disable-next-line no-control-regex -- control characters are what this rejects
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

const SLOTS = 16384;
const slotTables = new Map<string, string[]>();

/**
 * For each hash slot, a short base-36 text T with `calculateSlot(preamble + T)` in that slot
 * (a preamble holds no `}`). Built once per preamble, on first use (a few milliseconds).
 */
function slotTable(preamble: string): string[] {
  let table = slotTables.get(preamble);
  if (!table) {
    table = new Array<string>(SLOTS);
    let found = 0;
    for (let index = 0; found < SLOTS; index += 1) {
      const text = index.toString(36);
      const slot = calculateSlot(preamble + text);
      if (table[slot] === undefined) {
        table[slot] = text;
        found += 1;
      }
    }
    slotTables.set(preamble, table);
  }
  return table;
}

/**
 * The positions of `keys` grouped by Redis Cluster hash slot, groups in the order of their first
 * key: a multi-key command may only span one slot there (CROSSSLOT otherwise).
 */
export function slotGroups(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, index) => {
    const slot = calculateSlot(key);
    const group = groups.get(slot);
    if (group) {
      group.push(index);
    } else {
      groups.set(slot, [index]);
    }
  });
  return [...groups.values()];
}

/**
 * Where the first `{` of a key prefix leaves the hash tag of every key that starts with it
 * (Redis hashes the text between a key's first `{` and the next `}`, when not empty):
 * - `none`: no `{` in the prefix; each key's own tag, if any, decides;
 * - `closed`: the prefix holds a whole tag `{...}`: every key is in that one slot;
 * - `open`: a `{` the prefix leaves open: the first `}` after the prefix closes the tag;
 * - `empty`: the prefix's first braces are `{}`: every key is hashed whole, no tag can pair keys.
 */
export function prefixTag(prefix: string): 'none' | 'closed' | 'open' | 'empty' {
  const open = prefix.indexOf('{');
  if (open === -1) {
    return 'none';
  }
  const close = prefix.indexOf('}', open + 1);
  return close === -1 ? 'open' : close === open + 1 ? 'empty' : 'closed';
}

/**
 * The one translation between the names callers use and the keys Redis stores: it validates a
 * name, authorises it against the caller's key patterns and the reserved namespace, and adds
 * or removes the configured key prefix.
 */
@Injectable()
export class Keyspace {
  readonly prefix: string;
  private readonly maxNameBytes: number;

  constructor(config: AppConfig) {
    this.prefix = config.redis.keyPrefix;
    this.maxNameBytes = config.limits.maxKeyBytes;
  }

  /** The reason a name is invalid, or null when it is a valid name. */
  nameProblem(name: unknown, { allowEmpty = false } = {}): string | null {
    if (typeof name !== 'string') {
      return 'must be a string';
    }
    if (name.length === 0) {
      return allowEmpty ? null : 'must not be empty';
    }
    if (!name.isWellFormed()) {
      return 'must be valid UTF-8 (no lone surrogates)';
    }
    if (CONTROL_CHARACTERS.test(name)) {
      return 'must not contain control characters';
    }
    if (Buffer.byteLength(name, 'utf8') > this.maxNameBytes) {
      return `must be at most ${this.maxNameBytes} bytes`;
    }
    return null;
  }

  /** Validates and authorises one name; returns the Redis key. */
  key(principal: Principal, name: string, field = 'key'): string {
    return this.authorise(principal, [[field, name]])[0];
  }

  /**
   * Validates every name first (400 lists each bad one), then authorises them all (403), and
   * returns the Redis keys in the same order.
   */
  keys(principal: Principal, names: readonly string[], field = 'keys'): string[] {
    return this.authorise(
      principal,
      names.map((name, index) => [`${field}[${index}]`, name]),
    );
  }

  private authorise(principal: Principal, named: [field: string, name: string][]): string[] {
    const errors: FieldError[] = [];
    for (const [field, name] of named) {
      const message = this.nameProblem(name);
      if (message) {
        errors.push({ field, message });
      }
    }
    if (errors.length > 0) {
      throw AppError.validation(errors);
    }
    if (!named.every(([, name]) => this.mayAccess(principal, name))) {
      throw new AppError('KEY_FORBIDDEN', 'The token does not grant access to this name.');
    }
    return named.map(([, name]) => this.prefix + name);
  }

  /** Whether the caller may touch this (valid) name. */
  mayAccess(principal: Principal, name: string): boolean {
    if (name.startsWith(RESERVED_NAMESPACE)) {
      return false;
    }
    return principal.keyPatterns === null || principal.keyPatterns.some((p) => globMatch(p, name));
  }

  /** The caller's name for a Redis key, or null when the key is not one the caller may see. */
  visibleName(principal: Principal, redisKey: string): string | null {
    if (!redisKey.startsWith(this.prefix)) {
      return null;
    }
    const name = redisKey.slice(this.prefix.length);
    return this.mayAccess(principal, name) ? name : null;
  }

  /** A key of the gateway's own namespace: `<prefix>__gw:<kind>:<id>`. */
  reservedKey(kind: string, id: string): string {
    return `${this.prefix}${RESERVED_NAMESPACE}${kind}:${id}`;
  }

  /**
   * A key of the gateway's own namespace, `<prefix>__gw:<kind>:{<tag>}:<id>`, in the hash slot
   * of `key`, so one script can write both in cluster mode (CROSSSLOT otherwise). After a prefix
   * that leaves a `{` open it is `<prefix>__gw:<kind>:<tag>}:<id>`, the tag chosen with the
   * prefix's text in front; a prefix of kind `empty` pairs no keys (refused in cluster mode).
   */
  reservedKeyInSlotOf(key: string, kind: string, id: string): string {
    const base = `${this.prefix}${RESERVED_NAMESPACE}${kind}:`;
    const slot = calculateSlot(key);
    if (prefixTag(this.prefix) === 'open') {
      const preamble =
        this.prefix.slice(this.prefix.indexOf('{') + 1) + base.slice(this.prefix.length);
      return `${base}${slotTable(preamble)[slot]}}:${id}`;
    }
    return `${base}{${slotTable('')[slot]}}:${id}`;
  }

  /** A SCAN MATCH pattern for every key whose name starts with `namePrefix`, literally. */
  matchPattern(namePrefix: string): string {
    return `${escapeGlob(this.prefix + namePrefix)}*`;
  }
}

import calculateSlot from 'cluster-key-slot';
import type { AppConfig } from '../../src/config/app-config';
import { ConfigError, loadConfig } from '../../src/config/config.loader';
import { prefixTag } from '../../src/common/hash-tags';
import { slotGroups } from '../../src/redis/cluster';
import { Keyspace } from '../../src/redis/keys';

const keyspace = (keyPrefix: string) =>
  new Keyspace({ redis: { keyPrefix }, limits: { maxKeyBytes: 1024 } } as AppConfig);

describe('slotGroups', () => {
  it('groups positions by hash slot, in order of each slot’s first key', () => {
    const keys = ['a', '{a}1', 'b', '{a}2', 'a', 'c'];
    const groups = slotGroups(keys);
    expect(groups.flat().sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const group of groups) {
      expect(new Set(group.map((index) => calculateSlot(keys[index]))).size).toBe(1);
    }
    expect(groups[0]).toEqual([0, 1, 3, 4]);
    expect(new Set(groups.map((group) => calculateSlot(keys[group[0]]))).size).toBe(groups.length);
  });
});

describe('reservedKeyInSlotOf', () => {
  it.each([
    ['', 'none'],
    ['app:', 'none'],
    ['app}:', 'none'],
    ['app{x}:', 'closed'],
    ['c{t:1234:', 'open'],
    ['a{b{c:', 'open'],
  ] as const)('prefix %j (%s): the record shares the slot of every name', (prefix, kind) => {
    expect(prefixTag(prefix)).toBe(kind);
    const space = keyspace(prefix);
    for (const name of ['orders', 'x', '{tag}y', '}odd', 'a{b}c', 'été']) {
      const key = `${prefix}${name}`;
      const record = space.reservedKeyInSlotOf(key, 'idem', 'f00d');
      expect(record.startsWith(`${prefix}__gw:idem:`)).toBe(true);
      expect(record.endsWith(':f00d')).toBe(true);
      expect(calculateSlot(record)).toBe(calculateSlot(key));
    }
  });

  it('keeps the record format of prefixes without braces: <prefix>__gw:idem:{tag}:<id>', () => {
    expect(keyspace('app:').reservedKeyInSlotOf('app:orders', 'idem', 'f00d')).toMatch(
      /^app:__gw:idem:\{[0-9a-z]+\}:f00d$/,
    );
  });

  it('names an empty tag `{}` in the prefix, which pairs no keys: refused in cluster mode', () => {
    expect(prefixTag('x{}:')).toBe('empty');
    const load = (mode: string) =>
      loadConfig({
        env: {
          OIDC_ISSUER: 'https://issuer.example.com',
          OIDC_AUDIENCE: 'redis-gateway',
          REDIS_MODE: mode,
          REDIS_CLUSTER_NODES: 'c1:7000',
          REDIS_KEY_PREFIX: 'x{}:',
        },
      });
    expect(() => load('standalone')).not.toThrow();
    expect(() => load('cluster')).toThrow(ConfigError);
    try {
      load('cluster');
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        'redis.keyPrefix: must not start its hash tag with an empty {} in cluster mode',
      ]);
    }
  });
});

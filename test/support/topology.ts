import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { eventually, freePort } from './ports';
import { RedisServer } from './redis';

/** Runs redis-cli with these arguments; rejects with its output when it fails. */
export function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`redis-cli ${args[0]}: ${output}`)),
    );
  });
}

/**
 * A Redis Cluster of `masters` primaries (no replicas) from the redis-server binary, on free
 * loopback ports, created with `redis-cli --cluster create`: the `cluster` Jest project runs on
 * one, and the cluster cases start their own.
 */
export class RedisClusterSet {
  private constructor(readonly servers: RedisServer[]) {}

  /** `args`: more redis-server flags for every node. */
  static async start(masters = 3, args: string[] = []): Promise<RedisClusterSet> {
    const servers = await Promise.all(
      Array.from({ length: masters }, () =>
        RedisServer.start({
          args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000', ...args],
        }),
      ),
    );
    const set = new RedisClusterSet(servers);
    try {
      await redisCli(['--cluster', 'create', ...set.nodes, '--cluster-yes']);
      const clients = servers.map((server) => server.client());
      await eventually(
        async () => {
          for (const [index, server] of servers.entries()) {
            const info = await clients[index].cluster('INFO');
            if (!info.includes('cluster_state:ok')) {
              throw new Error(`cluster not ready on port ${server.port}`);
            }
          }
        },
        15000,
        100,
      );
    } catch (error) {
      await set.stop();
      throw error;
    }
    return set;
  }

  /** `host:port` of every master, as REDIS_CLUSTER_NODES takes them. */
  get nodes(): string[] {
    return this.servers.map((server) => `127.0.0.1:${server.port}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
  }
}

/**
 * A primary, a replica and three Sentinels watching them under the name `mymaster`, all from
 * the redis-server binary (`--sentinel`) on free loopback ports.
 */
export class SentinelSet {
  static readonly NAME = 'mymaster';

  private constructor(
    readonly primary: RedisServer,
    readonly replica: RedisServer,
    readonly sentinels: RedisServer[],
  ) {}

  static async start(): Promise<SentinelSet> {
    // A full sync starts at once (Redis waits 5 s by default for more replicas to come along).
    const noSyncDelay = ['--repl-diskless-sync-delay', '0'];
    const primary = await RedisServer.start({ args: noSyncDelay });
    const replica = await RedisServer.start({
      args: [...noSyncDelay, '--replicaof', '127.0.0.1', String(primary.port)],
    });
    const sentinels: RedisServer[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        sentinels.push(
          await RedisServer.start({
            port,
            sentinel: (dir) => {
              const file = join(dir, 'sentinel.conf');
              writeFileSync(
                file,
                [
                  `port ${port}`,
                  'bind 127.0.0.1',
                  `dir ${dir}`,
                  `sentinel monitor ${SentinelSet.NAME} 127.0.0.1 ${primary.port} 2`,
                  `sentinel down-after-milliseconds ${SentinelSet.NAME} 1000`,
                  `sentinel failover-timeout ${SentinelSet.NAME} 5000`,
                  `sentinel parallel-syncs ${SentinelSet.NAME} 1`,
                  '',
                ].join('\n'),
              );
              return file;
            },
          }),
        );
      }
      const replicaClient = replica.client();
      const sentinelClients = sentinels.map((sentinel) => sentinel.client());
      await eventually(
        async () => {
          // In sync, not merely connected: a replica promoted before its first full sync has
          // finished comes up empty, and every write before the failover is lost.
          const info = await replicaClient.info('replication');
          if (!info.includes('master_link_status:up')) {
            throw new Error('the replica has not finished its first sync');
          }
          for (const [index, sentinel] of sentinelClients.entries()) {
            const replicas = (await sentinel.call(
              'SENTINEL',
              'REPLICAS',
              SentinelSet.NAME,
            )) as unknown[];
            if (replicas.length !== 1) {
              throw new Error(`Sentinel ${sentinels[index].port} does not know the replica yet`);
            }
          }
        },
        15000,
        100,
      );
    } catch (error) {
      await Promise.all([primary, replica, ...sentinels].map((server) => server.stop()));
      throw error;
    }
    return new SentinelSet(primary, replica, sentinels);
  }

  /** `host:port` of every Sentinel, as REDIS_SENTINELS takes them. */
  get sentinelNodes(): string[] {
    return this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`);
  }

  /** The port of the server the Sentinels name as the primary now. */
  async primaryPort(): Promise<number> {
    const client = new Redis(this.sentinels[0].port, '127.0.0.1', { lazyConnect: true });
    try {
      const [, port] = (await client.call(
        'SENTINEL',
        'GET-MASTER-ADDR-BY-NAME',
        SentinelSet.NAME,
      )) as [string, string];
      return Number(port);
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      [this.primary, this.replica, ...this.sentinels].map((server) => server.stop()),
    );
  }
}

import { Redis } from 'ioredis';
import { serverCommands, type CommandInfo, type RawReply } from '../../src/upstash/command-info';
import { refusedCommands, selectCommands } from '../../src/upstash/command-selection';
import TABLE from '../../src/upstash/command-table.json';
import { keyPositions } from '../../src/upstash/key-positions';

const COMMANDS = (TABLE as unknown as { commands: Record<string, CommandInfo> }).commands;

/** The table entry of argv (a subcommand's own for a container command). */
function infoOf(argv: string[]): CommandInfo {
  const info = COMMANDS[argv[0]];
  return info.subcommands ? info.subcommands[`${argv[0]}|${argv[1]}`] : info;
}

/**
 * The generated command table of the Upstash-compatible endpoint (src/upstash/command-table.json)
 * against the running Redis: the same commands, arities, flags and key specs as its COMMAND and
 * COMMAND DOCS say under the policy (so a server upgrade or a policy change shows here until
 * `npm run upstash:commands` is run and reviewed), and the keys the gateway finds in a command
 * are the keys Redis itself finds (COMMAND GETKEYS).
 */
describe('Upstash command table', () => {
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
      maxRetriesPerRequest: 1,
    });
  });

  afterAll(async () => {
    await redis.quit();
  });

  it('matches the COMMAND INFO and COMMAND DOCS of the running server', async () => {
    const all = serverCommands(
      (await redis.call('COMMAND')) as RawReply[],
      (await redis.call('COMMAND', 'DOCS')) as RawReply[],
    );
    expect(selectCommands(all)).toEqual(COMMANDS);
    // Every other command of the server, with its family, for the logs and the metrics.
    expect(refusedCommands(all)).toEqual(TABLE.refused);
    expect(TABLE.refused).toMatchObject({
      flushall: 'server',
      keys: 'generic',
      subscribe: 'pubsub',
    });
  });

  it('offers none of the commands that reach outside a tenant', () => {
    for (const name of ['keys', 'flushall', 'flushdb', 'config', 'client', 'monitor', 'debug']) {
      expect(COMMANDS[name]).toBeUndefined();
    }
    for (const name of ['select', 'migrate', 'wait', 'randomkey', 'sort', 'move', 'restore']) {
      expect(COMMANDS[name]).toBeUndefined();
    }
    expect(Object.keys(COMMANDS.script.subcommands ?? {})).toEqual([
      'script|exists',
      'script|load',
    ]);
  });

  it.each([
    [['get', 'a']],
    [['mset', 'a', '1', 'b', '2', 'c', '3']],
    [['del', 'a', 'b', 'c']],
    [['rename', 'a', 'b']],
    [['copy', 'a', 'b', 'replace']],
    [['blmove', 'a', 'b', 'left', 'right', '1']],
    [['blpop', 'a', 'b', '1']],
    [['lmpop', '2', 'a', 'b', 'left', 'count', '1']],
    [['zunionstore', 'd', '2', 'a', 'b', 'weights', '1', '2']],
    [['zinter', '2', 'a', 'b']],
    [['sintercard', '2', 'a', 'b', 'limit', '1']],
    [['xread', 'count', '1', 'block', '10', 'streams', 'a', 'b', '0', '0']],
    [['xreadgroup', 'group', 'g', 'c', 'streams', 'a', 'b', '>', '>']],
    [['xinfo', 'stream', 'a']],
    [['xgroup', 'create', 'a', 'g', '$', 'mkstream']],
    [['eval', 'return 1', '2', 'a', 'b', 'arg']],
    [['evalsha_ro', 'f'.repeat(40), '1', 'a', 'arg']],
    [['set', 'a', 'v', 'ex', '10', 'get']],
  ])('finds the keys Redis finds in %j', async (argv) => {
    const expected = (await redis.call('COMMAND', 'GETKEYS', ...argv)) as string[];
    const positions = keyPositions(infoOf(argv), argv);
    expect(positions?.map((at) => argv[at])).toEqual(expected);
  });

  it('refuses to guess keys where the arguments do not fit the key specs', () => {
    expect(keyPositions(COMMANDS.eval, ['eval', 'return 1', 'two', 'a'])).toBeNull();
    expect(keyPositions(COMMANDS.eval, ['eval', 'return 1', '3', 'a'])).toBeNull();
    expect(keyPositions(COMMANDS.eval, ['eval', 'return 1', '0'])).toEqual([]);
  });
});

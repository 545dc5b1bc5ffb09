// `npm run upstash:commands`: regenerates src/upstash/command-table.json, the commands the
// Upstash-compatible endpoint offers (src/upstash/command-policy.ts) with their arity, flags and
// key specifications, and the names and families of the server's other commands (refused, named
// in logs and metrics), from the COMMAND and COMMAND DOCS of the Redis at REDIS_URL
// (redis://127.0.0.1:6379 by default): run it against the Redis version the gateway supports,
// and review the diff. test/e2e/upstash-commands.e2e-spec.ts checks the table against a server.
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS script run by node */
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Redis } = require('ioredis');
const { serverCommands } = require('../dist/upstash/command-info');
const { refusedCommands, selectCommands } = require('../dist/upstash/command-selection');

const TABLE = join(__dirname, '../src/upstash/command-table.json');

async function main() {
  const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  await redis.connect();
  try {
    const version = /redis_version:(\S+)/.exec(await redis.info('server'));
    const all = serverCommands(await redis.call('COMMAND'), await redis.call('COMMAND', 'DOCS'));
    const table = {
      redisVersion: version ? version[1] : 'unknown',
      commands: selectCommands(all),
      refused: refusedCommands(all),
    };
    writeFileSync(TABLE, `${JSON.stringify(table, null, 2)}\n`);
    const count = Object.keys(table.commands).length;
    process.stdout.write(`wrote ${TABLE}: ${count} commands of Redis ${table.redisVersion}\n`);
    process.stdout.write('format it with `npx prettier --write` and review the diff\n');
  } finally {
    redis.disconnect();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exitCode = 1;
});

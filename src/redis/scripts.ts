import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { RedisConnections } from './connections';
import type { RedisClient, ScriptArg } from './types';

/**
 * A Lua script loaded with defineCommand: runs by SHA (and falls back to EVAL once) on the
 * connection it is given, with these keys and arguments.
 */
export type ScriptRunner = (
  keys: string[],
  args: ScriptArg[],
  client: RedisClient,
) => Promise<unknown>;

/**
 * The checked increment of a counter key or of a hash field, shared by the key-value and hash
 * modules: ARGV increment, "int" or "float", and the field for a hash.
 */
export const INCR_CHECKED_SCRIPT = join(__dirname, 'scripts', 'incr-checked-1.lua');

/** The gateway's Lua scripts, each a file next to the code that uses it. */
@Injectable()
export class RedisScripts {
  constructor(private readonly connections: RedisConnections) {}

  /**
   * Loads a script file named `<name>-<numberOfKeys>.lua` (`<name>-n.lua`: any number of keys)
   * onto both command connections (and onto `clients`, e.g. lock nodes); with `buffers`, bulk
   * replies come back as Buffers (binary-safe values).
   */
  load(file: string, { buffers = false, clients = [] as RedisClient[] } = {}): ScriptRunner {
    const match = /^(.+)-(\d+|n)\.lua$/.exec(basename(file));
    if (!match) {
      throw new Error(`Lua script file name must be <name>-<numberOfKeys>.lua: ${file}`);
    }
    const name = match[1].replace(/-(\w)/g, (_, char: string) => char.toUpperCase());
    const numberOfKeys = match[2] === 'n' ? undefined : Number(match[2]);
    const lua = readFileSync(file, 'utf8');
    for (const client of [this.connections.command, this.connections.reads, ...clients]) {
      client.defineCommand(name, { numberOfKeys, lua });
    }
    const method = buffers ? `${name}Buffer` : name;
    return (keys, args, client) => {
      if (numberOfKeys !== undefined && keys.length !== numberOfKeys) {
        throw new Error(`${name} takes ${numberOfKeys} keys`);
      }
      const script = client as unknown as Record<
        string,
        (...args: ScriptArg[]) => Promise<unknown>
      >;
      return numberOfKeys === undefined
        ? script[method](keys.length, ...keys, ...args)
        : script[method](...keys, ...args);
    };
  }
}

/**
 * A command by name with binary-safe (Buffer) replies. ioredis 6.0.0's own `callBuffer` sends
 * its second argument as the command name under auto-pipelining, so this calls the command's
 * `<name>Buffer` method instead.
 */
export function callBuffer(
  client: RedisClient,
  command: string,
  ...args: ScriptArg[]
): Promise<unknown> {
  const methods = client as unknown as Record<string, (...args: ScriptArg[]) => Promise<unknown>>;
  return methods[`${command.toLowerCase()}Buffer`].apply(client, args);
}

/** The replies of a MULTI/EXEC in order, or the first error among them (thrown). */
export function transactionReplies(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) {
    throw new Error('transaction aborted');
  }
  return results.map(([error, value]) => {
    if (error) {
      throw error;
    }
    return value;
  });
}

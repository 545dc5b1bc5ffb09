import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { KeyAccess } from '../auth/key-patterns';
import type { Principal } from '../auth/principal';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import type { CommandInfo } from './command-info';
import TABLE from './command-table.json';
import { keyPositions } from './key-positions';

const { commands: COMMANDS, refused: REFUSED } = TABLE as unknown as {
  commands: Record<string, CommandInfo>;
  /** The server's other commands and their families: refused, but nameable in logs. */
  refused: Record<string, string>;
};

/** A command as the logs and the metrics name it: never its arguments. */
export interface CommandName {
  /** Upper case, as Redis writes it; `(unknown)` for a name the server does not have. */
  name: string;
  /** Its COMMAND DOCS group, `unknown` for an unknown name: a bounded metric label. */
  family: string;
}

const UNKNOWN: CommandName = { name: '(unknown)', family: 'unknown' };

/** How a blocking command names its timeout. */
const BLOCK_TIMEOUT: Record<string, 'last' | 'first' | 'option'> = {
  blpop: 'last',
  brpop: 'last',
  bzpopmin: 'last',
  bzpopmax: 'last',
  blmove: 'last',
  brpoplpush: 'last',
  blmpop: 'first',
  bzmpop: 'first',
  xread: 'option',
  xreadgroup: 'option',
};

/** Replies that carry key names, which lose the prefix: the first element, or each entry's. */
const REPLY_KEYS: Record<string, 'first' | 'each-first'> = {
  blpop: 'first',
  brpop: 'first',
  bzpopmin: 'first',
  bzpopmax: 'first',
  lmpop: 'first',
  blmpop: 'first',
  zmpop: 'first',
  bzmpop: 'first',
  xread: 'each-first',
  xreadgroup: 'each-first',
};

/** One caller's command, checked, authorised and ready to send. */
export interface PreparedCommand {
  /** Lower case, `container|sub` for a subcommand: for metrics and logs, never arguments. */
  name: string;
  /** The COMMAND DOCS group (string, hash, ...). */
  family: string;
  /** What goes to Redis: the name and the arguments, keys and channels prefixed. */
  argv: string[];
  /** The Redis keys it names (for slot routing). */
  keys: string[];
  readonly: boolean;
  /** A blocking call: how long it may block, in milliseconds. */
  blockMs?: number;
  /** SCAN, confined to the prefix and the token's patterns by the service. */
  scan?: { cursor: string; match: string; count?: number; type?: string };
  replyKeys?: 'first' | 'each-first';
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/**
 * Script shebang flags of Upstash's own server that Redis refuses ("Unexpected flag in script
 * shebang"): @upstash/ratelimit marks every script `allow-key-locking`, a hint about how
 * Upstash may lock keys, with no meaning for what the script does.
 */
const UPSTASH_ONLY_FLAGS = ['allow-key-locking'];

/**
 * Allowlisted scripts as this Redis runs them: the Upstash-only shebang flags taken out, and
 * the caller's SHA-1 (of the text it sent) mapped to the SHA-1 Redis knows the script by, once
 * the script has been seen. A script without such flags runs as it is.
 */
class RunnableScripts {
  private readonly redisSha = new Map<string, string>();

  runnable(sha: string, script: string): string {
    const runnable = script.replace(/^#!lua flags=([^\n]*)/, (_, flags: string) => {
      const kept = flags.split(',').filter((flag) => !UPSTASH_ONLY_FLAGS.includes(flag.trim()));
      return kept.length > 0 ? `#!lua flags=${kept.join(',')}` : '#!lua';
    });
    if (runnable !== script) {
      this.redisSha.set(sha, sha1(runnable));
    }
    return runnable;
  }

  /** The SHA-1 to ask Redis for (unknown yet: the caller's, and NOSCRIPT makes it send EVAL). */
  runnableSha(sha: string): string {
    return this.redisSha.get(sha) ?? sha;
  }
}

const refused = (detail: string) => new AppError('BAD_REQUEST', detail);
const syntax = () => refused('syntax error');

/** Redis's own words for a wrong argument count (clients match on them). */
const arityError = (name: string) =>
  refused(`wrong number of arguments for '${name.replace('|', ' ')}' command`);

function arityOk(arity: number, argc: number): boolean {
  return arity >= 0 ? argc === arity : argc >= -arity;
}

/** Seconds of a blocking timeout (Redis's float syntax), in milliseconds; null if invalid. */
function secondsToMs(text: string): number | null {
  if (!/^\d+(\.\d+)?$/.test(text)) {
    return null;
  }
  return Math.ceil(Number(text) * 1000);
}

/**
 * The commands of the Upstash-compatible endpoint: the generated table (command-policy.ts says
 * what is in it and why) and the checks each command gets before it is sent: arity, key specs,
 * the key prefix and the token's key patterns, scripts on upstash.allowedScripts, blocking
 * times within limits.maxBlockMs.
 */
@Injectable()
export class UpstashCommands {
  private readonly allowedScripts: Set<string>;
  private readonly maxBlockMs: number;
  /** Bounded by upstash.allowedScripts: only allowlisted scripts get here. */
  private readonly scripts = new RunnableScripts();

  constructor(
    private readonly access: KeyAccess,
    config: AppConfig,
  ) {
    this.allowedScripts = new Set(config.upstash.allowedScripts.map((sha) => sha.toLowerCase()));
    this.maxBlockMs = config.limits.maxBlockMs;
  }

  /**
   * How a command is named in the logs and metrics, whether offered or not: only names the
   * server has (a caller's own text could be anything, a key or a secret), never arguments.
   */
  nameOf(command: unknown): CommandName {
    const first: unknown = Array.isArray(command) ? command[0] : undefined;
    if (typeof first !== 'string') {
      return UNKNOWN;
    }
    const name = first.toLowerCase();
    const family = Object.hasOwn(COMMANDS, name)
      ? COMMANDS[name].group
      : Object.hasOwn(REFUSED, name)
        ? REFUSED[name]
        : undefined;
    return family === undefined ? UNKNOWN : { name: name.toUpperCase(), family };
  }

  /** The table entry of a command name and its arguments (a subcommand's own), or a refusal. */
  private infoOf(argv: readonly string[]): CommandInfo {
    const name = argv[0].toLowerCase();
    const info = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!info) {
      throw refused(`command '${name}' is not available through this gateway`);
    }
    if (!info.subcommands) {
      return info;
    }
    const sub = argv.length > 1 ? `${name}|${argv[1].toLowerCase()}` : '';
    const entry = Object.hasOwn(info.subcommands, sub) ? info.subcommands[sub] : undefined;
    if (!entry) {
      throw refused(
        `command '${name}' is available only as: ${Object.keys(info.subcommands).join(', ')}`,
      );
    }
    return entry;
  }

  prepare(principal: Principal, argv: string[]): PreparedCommand {
    const info = this.infoOf(argv);
    if (!arityOk(info.arity, argv.length)) {
      throw arityError(info.name);
    }
    const positions = keyPositions(info, argv);
    if (positions === null) {
      throw syntax();
    }
    const out = [...argv];
    const keys = positions.map((at) => {
      out[at] = this.access.redisKey(principal, argv[at], `command[${at}]`);
      return out[at];
    });
    const prepared: PreparedCommand = {
      name: info.name,
      family: info.group,
      argv: out,
      keys,
      readonly: info.flags.includes('readonly'),
      replyKeys: REPLY_KEYS[info.name],
    };
    this.special(principal, prepared, argv);
    return prepared;
  }

  /** The checks of the commands that need more than their keys. */
  private special(principal: Principal, prepared: PreparedCommand, argv: string[]): void {
    switch (prepared.name) {
      case 'publish':
        prepared.argv[1] = this.access.redisKey(principal, argv[1], 'channel');
        return;
      case 'dbsize':
        if (principal.keyPatterns !== null) {
          throw new AppError(
            'KEY_FORBIDDEN',
            'DBSIZE counts the whole database: not for a token confined by key patterns.',
          );
        }
        return;
      case 'copy':
        if (argv.slice(3).some((arg) => arg.toLowerCase() === 'db')) {
          throw refused('COPY to another database is not available through this gateway');
        }
        return;
      case 'eval':
      case 'eval_ro':
      case 'script|load': {
        const at = prepared.name === 'script|load' ? 2 : 1;
        const sha = sha1(argv[at]);
        this.allowScript(sha);
        prepared.argv[at] = this.scripts.runnable(sha, argv[at]);
        return;
      }
      case 'evalsha':
      case 'evalsha_ro': {
        const sha = argv[1].toLowerCase();
        this.allowScript(sha);
        prepared.argv[1] = this.scripts.runnableSha(sha);
        return;
      }
      case 'scan':
        prepared.scan = this.scanOptions(argv);
        return;
      default:
        this.blocking(prepared, argv);
    }
  }

  private allowScript(sha: string): void {
    if (!this.allowedScripts.has(sha)) {
      throw refused(`script ${sha} is not on upstash.allowedScripts`);
    }
  }

  private scanOptions(argv: string[]): NonNullable<PreparedCommand['scan']> {
    const scan: NonNullable<PreparedCommand['scan']> = { cursor: argv[1], match: '*' };
    for (let i = 2; i < argv.length; i += 2) {
      const option = argv[i].toLowerCase();
      const value = argv[i + 1];
      if (value === undefined) {
        throw syntax();
      }
      if (option === 'match') {
        scan.match = value;
      } else if (option === 'count' && /^\d{1,9}$/.test(value) && Number(value) > 0) {
        scan.count = Number(value);
      } else if (option === 'type') {
        scan.type = value;
      } else {
        throw syntax();
      }
    }
    return scan;
  }

  /** A blocking command's block time, which must be finite and within limits.maxBlockMs. */
  private blocking(prepared: PreparedCommand, argv: string[]): void {
    const kind = BLOCK_TIMEOUT[prepared.name];
    if (kind === undefined) {
      return;
    }
    let ms: number | null;
    if (kind === 'option') {
      const streams = argv.findIndex((arg) => arg.toLowerCase() === 'streams');
      const end = streams < 0 ? argv.length : streams;
      const at = argv.findIndex((arg, i) => i < end && arg.toLowerCase() === 'block');
      if (at < 0) {
        return; // without BLOCK it answers at once
      }
      ms = /^\d{1,9}$/.test(argv[at + 1] ?? '') ? Number(argv[at + 1]) : null;
    } else {
      ms = secondsToMs(kind === 'last' ? argv[argv.length - 1] : argv[1]);
    }
    if (ms === null) {
      throw refused('timeout is not a float or out of range');
    }
    if (ms === 0 || ms > this.maxBlockMs) {
      throw refused(
        `a blocking command must block for more than 0 and at most ${this.maxBlockMs} ms (limits.maxBlockMs)`,
      );
    }
    prepared.blockMs = ms;
  }
}

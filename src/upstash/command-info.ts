/**
 * What Redis says about a command (COMMAND INFO and COMMAND DOCS), normalised into plain data:
 * the generated command table (command-table.json) holds these, and the test that compares it
 * with the running server builds the same shape from the server's replies.
 */

/** Where the search for a key spec's keys begins (Redis 7 key specifications). */
export type BeginSearch =
  | { type: 'index'; index: number }
  | { type: 'keyword'; keyword: string; startfrom: number }
  | { type: 'unknown' };

/** How the keys are found from there. */
export type FindKeys =
  | { type: 'range'; lastkey: number; keystep: number; limit: number }
  | { type: 'keynum'; keynumidx: number; firstkey: number; keystep: number }
  | { type: 'unknown' };

export interface KeySpec {
  flags: string[];
  begin: BeginSearch;
  find: FindKeys;
}

export interface CommandInfo {
  /** Lower case; a subcommand as `container|sub` (`xinfo|stream`). */
  name: string;
  /** Redis's arity: n arguments exactly (the name counts), or at least -n when negative. */
  arity: number;
  flags: string[];
  /** ACL categories without the `@`. */
  categories: string[];
  /** COMMAND DOCS `group`: the command's family (string, hash, generic, ...). */
  group: string;
  keySpecs: KeySpec[];
  subcommands?: Record<string, CommandInfo>;
}

/** A RESP2 reply as ioredis hands it over (strings, numbers, nested arrays, null). */
export type RawReply = string | number | null | RawReply[];

/** A flat `[name, value, name, value...]` reply as an object. */
function pairs(reply: RawReply): Record<string, RawReply> {
  const out: Record<string, RawReply> = {};
  if (!Array.isArray(reply)) {
    return out;
  }
  for (let index = 0; index + 1 < reply.length; index += 2) {
    out[String(reply[index])] = reply[index + 1];
  }
  return out;
}

const strings = (reply: RawReply): string[] =>
  Array.isArray(reply) ? reply.map((item) => String(item)) : [];

const numberOf = (reply: RawReply): number => Number(reply);

function beginSearch(reply: RawReply): BeginSearch {
  const { type, spec } = pairs(reply);
  const fields = pairs(spec);
  if (type === 'index') {
    return { type, index: numberOf(fields.index) };
  }
  if (type === 'keyword') {
    return { type, keyword: String(fields.keyword), startfrom: numberOf(fields.startfrom) };
  }
  return { type: 'unknown' };
}

function findKeys(reply: RawReply): FindKeys {
  const { type, spec } = pairs(reply);
  const fields = pairs(spec);
  if (type === 'range') {
    return {
      type,
      lastkey: numberOf(fields.lastkey),
      keystep: numberOf(fields.keystep),
      limit: numberOf(fields.limit),
    };
  }
  if (type === 'keynum') {
    return {
      type,
      keynumidx: numberOf(fields.keynumidx),
      firstkey: numberOf(fields.firstkey),
      keystep: numberOf(fields.keystep),
    };
  }
  return { type: 'unknown' };
}

/**
 * One entry of COMMAND INFO (Redis 7: name, arity, flags, first key, last key, step, ACL
 * categories, tips, key specs, subcommands) with the `group` of its COMMAND DOCS entry (the
 * docs of a subcommand sit under its container's `subcommands`).
 */
export function commandInfo(reply: RawReply, docs: Record<string, RawReply>): CommandInfo {
  if (!Array.isArray(reply)) {
    throw new Error('not a COMMAND INFO entry');
  }
  const [name, arity, flags, , , , categories, , specs, subcommands] = reply;
  const lower = String(name).toLowerCase();
  const doc = pairs(docs[lower] ?? docs[lower.split('|')[1]] ?? null);
  const info: CommandInfo = {
    name: lower,
    arity: numberOf(arity),
    flags: strings(flags).sort(),
    categories: strings(categories)
      .map((category) => category.replace(/^@/, ''))
      .sort(),
    group: doc.group === undefined ? 'unknown' : String(doc.group),
    keySpecs: (Array.isArray(specs) ? specs : []).map((spec) => {
      const fields = pairs(spec);
      return {
        flags: strings(fields.flags).sort(),
        begin: beginSearch(fields.begin_search),
        find: findKeys(fields.find_keys),
      };
    }),
  };
  if (Array.isArray(subcommands) && subcommands.length > 0) {
    const subDocs = pairs(doc.subcommands ?? null);
    const lowered = Object.fromEntries(
      Object.entries(subDocs).map(([key, value]) => [key.toLowerCase(), value]),
    );
    info.subcommands = {};
    for (const sub of subcommands) {
      const entry = commandInfo(sub, lowered);
      info.subcommands[entry.name] = entry;
    }
  }
  return info;
}

/**
 * Every command of a server from the replies of `COMMAND` and `COMMAND DOCS` (whoever holds the
 * connection asks: the generator script and the test that compares the table with a server).
 */
export function serverCommands(infos: RawReply[], docsReply: RawReply[]): CommandInfo[] {
  const docs: Record<string, RawReply> = {};
  for (let index = 0; index + 1 < docsReply.length; index += 2) {
    docs[String(docsReply[index]).toLowerCase()] = docsReply[index + 1];
  }
  return infos.map((reply) => commandInfo(reply, docs));
}

/**
 * Which Redis commands the Upstash-compatible endpoint offers: the policy the generated
 * command table (command-table.json, `npm run upstash:commands`) is made from. A command that
 * is not in the table is refused; this file says why each family is in and each exception out.
 */

/** COMMAND DOCS groups offered whole (bar the exceptions below): the data a token may own. */
export const FAMILIES = ['string', 'hash', 'list', 'set', 'sorted-set', 'stream', 'generic'];

/** Commands of other groups that are offered, each checked further where the code says. */
export const EXTRAS = [
  'publish', // its channel is prefixed and authorised like a key
  'ping',
  'echo',
  'time',
  'dbsize', // only for a token without key patterns (it counts the whole database)
  'eval', // EVAL, EVALSHA and SCRIPT LOAD only for scripts on upstash.allowedScripts
  'evalsha',
  'eval_ro',
  'evalsha_ro',
  'script',
];

/** ACL categories that keep a command out whatever its group. */
export const DENIED_CATEGORIES = ['dangerous', 'admin'];

/** Commands of the families that are refused, and why. */
export const DENIED: Record<string, string> = {
  keys: 'lists the whole database, outside the key prefix (SCAN is confined instead)',
  randomkey: 'answers a key that may lie outside the prefix or the token patterns',
  sort: 'BY and GET patterns read keys the command does not declare',
  sort_ro: 'BY and GET patterns read keys the command does not declare',
  move: 'moves a key to another database',
  object: 'server internals, not data',
  wait: 'waits on replication, not data',
  waitaof: 'waits on persistence, not data',
};

/** Subcommands offered of the container commands in the table; the others are refused. */
export const SUBCOMMANDS: Record<string, string[]> = {
  script: ['load', 'exists'],
  xinfo: ['stream', 'groups', 'consumers'],
  xgroup: ['create', 'setid', 'destroy', 'createconsumer', 'delconsumer'],
};

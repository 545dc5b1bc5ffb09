import type { CommandInfo } from './command-info';
import { DENIED, DENIED_CATEGORIES, EXTRAS, FAMILIES, SUBCOMMANDS } from './command-policy';

/** Whether the policy offers a command (a top-level entry of COMMAND INFO). */
export function offered(info: CommandInfo): boolean {
  if (DENIED[info.name] !== undefined) {
    return false;
  }
  if (info.categories.some((category) => DENIED_CATEGORIES.includes(category))) {
    return false;
  }
  return FAMILIES.includes(info.group) || EXTRAS.includes(info.name);
}

/** The offered commands of a server's COMMAND and COMMAND DOCS, subcommands pruned. */
export function selectCommands(all: CommandInfo[]): Record<string, CommandInfo> {
  const table: Record<string, CommandInfo> = {};
  for (const info of all.filter(offered).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const allowed = SUBCOMMANDS[info.name];
    if (info.subcommands) {
      const subs = Object.values(info.subcommands)
        .filter((sub) => allowed?.includes(sub.name.split('|')[1]))
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      if (subs.length === 0) {
        continue;
      }
      table[info.name] = {
        ...info,
        subcommands: Object.fromEntries(subs.map((sub) => [sub.name, sub])),
      };
    } else {
      table[info.name] = info;
    }
  }
  return table;
}

/**
 * The server's other commands, by name with their family: refused, but named in the request
 * log and counted in the metrics by family, where a name the server does not know is not.
 */
export function refusedCommands(all: CommandInfo[]): Record<string, string> {
  const table = selectCommands(all);
  const refused = all
    .filter((info) => !Object.hasOwn(table, info.name))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  return Object.fromEntries(refused.map((info) => [info.name, info.group]));
}

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
      info.subcommands = Object.fromEntries(subs.map((sub) => [sub.name, sub]));
    }
    table[info.name] = info;
  }
  return table;
}

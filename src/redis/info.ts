/** One server's INFO: section name (lower case) → field → value. */
export type Info = Record<string, Record<string, string>>;

/** Parses the text of INFO (every section, or the ones asked for). */
export function parseInfo(text: string): Info {
  const sections: Info = {};
  let current: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('# ')) {
      current = {};
      sections[line.slice(2).trim().toLowerCase()] = current;
    } else if (line.includes(':')) {
      const index = line.indexOf(':');
      current[line.slice(0, index)] = line.slice(index + 1);
    }
  }
  return sections;
}

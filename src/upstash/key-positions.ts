import type { CommandInfo, KeySpec } from './command-info';

/**
 * The positions in `argv` (argv[0] is the command name) of the keys a command names, found
 * from its key specifications the way Redis 7 finds them itself (getKeysUsingKeySpecs in
 * Redis's db.c), so the gateway prefixes and authorises exactly what Redis will treat as a
 * key. Null when a spec cannot be applied to these arguments (a key count that is not a
 * number, a range past the end): Redis would refuse the command, and so does the gateway.
 */
export function keyPositions(info: CommandInfo, argv: readonly string[]): number[] | null {
  const positions = new Set<number>();
  for (const spec of info.keySpecs) {
    const found = specPositions(spec, argv);
    if (found === null) {
      return null;
    }
    found.forEach((position) => positions.add(position));
  }
  return [...positions].sort((a, b) => a - b);
}

function beginOf(spec: KeySpec, argv: readonly string[]): number | 'none' | null {
  const { begin } = spec;
  const argc = argv.length;
  switch (begin.type) {
    case 'index':
      return begin.index;
    case 'keyword': {
      const forward = begin.startfrom > 0;
      const start = forward ? begin.startfrom : argc + begin.startfrom;
      const end = forward ? argc - 1 : 0;
      const keyword = begin.keyword.toLowerCase();
      for (let i = start; forward ? i <= end : i >= end; i += forward ? 1 : -1) {
        if (i >= argc || i < 1) {
          break;
        }
        if (argv[i].toLowerCase() === keyword) {
          return i + 1;
        }
      }
      // No keyword, no keys of this spec (Redis refuses such a command by its syntax).
      return 'none';
    }
    case 'unknown':
      return null;
  }
}

function specPositions(spec: KeySpec, argv: readonly string[]): number[] | null {
  const argc = argv.length;
  const begin = beginOf(spec, argv);
  if (begin === 'none') {
    return [];
  }
  if (begin === null) {
    return null;
  }
  let first = begin;
  let last: number;
  let step: number;
  const { find } = spec;
  switch (find.type) {
    case 'range':
      step = find.keystep;
      if (find.lastkey >= 0) {
        last = first + find.lastkey;
      } else if (find.limit === 0) {
        last = argc + find.lastkey;
      } else {
        last = first + (Math.floor((argc - first) / find.limit) + find.lastkey);
      }
      break;
    case 'keynum': {
      step = find.keystep;
      if (find.keynumidx >= argc - first) {
        return null;
      }
      const text = argv[first + find.keynumidx];
      if (!/^\d{1,9}$/.test(text)) {
        return null;
      }
      const count = Number(text);
      first += find.firstkey;
      if (count === 0) {
        return [];
      }
      last = first + (count - 1) * step;
      break;
    }
    case 'unknown':
      return null;
  }
  if (last >= argc || last < first || first >= argc || step < 1) {
    return null;
  }
  const positions: number[] = [];
  for (let i = first; i <= last; i += step) {
    positions.push(i);
  }
  return positions;
}

import { ASCII } from './ascii';

/**
 * Redis glob matching (the rules of Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a-z]`,
 * `\x`), on the UTF-8 bytes Redis itself compares, so an authorisation decision is made on
 * exactly the bytes sent to Redis. Iterative with single-star backtracking: linear memory and
 * O(pattern × subject) time, whatever the pattern.
 */
export function globMatch(pattern: string, subject: string): boolean {
  const p = Buffer.from(pattern, 'utf8');
  const s = Buffer.from(subject, 'utf8');
  let pi = 0;
  let si = 0;
  let starP = -1;
  let starS = -1;

  while (si < s.length) {
    if (pi < p.length && p[pi] === STAR) {
      while (pi < p.length && p[pi] === STAR) {
        pi++;
      }
      if (pi === p.length) {
        return true;
      }
      starP = pi;
      starS = si;
      continue;
    }
    const step = pi < p.length ? matchOne(p, pi, s[si]) : -1;
    if (step > 0) {
      pi += step;
      si++;
      continue;
    }
    if (starP < 0) {
      return false;
    }
    pi = starP;
    si = ++starS;
  }
  while (pi < p.length && p[pi] === STAR) {
    pi++;
  }
  return pi === p.length;
}

const {
  star: STAR,
  question: QUESTION,
  openBracket: OPEN,
  closeBracket: CLOSE,
  caret: CARET,
  backslash: BACKSLASH,
  dash: DASH,
} = ASCII;

/** Matches one subject byte at p[pi]; returns how many pattern bytes it used, or -1. */
function matchOne(p: Buffer, pi: number, byte: number): number {
  switch (p[pi]) {
    case QUESTION:
      return 1;
    case BACKSLASH:
      if (pi + 1 < p.length) {
        return p[pi + 1] === byte ? 2 : -1;
      }
      return byte === BACKSLASH ? 1 : -1;
    case OPEN:
      return matchClass(p, pi, byte);
    default:
      return p[pi] === byte ? 1 : -1;
  }
}

function matchClass(p: Buffer, start: number, byte: number): number {
  let i = start + 1;
  const negate = p[i] === CARET;
  if (negate) {
    i++;
  }
  let matched = false;
  for (;;) {
    if (i >= p.length) {
      // Unterminated class: Redis ends the class at the pattern's end.
      i = p.length - 1;
      break;
    }
    if (p[i] === BACKSLASH && i + 1 < p.length) {
      i++;
      matched ||= p[i] === byte;
    } else if (p[i] === CLOSE) {
      break;
    } else if (i + 2 < p.length && p[i + 1] === DASH) {
      const low = Math.min(p[i], p[i + 2]);
      const high = Math.max(p[i], p[i + 2]);
      matched ||= byte >= low && byte <= high;
      i += 2;
    } else {
      matched ||= p[i] === byte;
    }
    i++;
  }
  return matched !== negate ? i - start + 1 : -1;
}

/** Escapes glob metacharacters so that Redis MATCH treats the text literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/** The most members (characters or ranges) a character class of a caller's glob may list. */
export const MAX_CLASS_MEMBERS = 32;

/**
 * Why a glob a caller sends (a pattern subscription) is too costly for Redis to match, or null:
 * longer than `maxBytes`, or a character class of more than MAX_CLASS_MEMBERS members. Redis
 * matches a class member by member for every character of every channel it publishes to, so
 * five patterns with a class of 1,000 members held PUBLISH for everyone (docs/testing.md, I-4).
 */
export function globCostProblem(pattern: string, maxBytes: number): string | null {
  const bytes = Buffer.from(pattern, 'utf8');
  if (bytes.length > maxBytes) {
    return `must be at most ${maxBytes} bytes (limits.maxPatternBytes)`;
  }
  for (let index = 0; index < bytes.length; index += 1) {
    if (bytes[index] === BACKSLASH) {
      index += 1;
      continue;
    }
    if (bytes[index] !== OPEN) {
      continue;
    }
    let members = 0;
    index += 1;
    if (bytes[index] === CARET) {
      index += 1;
    }
    for (; index < bytes.length && bytes[index] !== CLOSE; index += 1) {
      if (bytes[index] === BACKSLASH) {
        index += 1;
      } else if (bytes[index + 1] === DASH && index + 2 < bytes.length) {
        index += 2;
      }
      members += 1;
    }
    if (members > MAX_CLASS_MEMBERS) {
      return `must not hold a character class of more than ${MAX_CLASS_MEMBERS} members`;
    }
  }
  return null;
}

import type { AppError } from '../errors/app-error';
import type { MessageFormat } from '../subscriptions/channel-streams';
import type { PreparedCommand } from './command-table';

const OK = Buffer.from('OK');

/** What one command answers: Redis's reply or its error reply's text. */
export type Outcome = { result: unknown } | { error: string };

/** Marks an AppError whose detail is Redis's own error reply, passed through as it is. */
export const REDIS_REPLY = 'redis_reply';

/**
 * `{error}` as the Upstash SDK reads it, with our stable code beside it: Redis's own error text
 * (clients match on it: NOSCRIPT, WRONGTYPE), else Redis-style text, `NOPERM` for a refusal.
 */
export function upstashErrorBody(error: AppError, status: number): unknown {
  if (error.reason === REDIS_REPLY) {
    return { error: error.detail, code: error.code };
  }
  const prefix = status === 403 ? 'NOPERM' : 'ERR';
  // The SDK shows only `error`: a validation problem names its first field there.
  const first = error.errors?.[0];
  const detail = first ? `${error.detail} ${first.field}: ${first.message}` : error.detail;
  return { error: `${prefix} ${detail}`, code: error.code };
}

/**
 * A reply as JSON: strings as UTF-8 text, or with `Upstash-Encoding: base64` every string in
 * base64, nested ones too, except a top-level `OK` (what the SDK expects).
 */
export function encodeReply(value: unknown, base64: boolean, top = true): unknown {
  if (Buffer.isBuffer(value)) {
    if (!base64) {
      return value.toString('utf8');
    }
    return top && value.equals(OK) ? 'OK' : value.toString('base64');
  }
  if (typeof value === 'string') {
    return encodeReply(Buffer.from(value), base64, top);
  }
  if (Array.isArray(value)) {
    return value.map((item) => encodeReply(item, base64, false));
  }
  return value ?? null;
}

function strip(value: unknown, prefix: Buffer): unknown {
  if (Buffer.isBuffer(value) && value.subarray(0, prefix.length).equals(prefix)) {
    return value.subarray(prefix.length);
  }
  return value;
}

/** Keys in a reply (BLPOP, LMPOP, XREAD, ...) without the key prefix. */
export function unprefixReply(command: PreparedCommand, reply: unknown, prefix: Buffer): unknown {
  if (!command.replyKeys || prefix.length === 0 || !Array.isArray(reply)) {
    return reply;
  }
  const items = reply as unknown[];
  if (command.replyKeys === 'first') {
    return [strip(items[0], prefix), ...items.slice(1)];
  }
  return items.map((entry) => {
    const pair = entry as unknown[];
    return Array.isArray(entry) ? [strip(pair[0], prefix), ...pair.slice(1)] : entry;
  });
}

/**
 * The SDK's subscription frames (`subscribe()`/`psubscribe()` read only the `data:` lines):
 * `subscribe,ch,1` once subscribed, then `message,ch,text` or `pmessage,pat,ch,text`. The
 * message is UTF-8 text; a line break in it starts a new `data:` line, as the SSE grammar needs.
 */
export function upstashMessageFormat(kind: 'channel' | 'pattern', name: string): MessageFormat {
  return kind === 'channel'
    ? {
        id: 'upstash',
        opened: () => ({ event: 'message', data: `subscribe,${name},1` }),
        event: (channel, message) => ({
          event: 'message',
          data: `message,${channel},${message.toString('utf8')}`,
        }),
      }
    : {
        id: `upstash\0${name}`,
        opened: () => ({ event: 'message', data: `psubscribe,${name},1` }),
        event: (channel, message) => ({
          event: 'message',
          data: `pmessage,${name},${channel},${message.toString('utf8')}`,
        }),
      };
}

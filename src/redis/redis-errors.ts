import { AppError } from '../errors/app-error';
import { OperationTimeoutError } from './deadline';

/**
 * What an operation does to Redis, which decides its connection and what a lost reply means:
 * - `read`: changes nothing; runs on the reads connection; a lost reply is simply unavailable;
 * - `write`: runs on the writes connection; a reply lost after sending leaves the outcome
 *   unknown (504 OUTCOME_UNKNOWN);
 * - `retriable-write`: a write that a plain retry repeats safely (a consumer-group read: what
 *   it delivered stays pending and can be claimed), so a lost reply is answered like a read's.
 */
export type OperationKind = 'read' | 'write' | 'retriable-write';

/** Raised before anything is sent, while the command connection is not ready. */
export function notReady(): AppError {
  return new AppError('REDIS_UNAVAILABLE', 'Redis is not reachable right now; retry shortly.');
}

// Redis error replies start with an upper-case code; the detail we return never quotes them.
const REPLY_RULES: [prefix: RegExp, make: () => AppError][] = [
  [/^WRONGTYPE/, () => new AppError('WRONG_TYPE', 'The key holds a value of another type.')],
  [
    /^OOM/,
    () => new AppError('REDIS_OOM', 'Redis is out of memory; reads and deletes still work.'),
  ],
  [/^READONLY/, () => new AppError('REDIS_READONLY', 'Redis is read-only right now (failover).')],
  [/^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY |NOREPLICAS)/, notReady],
  [/^(NOAUTH|WRONGPASS)/, notReady],
  [
    /^NOPERM/,
    () =>
      new AppError('REDIS_NO_PERMISSION', "The gateway's Redis user may not run this operation."),
  ],
  [
    /^ERR (value is not an integer|value is not a valid float|hash value is not)/,
    () => new AppError('NOT_A_NUMBER', 'The stored value is not a number.'),
  ],
  [
    /^ERR (increment or decrement would overflow|increment would produce NaN or Infinity)/,
    () => new AppError('OUT_OF_RANGE', 'The result would be out of range.'),
  ],
  [
    /^IDEMPOTENCY_KEY_REUSED/,
    () =>
      new AppError(
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was used for a different request; use a new key.',
      ),
  ],
  [/^BUSYGROUP/, () => new AppError('GROUP_EXISTS', 'The consumer group already exists.')],
  [
    /^(NOGROUP|ERR The XGROUP subcommand requires the key to exist)/,
    () => AppError.notFound('The stream or its consumer group'),
  ],
  [/^ERR no such key/, () => AppError.notFound('The stream')],
  [
    // An automatic id after the largest possible one ("exhausted") is the same condition.
    /^ERR (The ID specified in XADD is equal or smaller|The stream has exhausted the last possible ID)/,
    () =>
      new AppError(
        'STREAM_ID_TOO_SMALL',
        "The entry id must be greater than the stream's last id; omit it for an automatic one.",
      ),
  ],
  [
    /^ERR (The ID specified in XADD must be greater than 0-0|Invalid stream ID)/,
    () => AppError.validation([{ field: 'id', message: 'must be a stream id greater than 0-0' }]),
  ],
];

/**
 * ioredis rejects the commands in flight on a connection that closes with this error (with
 * maxRetriesPerRequest 0 it flushes its command queue on every close, before any resend logic):
 * they were written to the socket, so Redis may have executed them.
 */
const IN_FLIGHT_WHEN_CLOSED = 'Reached the max retries per request limit';

const CONNECTION_MESSAGES = [
  "Stream isn't writeable",
  'Connection is closed',
  IN_FLIGHT_WHEN_CLOSED,
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  // A cluster command bounced between nodes (MOVED, ASK, TRYAGAIN, a closed connection) until
  // the redirections ran out: never executed, unless the last error says it was in flight.
  'Too many Cluster redirections',
];

function wasInFlight(error: Error): boolean {
  return error.message.includes(IN_FLIGHT_WHEN_CLOSED);
}

/** The error behind EXECABORT: the first command MULTI refused to queue (ioredis collects them). */
function causeOfExecAbort(error: Error): Error | undefined {
  if (!error.message.startsWith('EXECABORT')) {
    return undefined;
  }
  const previous = (error as Error & { previousErrors?: unknown[] }).previousErrors;
  return previous?.find((item): item is Error => item instanceof Error);
}

function isConnectionError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  if (code && /^E(CONNRESET|CONNREFUSED|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH)$/.test(code)) {
    return true;
  }
  return CONNECTION_MESSAGES.some((message) => error.message.includes(message));
}

/**
 * Maps what ioredis rejects with onto the API's error codes. A write that may have reached
 * Redis before its connection failed or its timeout fired has an unknown outcome; a read in the
 * same situation is simply unavailable and safe to retry.
 */
export function translateRedisError(error: unknown, kind: OperationKind): AppError {
  if (error instanceof AppError) {
    return error;
  }
  if (!(error instanceof Error)) {
    return new AppError('INTERNAL', 'An internal error occurred.', { cause: error });
  }
  const aborted = causeOfExecAbort(error);
  if (aborted) {
    return translateRedisError(aborted, kind);
  }
  if (error instanceof OperationTimeoutError || error.message === 'Command timed out') {
    return kind === 'write'
      ? new AppError(
          'OUTCOME_UNKNOWN',
          'Redis did not answer in time; the write may or may not have been applied.',
        )
      : new AppError('REDIS_TIMEOUT', 'Redis did not answer in time.');
  }
  if (isConnectionError(error)) {
    return kind === 'write' && wasInFlight(error)
      ? new AppError(
          'OUTCOME_UNKNOWN',
          'The connection to Redis broke; the write may or may not have been applied.',
        )
      : notReady();
  }
  // Errors raised inside a Lua script carry the original reply's code after "ERR Error ...".
  const message = error.message.replace(/^ERR Error running script.*?: /, '');
  for (const [prefix, make] of REPLY_RULES) {
    if (prefix.test(message) || prefix.test(error.message)) {
      return make();
    }
  }
  return new AppError('INTERNAL', 'An internal error occurred.', { cause: error });
}

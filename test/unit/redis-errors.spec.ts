import { ReplyError } from 'ioredis';
import { AppError } from '../../src/errors/app-error';
import { ERROR_CODES } from '../../src/errors/app-error';
import { ERROR_STATUS } from '../../src/errors/error-status';
import { translateRedisError } from '../../src/redis/redis-errors';

// ioredis types ReplyError as any; it is the class of every Redis error reply.
const reply = (message: string): Error =>
  new (ReplyError as new (message: string) => Error)(message);

describe('translateRedisError', () => {
  it.each([
    ['WRONGTYPE Operation against a key holding the wrong kind of value', 'WRONG_TYPE'],
    ["OOM command not allowed when used memory > 'maxmemory'.", 'REDIS_OOM'],
    ["READONLY You can't write against a read only replica.", 'REDIS_READONLY'],
    ['LOADING Redis is loading the dataset in memory', 'REDIS_UNAVAILABLE'],
    ['MASTERDOWN Link with MASTER is down', 'REDIS_UNAVAILABLE'],
    ['CLUSTERDOWN The cluster is down', 'REDIS_UNAVAILABLE'],
    ['NOAUTH Authentication required.', 'REDIS_UNAVAILABLE'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'REDIS_UNAVAILABLE'],
    ["NOPERM this user has no permissions to run the 'flushall' command", 'REDIS_NO_PERMISSION'],
    ['ERR value is not an integer or out of range', 'NOT_A_NUMBER'],
    ['ERR value is not a valid float', 'NOT_A_NUMBER'],
    ['ERR increment or decrement would overflow', 'OUT_OF_RANGE'],
    ['ERR increment would produce NaN or Infinity', 'OUT_OF_RANGE'],
    [
      'WRONGTYPE Operation against a key holding the wrong kind of value script: abc, on @user_script:1.',
      'WRONG_TYPE',
    ],
    ['ERR something nobody planned for', 'INTERNAL'],
  ])('maps the reply "%s" to %s, for reads and writes alike', (message, code) => {
    expect(translateRedisError(reply(message), 'read').code).toBe(code);
    expect(translateRedisError(reply(message), 'write').code).toBe(code);
  });

  it('never puts Redis text in the detail', () => {
    const error = translateRedisError(reply('ERR secret-internal-detail'), 'read');
    expect(error.detail).not.toContain('secret-internal-detail');
  });

  it('a timeout is REDIS_TIMEOUT for a read and OUTCOME_UNKNOWN for a write', () => {
    expect(translateRedisError(new Error('Command timed out'), 'read').code).toBe('REDIS_TIMEOUT');
    expect(translateRedisError(new Error('Command timed out'), 'write').code).toBe(
      'OUTCOME_UNKNOWN',
    );
  });

  it('a connection lost after sending is OUTCOME_UNKNOWN for a write, unavailable for a read', () => {
    // What ioredis rejects in-flight commands with when their connection closes.
    const inFlight = () => new Error('Reached the max retries per request limit (which is 0).');
    expect(translateRedisError(inFlight(), 'write').code).toBe('OUTCOME_UNKNOWN');
    expect(translateRedisError(inFlight(), 'read').code).toBe('REDIS_UNAVAILABLE');
  });

  it('a command never sent is REDIS_UNAVAILABLE, even for a write', () => {
    const unsent = new Error("Stream isn't writeable and enableOfflineQueue options is false");
    expect(translateRedisError(unsent, 'write').code).toBe('REDIS_UNAVAILABLE');
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
      code: 'ECONNREFUSED',
    });
    expect(translateRedisError(refused, 'write').code).toBe('REDIS_UNAVAILABLE');
  });

  it('a cluster command out of redirections is REDIS_UNAVAILABLE, unless its last try was in flight', () => {
    // ioredis's message when a command bounced between nodes until maxRedirections ran out.
    const bounced = (last: string) =>
      new Error(`Too many Cluster redirections. Last error: ${last}`);
    expect(
      translateRedisError(bounced('ReplyError: MOVED 15375 127.0.0.1:7002'), 'write').code,
    ).toBe('REDIS_UNAVAILABLE');
    expect(translateRedisError(bounced('Error: Connection is closed.'), 'read').code).toBe(
      'REDIS_UNAVAILABLE',
    );
    const inFlight = bounced(
      'MaxRetriesPerRequestError: Reached the max retries per request limit',
    );
    expect(translateRedisError(inFlight, 'write').code).toBe('OUTCOME_UNKNOWN');
  });

  it('passes AppErrors through and turns anything else into INTERNAL', () => {
    const own = new AppError('NOT_FOUND', 'x');
    expect(translateRedisError(own, 'read')).toBe(own);
    expect(translateRedisError('a string', 'read').code).toBe('INTERNAL');
  });
});

describe('the status table', () => {
  it('gives every error code a status (the compiler checks it too)', () => {
    for (const code of ERROR_CODES) {
      expect(ERROR_STATUS[code]).toBeGreaterThanOrEqual(400);
    }
    expect(Object.keys(ERROR_STATUS).sort()).toEqual([...ERROR_CODES].sort());
  });
});

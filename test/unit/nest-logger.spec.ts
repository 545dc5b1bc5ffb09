import pino from 'pino';
import { NestPinoLogger } from '../../src/observability/nest-logger';

/** Nest's Logger calls become one JSON line each, with their context, through pino. */
describe('NestPinoLogger', () => {
  const capture = () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'trace' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    return { lines, nest: new NestPinoLogger(logger) };
  };

  it('writes the message with the context Nest appends, at the matching level', () => {
    const { lines, nest } = capture();
    nest.log('started', 'Bootstrap');
    nest.warn('slow', 'Redis');
    nest.verbose('detail', 'X');
    nest.debug('dbg');
    nest.fatal('gone', 'Y');
    expect(lines.map(({ level, msg, context }) => ({ level, msg, context }))).toEqual([
      { level: 30, msg: 'started', context: 'Bootstrap' },
      { level: 40, msg: 'slow', context: 'Redis' },
      { level: 10, msg: 'detail', context: 'X' },
      { level: 20, msg: 'dbg', context: undefined },
      { level: 60, msg: 'gone', context: 'Y' },
    ]);
  });

  it('takes an object first as the fields, an Error as err, and a stack from Nest handlers', () => {
    const { lines, nest } = capture();
    nest.error({ handler: 'KvController.get' }, 'route declares no scopes', 'Auth');
    nest.warn(new Error('bad thing'), 'Jwks');
    const stack = 'Error: boom\n    at somewhere (file.ts:1:1)';
    nest.error('boom', stack, 'ExceptionsHandler');
    expect(lines[0]).toMatchObject({
      level: 50,
      handler: 'KvController.get',
      msg: 'route declares no scopes',
      context: 'Auth',
    });
    expect(lines[1]).toMatchObject({ level: 40, context: 'Jwks', msg: 'bad thing' });
    expect((lines[1].err as { message: string }).message).toBe('bad thing');
    expect(lines[2]).toMatchObject({ level: 50, msg: 'boom', context: 'ExceptionsHandler' });
    expect((lines[2].err as { stack: string }).stack).toBe(stack);
  });
});

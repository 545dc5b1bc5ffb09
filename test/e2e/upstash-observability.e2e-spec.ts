import { Redis as Upstash } from '@upstash/redis';
import { NO_CALLER_LIMITS, TestApp } from '../support/app';
import { metricValue } from '../support/metrics';
import { eventually, sleep } from '../support/ports';

const METRIC = 'redis_gateway_upstash_commands_total';

/**
 * What the Upstash-compatible endpoint tells its operators: each command counted by family and
 * result, and the request's log line naming its commands, never their arguments.
 */
describe('Upstash-compatible endpoint: metrics by command family and the log line', () => {
  let t: TestApp;
  let rw: Upstash;

  const metrics = async () => (await t.call('GET', '/metrics')).body;
  const count = (text: string, family: string, result: string) =>
    metricValue(text, METRIC, { family, result });
  /** The request log lines of the endpoint written so far. */
  const requestLines = (): Record<string, unknown>[] =>
    t.logs
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter(
        (line) =>
          line.msg === 'request completed' && String(line.route).startsWith('/redis/upstash'),
      )
      .map(
        ({ command, commands, commandCount }) =>
          JSON.parse(JSON.stringify({ command, commands, commandCount })) as Record<
            string,
            unknown
          >,
      );
  const post = (body: unknown) => t.call('POST', '/redis/upstash', { token: t.tokens.both, body });

  beforeAll(async () => {
    t = await TestApp.create({
      listen: true,
      captureLogs: true,
      config: { ...NO_CALLER_LIMITS, upstash: { enabled: true } },
    });
    rw = new Upstash({
      url: `${t.baseUrl}/redis/upstash`,
      token: t.tokens.both,
      enableTelemetry: false,
      retry: false,
      enableAutoPipelining: false,
    });
  });

  afterAll(() => t.close());

  it('counts each command by family and result: ok, Redis error, refused', async () => {
    const before = await metrics();
    await rw.set('obs:s', 'secret-value-1');
    await rw.hset('obs:h', { f: 'v' });
    expect((await post(['incr', 'obs:s'])).statusCode).toBe(400); // a Redis error reply
    expect((await post(['flushall'])).statusCode).toBe(400); // not offered
    expect((await post(['nosuchcommand-secret', 'x'])).statusCode).toBe(400);
    const pipeline = await t.call('POST', '/redis/upstash/pipeline', {
      token: t.tokens.both,
      body: [
        ['get', 'obs:s'],
        ['get', 'obs:s'],
        ['keys', '*'],
      ],
    });
    expect(pipeline.statusCode).toBe(400); // KEYS refuses the whole pipeline: nothing ran
    const after = await metrics();
    const delta = (family: string, result: string) =>
      count(after, family, result) - count(before, family, result);
    expect({
      stringOk: delta('string', 'ok'),
      hashOk: delta('hash', 'ok'),
      stringError: delta('string', 'error'),
      serverRefused: delta('server', 'refused'),
      unknownRefused: delta('unknown', 'refused'),
      stringRefused: delta('string', 'refused'),
      genericRefused: delta('generic', 'refused'),
    }).toEqual({
      stringOk: 1,
      hashOk: 1,
      stringError: 1,
      serverRefused: 1,
      unknownRefused: 1,
      stringRefused: 2,
      genericRefused: 1,
    });
    expect(after).not.toContain('nosuchcommand');
  });

  it('names the commands on the request log line, never their arguments', async () => {
    // Log lines are written asynchronously: let the earlier ones land before starting afresh.
    await sleep(200);
    t.logs.length = 0;
    await rw.set('obs:key-name-secret', 'value-secret-2', { ex: 60 });
    await post(['NoSuchCommand-Secret-3', 'x']);
    await rw.pipeline().set('obs:p', 'value-secret-4').get('obs:p').get('obs:p').exec();
    await rw.multi().incr('obs:n').expire('obs:n', 60).exec();

    await eventually(() => expect(requestLines()).toHaveLength(4));
    expect(requestLines()).toEqual([
      { command: 'SET' },
      { command: '(unknown)' },
      { commands: ['SET', 'GET'], commandCount: 3 },
      { commands: ['INCR', 'EXPIRE'], commandCount: 2 },
    ]);
    const text = t.logs.join('');
    for (const secret of ['key-name-secret', 'value-secret', 'Secret-3', 'obs:']) {
      expect(text).not.toContain(secret);
    }
  });
});

import { TestApp } from '../support/app';
import { expectProblem } from '../support/problems';
import { whileProbing } from '../support/probe';

/**
 * The bounds that keep one caller from taking what the others need (docs/testing.md, the
 * isolation tests): each at its limit and one past it, with a second caller served meanwhile
 * and nothing written by a refused request.
 */
describe('limits: one caller cannot starve the others', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await TestApp.create();
  });

  afterAll(async () => {
    await t.close();
  });

  const report = (label: string, figures: Record<string, number>) => {
    if (process.env.LIMITS_REPORT) {
      const text = Object.entries(figures)
        .map(([name, value]) => `${name} ${Math.round(value * 10) / 10}`)
        .join(', ');
      process.stdout.write(`${label}: ${text}\n`);
    }
  };

  describe('validation is linear and bounded', () => {
    /** A JSON object text with `count` members named f0, f1, ... (built as text: fast). */
    const members = (count: number, value = '1') =>
      Array.from({ length: count }, (_, i) => `"f${i}":${value}`).join(',');

    it.each([
      ['POST', '/redis/kv/_mget', (extra: string) => `{"keys":["a"],${extra}}`, 'read'],
      ['POST', '/redis/tickets', (extra: string) => `{"path":"/x",${extra}}`, 'read'],
      ['PUT', '/redis/hashes/h', (extra: string) => `{"fields":{"a":"b"},${extra}}`, 'write'],
      [
        'POST',
        '/redis/streams/s/entries',
        (extra: string) => `{"fields":{"a":"b"},${extra}}`,
        'write',
      ],
    ] as const)(
      '%s %s with 49,000 unknown fields: 400 at once with at most 20 errors, others served',
      async (method, url, body, scope) => {
        const payload = body(members(49000));
        expect(payload.length).toBeGreaterThan(400000);
        const { result, workMs, probeMaxMs, loopMaxMs, probeFailures } = await whileProbing(t, () =>
          t.call(method, url, {
            token: scope === 'read' ? t.tokens.read : t.tokens.both,
            body: payload,
            headers: { 'content-type': 'application/json' },
          }),
        );
        expectProblem(result, 400, 'VALIDATION_FAILED');
        const { errors } = result.json<{ errors: { field: string; message: string }[] }>();
        expect(errors).toHaveLength(20);
        expect(errors[0]).toEqual({ field: 'f0', message: 'is not a known field' });
        expect(result.body.length).toBeLessThan(4096);
        expect(probeFailures).toBe(0);
        // 100 ms is the bar on a quiet machine; the bound has headroom for a busy one.
        expect(workMs).toBeLessThan(1000);
        report(`unknown fields ${url}`, { workMs, probeMaxMs, loopMaxMs });
        expect(await t.storedKeys()).toEqual([]);
      },
    );

    it('a body at the limit of JSON values is parsed; one past it is refused before parsing', async () => {
      const { maxJsonValues } = t.config.limits;
      // Members of a hash: limits.maxBatchKeys is the bound there, so a body at the JSON limit
      // is parsed and then refused by the service (400), not by the cost scan.
      const atLimit = `{"fields":{${members(maxJsonValues - 1, '"v"')}}}`;
      const accepted = await t.call('PUT', '/redis/hashes/h', {
        token: t.tokens.write,
        body: atLimit,
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(accepted, 400, 'VALIDATION_FAILED');
      expect(accepted.json().errors[0].message).toMatch(/fields must hold 1 to 1000 fields/);

      const over = `{"fields":{${members(maxJsonValues, '"v"')}}}`;
      const { result, workMs, probeFailures } = await whileProbing(t, () =>
        t.call('PUT', '/redis/hashes/h', {
          token: t.tokens.write,
          body: over,
          headers: { 'content-type': 'application/json' },
        }),
      );
      expectProblem(result, 400, 'VALIDATION_FAILED');
      expect(result.json().errors).toEqual([
        { field: 'body', message: expect.stringMatching(/at most 50000 values/) },
      ]);
      expect(probeFailures).toBe(0);
      expect(workMs).toBeLessThan(1000);
      expect(await t.storedKeys()).toEqual([]);
    });

    it('any body up to server.bodyLimitBytes is answered quickly and blocks no one (worst shapes)', async () => {
      const limit = t.config.server.bodyLimitBytes;
      const fill = (make: (n: number) => string) => {
        // The largest body of this shape under the limit.
        let n = 1024;
        while (make(n * 2).length < limit) {
          n *= 2;
        }
        let low = n;
        let high = n * 2;
        while (high - low > 1) {
          const mid = Math.floor((low + high) / 2);
          if (make(mid).length < limit) {
            low = mid;
          } else {
            high = mid;
          }
        }
        return make(low);
      };
      const shapes: [string, string, string][] = [
        ['tiny members', '/redis/kv/_mget', fill((n) => `{${members(n)}}`)],
        [
          'tiny array items',
          '/redis/kv/_mget',
          fill((n) => `{"keys":[${Array.from({ length: n }, () => '"k"').join(',')}]}`),
        ],
        ['map fields', '/redis/kv/_mget', fill((n) => `{"keys":["a"],"x":{${members(n)}}}`)],
        ['one long string', '/redis/kv/_mget', fill((n) => `{"keys":["${'k'.repeat(n)}"]}`)],
        ['whitespace', '/redis/kv/_mget', fill((n) => `{"keys":["a"]${' '.repeat(n)}}`)],
      ];
      for (const [label, url, payload] of shapes) {
        expect(payload.length).toBeLessThan(limit);
        expect(payload.length).toBeGreaterThan(limit / 2);
        const { result, workMs, probeMaxMs, loopMaxMs, probeFailures } = await whileProbing(t, () =>
          t.call('POST', url, {
            token: t.tokens.read,
            body: payload,
            headers: { 'content-type': 'application/json' },
          }),
        );
        expect(result.statusCode).toBeLessThan(500);
        expect(probeFailures).toBe(0);
        expect(workMs).toBeLessThan(1000);
        report(`body of ${label}`, { bytes: payload.length, workMs, probeMaxMs, loopMaxMs });
      }
    });

    it('null for a field that is not nullable is 400, and nothing is written', async () => {
      for (const [method, url, body] of [
        ['POST', '/redis/kv/n/incr', { by: null }],
        ['PUT', '/redis/kv/n', { value: 'x', ttl: null }],
        ['PUT', '/redis/kv/n', { value: null }],
        ['POST', '/redis/locks/n', { ttlMs: 1000, waitMs: null }],
        ['POST', '/redis/streams/n/entries', { fields: { a: 'b' }, maxLen: null }],
        ['PUT', '/redis/hashes/n', { fields: null }],
      ] as const) {
        const response = await t.call(method, url, { token: t.tokens.both, body });
        expectProblem(response, 400, 'VALIDATION_FAILED');
      }
      expect(await t.storedKeys()).toEqual([]);
    });

    it('Content-Type: application/json with an empty body is no body (GET, DELETE)', async () => {
      await t.call('PUT', '/redis/kv/empty', { token: t.tokens.write, body: { value: 'v' } });
      const read = await t.call('GET', '/redis/kv/empty', {
        token: t.tokens.read,
        body: '',
        headers: { 'content-type': 'application/json' },
      });
      expect(read.statusCode).toBe(200);
      const removed = await t.call('DELETE', '/redis/kv/empty', {
        token: t.tokens.write,
        body: '',
        headers: { 'content-type': 'application/json' },
      });
      expect(removed.statusCode).toBe(204);
      // A route that takes a body still needs one.
      const missing = await t.call('POST', '/redis/kv/_mget', {
        token: t.tokens.read,
        body: '',
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(missing, 400, 'VALIDATION_FAILED');
    });
  });
});

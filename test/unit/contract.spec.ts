import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { Contract } from '../support/contract';

/** An answer as inject gives it, with the request id every response carries unless told. */
function answer(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): LightMyRequestResponse {
  const payload = body === undefined ? '' : JSON.stringify(body);
  return {
    statusCode,
    payload,
    rawPayload: Buffer.from(payload),
    headers: {
      'x-request-id': 'r-1',
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
  } as unknown as LightMyRequestResponse;
}

const PROBLEM = 'application/problem+json; charset=utf-8';
const notFound = {
  type: 'about:blank',
  title: 'Not Found',
  status: 404,
  detail: 'The key does not exist.',
  code: 'NOT_FOUND',
};

// The check must be able to fail: each planted violation below is one a broken document or a
// broken server would produce, and the contract test would pass silently if any went unseen.
describe('the OpenAPI contract check (test/support/contract.ts)', () => {
  const contract = Contract.committed();
  const value = { key: 'k', value: 'v', ttl: -1 };

  it('passes an answer that keeps the contract', () => {
    expect(contract.check('GET', '/redis/kv/k', answer(200, value))).toEqual([]);
    const problem = answer(404, notFound, { 'content-type': PROBLEM });
    expect(contract.check('GET', '/redis/kv/k?encoding=utf8', problem)).toEqual([]);
  });

  it('finds a status the operation does not document', () => {
    expect(contract.check('GET', '/redis/kv/k', answer(418, value))).toEqual([
      expect.stringContaining('GET /redis/kv/{key} 418: status not documented'),
    ]);
  });

  it('finds a body of the wrong shape', () => {
    const problems = contract.check('GET', '/redis/kv/k', answer(200, { key: 'k', ttl: '60' }));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining("must have required property 'value'"),
        expect.stringContaining('body/ttl must be integer'),
      ]),
    );
  });

  it('finds a content type the status does not document', () => {
    const problems = contract.check('GET', '/redis/kv/k', answer(404, notFound));
    expect(problems).toEqual([expect.stringContaining('content type "application/json"')]);
  });

  it('finds a required header that is missing', () => {
    const noId = answer(200, value, { 'x-request-id': undefined as unknown as string });
    delete (noId.headers as Record<string, unknown>)['x-request-id'];
    expect(contract.check('GET', '/redis/kv/k', noId)).toEqual([
      expect.stringContaining('required header X-Request-Id missing'),
    ]);
  });

  it('finds a header value its schema does not allow', () => {
    const odd = answer(200, value, { 'x-cache': 'MAYBE' });
    expect(contract.check('GET', '/redis/kv/k', odd)).toEqual([
      expect.stringContaining('header X-Cache: "MAYBE" does not fit its schema'),
    ]);
    const raw = answer(200, value, { 'x-ttl': '60' });
    expect(contract.check('GET', '/redis/kv/k', raw)).toEqual([]);
  });

  it('finds a method the documented path does not have', () => {
    expect(contract.check('PATCH', '/redis/kv/k', answer(404, notFound))).toEqual([
      expect.stringContaining('PATCH is not documented for /redis/kv/{key}'),
    ]);
  });

  it('prefers the literal route over a template, as the router does', () => {
    const values = { values: { a: '1' } };
    expect(contract.check('POST', '/redis/kv/_mget', answer(200, values))).toEqual([]);
  });

  it('leaves paths the document does not hold alone', () => {
    expect(contract.check('GET', '/no/such/route', answer(404, notFound))).toEqual([]);
  });
});

// The same check on answers read with fetch (installed for every test file by jest's setupFiles),
// against a plain HTTP server on loopback that answers what each case plants.
describe('the contract check of fetched answers (test/support/contract-fetch.ts)', () => {
  let server: Server;
  let base = '';
  let planted = { status: 200, body: '', headers: {} as Record<string, string> };

  beforeAll(async () => {
    server = createServer((_request, response) => {
      response.writeHead(planted.status, planted.headers).end(planted.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    planted = {
      status,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'x-request-id': 'r-1', ...headers },
    };
  };

  it('is installed, and passes an answer that keeps the contract', async () => {
    json(200, { key: 'k', value: 'v', ttl: -1 });
    const response = await fetch(`${base}/redis/kv/k`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ key: 'k', value: 'v', ttl: -1 });
  });

  it('rejects an undocumented status and a body off its schema', async () => {
    json(418, { teapot: true });
    await expect(fetch(`${base}/redis/kv/k`)).rejects.toThrow(/418: status not documented/);
    json(200, { key: 'k' });
    await expect(fetch(`${base}/redis/kv/k`)).rejects.toThrow(/OpenAPI contract broken by GET/);
  });

  it('leaves alone paths the document does not have, and requests marked x-contract: off', async () => {
    json(418, {});
    expect((await fetch(`${base}/token`)).status).toBe(418);
    const off = await fetch(`${base}/redis/kv/k`, { headers: { 'x-contract': 'off' } });
    expect(off.status).toBe(418);
  });
});

import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { Contract } from './contract';

/**
 * The contract check of TestApp.call, for answers read with fetch: over real sockets, from a
 * gateway process, through a fault proxy, or an SSE stream. jest's setupFiles install it in
 * every test file (contract-fetch.setup.ts). An answer from a loopback address to a path the
 * document has is checked before fetch resolves, and a violation makes that fetch reject,
 * naming what is wrong. An SSE stream's body is never read: only its status and headers count.
 *
 * A request with the header `x-contract: off` is not checked (and the header is not sent): for
 * a caller that judges the answer against the document itself, as the fuzz does for URLs that
 * left their path template.
 */
type FetchInput = Parameters<typeof fetch>[0];

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const OFF = 'x-contract';
const INSTALLED = Symbol.for('redis-gateway.contract-fetch');

export function installFetchContract(): void {
  const original = globalThis.fetch as typeof fetch & { [INSTALLED]?: true };
  if (original[INSTALLED]) {
    return;
  }
  const contract = Contract.committed();
  const checked = async (input: FetchInput, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
    if (headers.get(OFF) === 'off') {
      headers.delete(OFF);
      return original(input, { ...init, headers });
    }
    const response = await original(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    const path = url.pathname + url.search;
    if (!LOOPBACK.has(url.hostname) || !contract.covers(path)) {
      return response;
    }
    const method = (
      init?.method ?? (input instanceof Request ? input.method : 'GET')
    ).toUpperCase();
    const problems = contract.check(
      method as InjectOptions['method'],
      path,
      await asInjected(response),
    );
    if (problems.length > 0) {
      throw new Error(`OpenAPI contract broken by ${method} ${path}:\n${problems.join('\n')}`);
    }
    return response;
  };
  globalThis.fetch = Object.assign(checked, { [INSTALLED]: true as const });
}

/** The parts of an injected answer the check reads, from a fetched one (its body left unread). */
async function asInjected(response: Response): Promise<LightMyRequestResponse> {
  const contentType = response.headers.get('content-type') ?? '';
  const raw = contentType.startsWith('text/event-stream')
    ? Buffer.alloc(0)
    : Buffer.from(await response.clone().arrayBuffer());
  return {
    statusCode: response.status,
    headers: Object.fromEntries(response.headers),
    payload: raw.toString('utf8'),
    rawPayload: raw,
  } as unknown as LightMyRequestResponse;
}

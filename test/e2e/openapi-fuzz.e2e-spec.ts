import { readFileSync } from 'node:fs';
import * as fc from 'fast-check';
import { OPENAPI_FILE } from '../../src/openapi/openapi';
import { TestApp, type Response } from '../support/app';
import { report } from '../support/figures';
import { RedisServer } from '../support/redis';

/**
 * A property-based fuzz of every /redis operation, driven by the committed OpenAPI document:
 * requests are built from each operation's parameters and request schema (valid shapes,
 * mutated ones and hostile ones), and every answer must be one the document promises. A
 * client generated from the document trusts exactly that promise: any other status is a bug in
 * the document or in the gateway.
 *
 * Runs: FUZZ_RUNS per operation (small by default so the file stays well under a minute);
 * fast-check prints the seed and the shrunk request of a failure, and FUZZ_SEED replays it.
 * FUZZ_REPORT=1 prints every undocumented answer seen (with a sample request), the statuses each
 * operation answered, and why requests built from valid parts were refused.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 25);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

// ---------------------------------------------------------------------------------------------
// The document

interface Schema {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: boolean | Schema;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: Schema;
}

interface DocumentOperation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<
    string,
    { content?: Record<string, unknown>; headers?: Record<string, { required?: boolean }> }
  >;
}

interface Document {
  paths: Record<string, Record<string, DocumentOperation>>;
  components: { schemas: Record<string, Schema> };
}

interface Operation {
  id: string;
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';
  path: string;
  parameters: Parameter[];
  body?: DocumentOperation['requestBody'];
  responses: DocumentOperation['responses'];
  /** An SSE stream: sent over a real socket and aborted once the headers are in. */
  sse: boolean;
}

const DOCUMENT = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** Every operation under /redis, in document order. */
function redisOperations(document: Document): Operation[] {
  return Object.entries(document.paths)
    .filter(([path]) => path.startsWith('/redis/'))
    .flatMap(([path, item]) =>
      METHODS.filter((method) => item[method]).map((method) => {
        const operation = item[method];
        const ok = Object.entries(operation.responses).find(([status]) => status.startsWith('2'));
        return {
          id: operation.operationId,
          method: method.toUpperCase() as Operation['method'],
          path,
          parameters: operation.parameters ?? [],
          body: operation.requestBody,
          responses: operation.responses,
          sse: Object.keys(ok?.[1].content ?? {}).includes('text/event-stream'),
        };
      }),
    );
}

const OPERATIONS = redisOperations(DOCUMENT);

/** A schema with its $ref (into components.schemas) followed. */
function resolved(schema: Schema): Schema {
  if (!schema.$ref) {
    return schema;
  }
  const name = schema.$ref.replace('#/components/schemas/', '');
  const target = DOCUMENT.components.schemas[name];
  if (!target) {
    throw new Error(`unresolvable $ref ${schema.$ref}`);
  }
  return resolved(target);
}

/** The documented response for a status: exact, then a range (4XX), then default. */
function documentedResponse(operation: Operation, status: number) {
  const { responses } = operation;
  return responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default;
}

// ---------------------------------------------------------------------------------------------
// Values from schemas

/**
 * Names drawn from a small pool most of the time, so that requests meet the keys, fields,
 * groups and entries seeded before each operation (and each other's writes): that reaches the
 * 409 WRONG_TYPE, 404 and 200 answers, not only the validation ones.
 */
const NAME_POOL = ['fz:str', 'fz:hash', 'fz:stream', 'fz:list', 'fz:num', 'fz:new', 'name', 'g'];
const ENTRY_IDS = ['0-1', '1-1', '0-0', '$', '>', '*', '-', '+', '(1-1', '99999999999999-0'];

const poolName = fc.constantFrom(...NAME_POOL);
const freshName = fc.stringMatching(/^fz:[a-z0-9:_-]{1,12}$/);
const anyText = fc.string({ maxLength: 24, unit: 'grapheme' });

/** Numbers a parser or Redis may mishandle. */
const HOSTILE_NUMBERS = [
  -1,
  0,
  0.5,
  -0.0,
  1.5,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 63),
  2 ** 64,
  1e308,
  -1e308,
  Number.MIN_VALUE,
];

/** A value of another type than the schema asks for (or the right type, badly chosen). */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constantFrom(...HOSTILE_NUMBERS),
  fc.boolean(),
  anyText,
  fc.constantFrom('', '1e3', '0x10', 'NaN', 'Infinity', '-1', 'true', '__proto__'),
  fc.constant({}),
  fc.constant([]),
  fc.array(anyText, { maxLength: 3 }),
  fc.dictionary(anyText, anyText, { maxKeys: 2 }),
);

function numberFor(schema: Schema): fc.Arbitrary<number> {
  const min = schema.minimum ?? -1_000_000;
  const max = schema.maximum ?? Math.max(min, 0) + 1_000_000;
  const integer = fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
  if (schema.type === 'integer') {
    return integer;
  }
  return fc.oneof(integer, fc.double({ min, max, noNaN: true, noDefaultInfinity: true }));
}

function stringFor(schema: Schema): fc.Arbitrary<string> {
  if (schema.pattern) {
    return fc.stringMatching(new RegExp(schema.pattern));
  }
  return fc.oneof({ weight: 3, arbitrary: poolName }, freshName, fc.constantFrom(...ENTRY_IDS));
}

function objectFor(schema: Schema, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const additional = schema.additionalProperties;
  if (Object.keys(properties).length === 0 && typeof additional === 'object') {
    // A map (hash fields, stream entry fields): a few names of the pool and fresh ones.
    const names = fc.oneof(poolName, freshName, anyText);
    return fc.dictionary(names, validValue(additional, depth + 1), { minKeys: 0, maxKeys: 4 });
  }
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, property] of Object.entries(properties)) {
    record[name] = validValue(property, depth + 1);
  }
  return fc.record(record, { requiredKeys: schema.required ?? [] });
}

/** A value the schema accepts (as far as types, enums, bounds and patterns go). */
function validValue(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  const target = resolved(schema);
  if (target.enum) {
    return fc.constantFrom(...target.enum);
  }
  switch (target.type ?? '') {
    case 'string':
      return target.format === 'binary' ? anyText : stringFor(target);
    case 'number':
    case 'integer':
      return numberFor(target);
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(validValue(target.items ?? {}, depth + 1), { maxLength: 4 });
    case 'object':
      return depth > 3 ? fc.constant({}) : objectFor(target, depth);
    default:
      return anyText;
  }
}

/** One change to a valid object: a member of a wrong type, a required one gone, an extra one. */
type Mutation =
  | { kind: 'wrong'; name: string; value: unknown }
  | { kind: 'drop'; name: string }
  | { kind: 'extra'; name: string; value: unknown };

function mutationFor(schema: Schema): fc.Arbitrary<Mutation> {
  const names = Object.keys(schema.properties ?? {});
  const extraName = fc.constantFrom('extra', '__proto__', 'constructor', '', 'value ');
  const mutations: fc.Arbitrary<Mutation>[] = [
    fc.record({ kind: fc.constant('extra' as const), name: extraName, value: wrongValue }),
  ];
  if (names.length > 0) {
    const name = fc.constantFrom(...names);
    mutations.push(fc.record({ kind: fc.constant('wrong' as const), name, value: wrongValue }));
    mutations.push(fc.record({ kind: fc.constant('drop' as const), name }));
  }
  return fc.oneof(...mutations);
}

function mutate(value: Record<string, unknown>, mutation: Mutation): Record<string, unknown> {
  const copy = { ...value };
  if (mutation.kind === 'drop') {
    delete copy[mutation.name];
  } else {
    // defineProperty, so that a member named __proto__ is a member and not a prototype.
    Object.defineProperty(copy, mutation.name, {
      value: mutation.value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

/** A JSON body for a schema: mostly valid, often mutated, sometimes of another type entirely. */
function jsonBodyFor(schema: Schema): fc.Arbitrary<unknown> {
  const target = resolved(schema);
  const valid = validValue(target);
  if (target.type !== 'object') {
    return fc.oneof(valid, wrongValue);
  }
  const mutated = fc
    .tuple(valid as fc.Arbitrary<Record<string, unknown>>, mutationFor(target))
    .map(([value, mutation]) => mutate(value, mutation));
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 4, arbitrary: mutated },
    { weight: 1, arbitrary: wrongValue },
  );
}

// ---------------------------------------------------------------------------------------------
// Requests

/** Path segment texts that have broken gateways: sizes, encodings, globs, reserved names. */
const HOSTILE_NAMES = [
  '',
  '*',
  '?',
  '[a-z]',
  '__gw:',
  '__gw:locks:x',
  '..',
  '.',
  ' ',
  '/',
  '%',
  'k'.repeat(1025),
  'é'.repeat(513),
  '😀'.repeat(300),
  'a\u0000b',
  'a\r\nb',
  '\ud800',
  '\u202e',
  '{tag}x',
];

/** Already-encoded segments that no encoder produces: malformed, overlong, NUL. */
const RAW_SEGMENTS = ['%zz', '%C0%AF', '%00', '%E0%80%80', '%FF', '%2F', '%2e%2e'];

/**
 * Percent-encodes a segment byte by byte: encodeURIComponent throws on a lone surrogate, and
 * the gateway should see what a careless client sends (U+FFFD, from Buffer's encoder).
 */
function encodeSegment(text: string): string {
  return [...Buffer.from(text, 'utf8')]
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9_.~-]/.test(char)
        ? char
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

const validSegment = fc
  .oneof(poolName, freshName)
  .map((text) => ({ text, encoded: encodeSegment(text) }));

const pathSegment: fc.Arbitrary<{ text: string; encoded: string }> = fc.oneof(
  { weight: 6, arbitrary: validSegment },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.constantFrom(...HOSTILE_NAMES), fc.string({ maxLength: 40, unit: 'binary' }))
      .map((text) => ({ text, encoded: encodeSegment(text) })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...RAW_SEGMENTS).map((encoded) => ({ text: encoded, encoded })),
  },
);

/** A query value as text: valid for its schema, or a hostile text. */
function queryValue(schema: Schema): fc.Arbitrary<string> {
  const hostile = fc.oneof(
    fc.constantFrom('', '-1', '0', '1.5', '1e400', 'abc', 'true', 'maybe', '0x1f', ' 1'),
    fc.constant('9'.repeat(400)),
    anyText,
  );
  return fc.oneof({ weight: 3, arbitrary: validValue(schema).map(String) }, hostile);
}

function headerValue(): fc.Arbitrary<string> {
  // Header values must be visible ASCII, or inject refuses to send the request at all.
  return fc.oneof(
    fc.constantFrom('0-1', '1-1', 'abc', '', '9'.repeat(100)),
    fc.string({ maxLength: 64, unit: 'binary-ascii' }).map((s) => s.replace(/[^\x21-\x7e]/g, 'x')),
  );
}

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/octet-stream',
  'application/json; charset=utf-16',
  'application/problem+json',
  'multipart/form-data; boundary=x',
];

interface Body {
  contentType?: string;
  payload: string | Buffer;
}

/**
 * Bodies past the gateway's bounds (server.bodyLimitBytes, 2 MiB by default, and
 * limits.maxJsonValues, 20,000): built once, they are large. Only their size is described.
 */
const OVERSIZED: Body[] = [
  { contentType: 'application/json', payload: JSON.stringify({ value: 'x'.repeat(2_200_000) }) },
  { contentType: 'application/json', payload: JSON.stringify({ keys: Array(20_001).fill('k') }) },
];

/** A body for the operation: JSON from its schema, raw octets, or something it does not take. */
function bodyFor(operation: Operation): fc.Arbitrary<Body | undefined> {
  const content = operation.body?.content ?? {};
  const json = content['application/json'];
  const choices: fc.Arbitrary<Body | undefined>[] = [
    fc.constant(undefined),
    fc.constant({ contentType: 'application/json', payload: '' }),
    fc.constantFrom('{"a":', '[', 'nul', '{"a":1}{"b":2}').map((payload) => ({
      contentType: 'application/json',
      payload,
    })),
    fc
      .tuple(fc.constantFrom(...CONTENT_TYPES), fc.constantFrom('{"value":"x"}', 'value=x', 'x'))
      .map(([contentType, payload]) => ({ contentType, payload })),
    fc.constant({ payload: '{"value":"x"}' }),
    fc.constantFrom(...OVERSIZED),
  ];
  if (json) {
    const valid = jsonBodyFor(json.schema).map((value) => ({
      contentType: 'application/json',
      payload: JSON.stringify(value) ?? 'null',
    }));
    choices.unshift(valid, valid, valid, valid, valid, valid);
  }
  if (content['application/octet-stream']) {
    choices.push(
      fc
        .uint8Array({ maxLength: 64 })
        .map((bytes) => ({ contentType: 'application/octet-stream', payload: Buffer.from(bytes) })),
    );
  }
  return fc.oneof(...choices);
}

/** A prepared token by its scopes, a token that is no JWT, or no Authorization header. */
type TokenName = 'both' | 'read' | 'write' | 'none' | 'garbage' | 'absent';

function bearer(t: TestApp, token: TokenName): string | undefined {
  if (token === 'absent') {
    return undefined;
  }
  return token === 'garbage' ? 'not.a.jwt' : t.tokens[token];
}

interface FuzzRequest {
  url: string;
  /** The path left the operation's template (see leavesTemplate): another route may answer. */
  offTemplate: boolean;
  /** Built from valid parts only (see requestFor). */
  valid: boolean;
  headers: Record<string, string>;
  token: TokenName;
  body?: Body;
}

/**
 * The query: each parameter absent or valid; when hostile, also a hostile text, sometimes given
 * twice (the parser then hands the route an array where it expects a text) or joined by an
 * unknown parameter.
 */
function queryFor(operation: Operation, hostile: boolean): fc.Arbitrary<string> {
  const entries = operation.parameters
    .filter((parameter) => parameter.in === 'query')
    .map((parameter) => {
      const value = hostile
        ? queryValue(parameter.schema)
        : validValue(parameter.schema).map(String);
      return fc
        .option(fc.array(value, { minLength: 1, maxLength: hostile ? 2 : 1 }), { freq: 2 })
        .map((values) => (values ?? []).map((text) => [parameter.name, text]));
    });
  const unknown = fc.tuple(fc.constantFrom('extra', 'ttl', '__proto__'), fc.constantFrom('1', ''));
  const extra = fc
    .option(unknown, { freq: 4 })
    .map((pair) => (pair === null || !hostile ? [] : [pair]));
  return fc.tuple(...entries, extra).map((lists) => {
    const pairs = lists.flat() as [string, string][];
    return pairs.length === 0 ? '' : `?${new URLSearchParams(pairs).toString()}`;
  });
}

/**
 * Segments after which the URL is no instance of the path template any more: an empty one
 * (the router matches no empty parameter) and dot segments (URL parsers, inject's as well as
 * fetch's, remove them before the request leaves).
 */
function leavesTemplate(encoded: string): boolean {
  return ['', '.', '..', '%2e%2e'].includes(encoded.toLowerCase());
}

function pathFor(
  operation: Operation,
  hostile: boolean,
): fc.Arbitrary<{ path: string; offTemplate: boolean }> {
  const names = operation.parameters.filter((p) => p.in === 'path').map((p) => p.name);
  const segment = hostile ? pathSegment : validSegment;
  return fc.tuple(...names.map(() => segment)).map((segments) => ({
    path: names.reduce(
      (path, name, index) => path.replace(`{${name}}`, segments[index].encoded),
      operation.path,
    ),
    offTemplate: segments.some((segment) => leavesTemplate(segment.encoded)),
  }));
}

function headersFor(operation: Operation, hostile: boolean): fc.Arbitrary<Record<string, string>> {
  const declared = operation.parameters.filter((parameter) => parameter.in === 'header');
  const entries = declared.map((parameter) =>
    fc
      .option(headerValue(), { freq: parameter.required ? 6 : 2 })
      .map((value) => (value === null ? [] : [[parameter.name.toLowerCase(), value]])),
  );
  const accept = fc
    .option(fc.constantFrom('*/*', 'application/json', 'application/octet-stream', 'text/html'), {
      freq: 3,
    })
    .map((value) => (value === null || !hostile ? [] : [['accept', value]]));
  return fc
    .tuple(...entries, accept)
    .map((lists) => Object.fromEntries(lists.flat() as [string, string][]));
}

/** A valid JSON body from the schema, or none when the operation takes none. */
function validBodyFor(operation: Operation): fc.Arbitrary<Body | undefined> {
  const json = operation.body?.content['application/json'];
  if (!json) {
    return fc.constant(undefined);
  }
  return validValue(json.schema).map((value) => ({
    contentType: 'application/json',
    payload: JSON.stringify(value),
  }));
}

const anyToken = fc.oneof(
  { weight: 8, arbitrary: fc.constant<TokenName>('both') },
  { weight: 3, arbitrary: fc.constantFrom<TokenName>('read', 'write', 'none') },
  { weight: 1, arbitrary: fc.constantFrom<TokenName>('garbage', 'absent') },
);

/**
 * A third of the requests are valid as far as the document can tell (names of the pool, valid
 * query values and bodies, both scopes), so that the fuzz reaches past validation into Redis;
 * the others are hostile in any part.
 */
function requestFor(operation: Operation): fc.Arbitrary<FuzzRequest> {
  const build = (hostile: boolean) =>
    fc
      .record({
        path: pathFor(operation, hostile),
        query: queryFor(operation, hostile),
        headers: headersFor(operation, hostile),
        token: hostile ? anyToken : fc.constant<TokenName>('both'),
        body: hostile ? bodyFor(operation) : validBodyFor(operation),
      })
      .map(({ path, query, ...rest }) => ({
        url: path.path + query,
        offTemplate: path.offTemplate,
        valid: !hostile,
        ...rest,
      }));
  return fc.oneof({ weight: 1, arbitrary: build(false) }, { weight: 2, arbitrary: build(true) });
}

// ---------------------------------------------------------------------------------------------
// Sending and judging

interface Answer {
  status: number;
  contentType: string;
  /** Header names in lower case. */
  headers: Set<string>;
  body: string;
}

/** Through inject (no socket): the request exactly as built, headers and raw payload. */
async function inject(t: TestApp, operation: Operation, request: FuzzRequest): Promise<Answer> {
  const headers: Record<string, string> = { ...request.headers };
  if (request.body?.contentType) {
    headers['content-type'] = request.body.contentType;
  }
  const response: Response = await t.call(operation.method, request.url, {
    token: bearer(t, request.token),
    headers,
    body: request.body?.payload,
    // A URL off its template ('.', '..') is judged below by looser rules than the contract's.
    ...(request.offTemplate && { contract: false as const }),
  });
  return {
    status: response.statusCode,
    contentType: String(response.headers['content-type'] ?? ''),
    headers: new Set(Object.keys(response.headers).map((name) => name.toLowerCase())),
    body: response.body,
  };
}

/**
 * Over a real socket, for SSE: a stream that opens never ends, so the answer is its status and
 * headers, and the body is read only when it is not a stream.
 */
function authorization(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

async function stream(t: TestApp, operation: Operation, request: FuzzRequest): Promise<Answer> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  try {
    const response = await fetch(t.baseUrl + request.url, {
      method: operation.method,
      headers: {
        ...request.headers,
        ...authorization(bearer(t, request.token)),
        // A URL off its template is judged by the fuzz's own looser rule (contract-fetch.ts).
        ...(request.offTemplate && { 'x-contract': 'off' }),
      },
      signal: controller.signal,
    });
    const contentType = response.headers.get('content-type') ?? '';
    const body = contentType.startsWith('text/event-stream') ? '' : await response.text();
    return {
      status: response.status,
      contentType,
      headers: new Set(response.headers.keys()),
      body,
    };
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

function send(t: TestApp, operation: Operation, request: FuzzRequest): Promise<Answer> {
  return operation.sse ? stream(t, operation, request) : inject(t, operation, request);
}

/** The request as a failure message shows it: the token by its scopes, long texts cut. */
function describeRequest(operation: Operation, request: FuzzRequest): string {
  const cut = (text: string) =>
    text.length > 200 ? `${text.slice(0, 200)}…(${text.length})` : text;
  const payload = request.body?.payload;
  return JSON.stringify({
    method: operation.method,
    url: cut(request.url),
    token: request.token,
    headers: request.headers,
    contentType: request.body?.contentType,
    body:
      payload === undefined
        ? undefined
        : cut(Buffer.isBuffer(payload) ? `<${payload.length} octets>` : payload),
  });
}

interface Finding {
  operation: string;
  status: number;
  request: string;
  answer: string;
}

/** Every undocumented answer and every 5xx seen (first sample each), for FUZZ_REPORT. */
const findings = new Map<string, Finding>();

/**
 * Why requests built from valid parts were refused with 400, by operation and message (digits
 * folded): a constraint the schemas do not say (an integer where they say number, a bound, an
 * id syntax, options that exclude each other). Reported only: some are prose in the document.
 */
const refusedValid: Record<string, number> = {};

function noteRefusal(operation: Operation, answer: Answer): void {
  try {
    const problem = JSON.parse(answer.body) as { errors?: { message: string }[]; detail?: string };
    const messages = problem.errors?.map((error) => error.message) ?? [String(problem.detail)];
    for (const message of messages) {
      const key = `${operation.id}: ${message.replace(/\d+/g, 'N')}`;
      refusedValid[key] = (refusedValid[key] ?? 0) + 1;
    }
  } catch {
    // Not JSON: the problem-body assertion reports it.
  }
}

/** How often each operation answered each status: whether the fuzz gets past validation. */
const statuses: Record<string, Record<number, number>> = {};

function count(operation: Operation, status: number): void {
  const seen = (statuses[operation.id] ??= {});
  seen[status] = (seen[status] ?? 0) + 1;
}

function record(operation: Operation, request: FuzzRequest, answer: Answer): void {
  const key = `${operation.id} ${answer.status}`;
  if (!findings.has(key)) {
    findings.set(key, {
      operation: operation.id,
      status: answer.status,
      request: describeRequest(operation, request),
      answer: answer.body.slice(0, 300),
    });
  }
}

/** The operations of a method: any of them may answer a URL that left its template. */
function sameMethod(operation: Operation): Operation[] {
  return OPERATIONS.filter((other) => other.method === operation.method);
}

/**
 * Whether the document lists the status for the request: the operation's own, or, for a URL
 * that left the template, a status of any operation of the method, or 404 (no route) or 405.
 */
function isDocumented(operation: Operation, request: FuzzRequest, status: number): boolean {
  if (documentedResponse(operation, status) !== undefined) {
    return true;
  }
  return (
    request.offTemplate &&
    ([404, 405].includes(status) ||
      sameMethod(operation).some((other) => documentedResponse(other, status) !== undefined))
  );
}

/** The media types the answer may have: those documented for it, else JSON or a problem. */
function expectedMediaTypes(operation: Operation, request: FuzzRequest, status: number): string[] {
  const documented = request.offTemplate ? undefined : documentedResponse(operation, status);
  const types = Object.keys(documented?.content ?? {});
  return types.length > 0 ? types : ['application/json', 'application/problem+json'];
}

/** The answer's problems, empty when it keeps the document's promise. */
function violations(operation: Operation, request: FuzzRequest, answer: Answer): string[] {
  const problems: string[] = [];
  const { status, contentType, body } = answer;
  // 503 and 504 are documented, but only for an unhealthy Redis: this one is healthy.
  if (status >= 500) {
    problems.push(`server error ${status}`);
  }
  if (!isDocumented(operation, request, status)) {
    problems.push(`status ${status} is not documented for ${operation.id}`);
  }
  const mediaType = contentType.split(';')[0].trim();
  if (status === 204 && body.length > 0) {
    problems.push('a 204 with a body');
  }
  // An SSE stream's body is never read, but its content type counts.
  if (body.length > 0 || (operation.sse && status === 200)) {
    const expected = expectedMediaTypes(operation, request, status);
    if (!expected.includes(mediaType)) {
      problems.push(
        `content type "${contentType}" where the document says ${expected.join(' or ')}`,
      );
    }
  }
  if (status >= 400) {
    problems.push(...problemBodyViolations(status, mediaType, body));
  }
  problems.push(...missingHeaders(operation, request, answer));
  return problems;
}

/** The response headers the document makes required for this answer, and it lacks. */
function missingHeaders(operation: Operation, request: FuzzRequest, answer: Answer): string[] {
  const documented = request.offTemplate ? undefined : documentedResponse(operation, answer.status);
  return Object.entries(documented?.headers ?? {})
    .filter(([name, header]) => header.required && !answer.headers.has(name.toLowerCase()))
    .map(([name]) => `no ${name} header, which the document makes required`);
}

const ERROR_CODES = new Set(resolved({ $ref: '#/components/schemas/ErrorCode' }).enum);

/** An error is problem+json with the HTTP status and one of the document's error codes. */
function problemBodyViolations(status: number, mediaType: string, body: string): string[] {
  if (mediaType !== 'application/problem+json') {
    return [`an error as "${mediaType}", not application/problem+json`];
  }
  try {
    const problem = JSON.parse(body) as { status?: unknown; code?: unknown };
    if (problem.status !== status || !ERROR_CODES.has(problem.code)) {
      return [
        `a problem body with status ${String(problem.status)} and code ${String(problem.code)}`,
      ];
    }
    return [];
  } catch {
    return ['a problem body that is not JSON'];
  }
}

// ---------------------------------------------------------------------------------------------
// State

/**
 * Keys of every type under the pool's names, a consumer group with a pending entry on the
 * stream: so that fuzzed requests meet existing data of the right and the wrong type.
 */
async function seed(t: TestApp): Promise<void> {
  const key = (name: string) => t.prefix + name;
  await t.redis
    .multi()
    .set(key('fz:str'), 'text')
    .set(key('fz:num'), '41')
    .del(key('fz:hash'), key('fz:stream'), key('fz:list'))
    .hset(key('fz:hash'), 'name', 'Ada', 'g', '7')
    .rpush(key('fz:list'), 'a', 'b')
    .xadd(key('fz:stream'), '1-1', 'name', 'Ada')
    .xgroup('CREATE', key('fz:stream'), 'g', '0')
    .xreadgroup('GROUP', 'g', 'name', 'COUNT', 1, 'STREAMS', key('fz:stream'), '>')
    .exec();
}

/** Every key on the server: the server is this file's own, so all of them are the app's. */
async function allKeys(redis: TestApp['redis']): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, page] = await redis.scan(cursor, 'COUNT', 1000);
    keys.push(...page);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

// ---------------------------------------------------------------------------------------------

describe('OpenAPI request fuzz', () => {
  let server: RedisServer;
  let t: TestApp;

  beforeAll(async () => {
    // A server of its own: the leak check at the end may then demand that every key on it is
    // under the prefix, which a Redis shared with other suites could not.
    server = await RedisServer.start();
    t = await TestApp.create({
      redisUrl: server.url,
      listen: true,
      // Blocking reads and lock waits ask for up to maxBlockMs: keep a fuzzed one short.
      config: {
        limits: { maxBlockMs: 200 },
        // The server is fresh and without persistence, so the delayed restart would (rightly)
        // refuse every lock for minutes: the lock routes would answer nothing but 503.
        locks: { delayedRestartMs: 0 },
      },
    });
  });

  afterAll(async () => {
    report(
      'openapi-fuzz findings',
      { findings: [...findings.values()], statuses, refusedValid },
      'FUZZ_REPORT',
    );
    await t?.close();
    await server?.stop();
  });

  it('covers every /redis operation of the document', () => {
    expect(OPERATIONS.length).toBeGreaterThan(30);
    expect(
      OPERATIONS.filter((operation) => operation.sse)
        .map((o) => o.id)
        .sort(),
    ).toEqual(['PubSub_channel', 'PubSub_pattern', 'Streams_events']);
  });

  it.each(OPERATIONS.map((operation) => [operation.id, operation] as const))(
    '%s answers only what the document lists, never 5xx',
    async (_id, operation) => {
      await seed(t);
      await fc.assert(
        fc.asyncProperty(requestFor(operation), async (request) => {
          const answer = await send(t, operation, request);
          count(operation, answer.status);
          if (request.valid && answer.status === 400) {
            noteRefusal(operation, answer);
          }
          if (answer.status >= 500 || !isDocumented(operation, request, answer.status)) {
            record(operation, request, answer);
          }
          const problems = violations(operation, request, answer);
          if (problems.length > 0) {
            throw new Error(
              `${problems.join('; ')}\nrequest: ${describeRequest(operation, request)}\n` +
                `answer: ${answer.status} ${answer.contentType} ${answer.body.slice(0, 500)}`,
            );
          }
        }),
        { numRuns: RUNS, seed: SEED },
      );
    },
    30000,
  );

  it('wrote nothing outside the prefix', async () => {
    const keys = await allKeys(t.redis);
    expect(keys.filter((key) => !key.startsWith(t.prefix))).toEqual([]);
    // The fuzz did reach Redis: the seeded keys and some of its own writes are there.
    expect(keys.length).toBeGreaterThan(5);
  });
});

import type {
  OpenAPIObject,
  HeaderObject,
  OperationObject,
  ParameterObject,
  ReferenceObject,
  ResponseObject,
  SchemaObject,
} from '@nestjs/swagger';
import {
  PROBLEM_DESCRIPTIONS,
  RESPONSE_HEADERS_EXTENSION,
  type OperationHeader,
  type ProblemStatus,
} from '../errors/api-problems.decorator';
import { REQUEST_ID } from '../observability/logging.module';
import { ENTRY_ID } from '../streams/dto/streams-requests.dto';

/*
 * Rules the server applies to every route, written into the document once here instead of on
 * each handler: the statuses the request pipeline can answer on any authenticated route, the
 * headers every response carries, the forms of raw bodies and event streams, and the request
 * schemas' strictness. The decorators say what is particular to a route; this says the rest.
 */

const PROBLEM_JSON = 'application/problem+json';
const JSON_TYPE = 'application/json';
const OCTETS = 'application/octet-stream';
const EVENT_STREAM = 'text/event-stream';
const PROBLEM_REF = '#/components/schemas/ProblemDto';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

type Schema = SchemaObject | ReferenceObject;

/** The limits the document states (from the configuration the app runs with). */
export interface DocumentLimits {
  /** limits.maxKeyBytes: every name's byte bound, so its length bound in characters too. */
  maxNameBytes: number;
  /** limits.maxBatchKeys: the most names one request may carry. */
  maxBatch: number;
}

/** Request fields that hold one name (names.ts: 1 to limits.maxKeyBytes bytes). */
const NAME_FIELDS: Record<string, readonly string[]> = {
  CreateValueDto: ['key'],
  CreateGroupDto: ['group'],
  GroupReadDto: ['consumer'],
  ClaimDto: ['consumer'],
};

/** Request fields that hold a batch (1 to limits.maxBatchKeys items; names but for ids). */
const BATCH_FIELDS: Record<string, readonly string[]> = {
  KeysDto: ['keys'],
  MgetDto: ['keys'],
  HashMgetDto: ['fields'],
  AckDto: ['ids'],
};

/** Reusable response headers, referenced from each response that carries one. */
const HEADERS: Record<string, HeaderObject> = {
  RequestId: {
    description: "The request's id (the caller's X-Request-Id when valid, else a new one)",
    required: true,
    schema: { type: 'string', pattern: REQUEST_ID.source },
  },
  RetryAfter: {
    description: 'Seconds to wait before trying again',
    required: true,
    schema: { type: 'integer', minimum: 0 },
  },
  RetryAfterWhenRetryable: {
    description: 'With the problem form of the answer: seconds to wait before trying again',
    schema: { type: 'integer', minimum: 0 },
  },
  WwwAuthenticate: {
    description: 'The Bearer challenge (RFC 6750), with `error="invalid_token"` for a bad token',
    required: true,
    schema: { type: 'string' },
  },
  InsufficientScope: {
    description: 'With `INSUFFICIENT_SCOPE`: the Bearer challenge naming the scope needed',
    schema: { type: 'string' },
  },
  TTL: {
    description:
      'With the raw bytes (Accept: application/octet-stream): seconds until the key expires; -1 when it has no expiry',
    schema: { type: 'integer', minimum: -1 },
  },
  Cache: {
    description: 'With the near-cache on: HIT when answered from memory, MISS from Redis',
    schema: { type: 'string', enum: ['HIT', 'MISS'] },
  },
};

/** The component of each header a handler documents with ApiResponseHeaders. */
const OPERATION_HEADERS: Record<OperationHeader, string> = {
  'X-TTL': 'TTL',
  'X-Cache': 'Cache',
  'Retry-After': 'RetryAfter',
};

const headerRef = (name: string): ReferenceObject => ({ $ref: `#/components/headers/${name}` });

const isRef = (value: object): value is ReferenceObject => '$ref' in value;

function responsesOf(operation: OperationObject): [string, ResponseObject][] {
  return Object.entries(operation.responses).flatMap(([status, response]) =>
    response && !isRef(response) ? [[status, response] as [string, ResponseObject]] : [],
  );
}

/** Adds a problem+json response unless the operation documents that status already. */
function ensureProblem(operation: OperationObject, status: ProblemStatus): void {
  const existing = operation.responses[status] as ResponseObject | undefined;
  const content = { schema: { $ref: PROBLEM_REF } };
  if (!existing) {
    operation.responses[status] = {
      description: PROBLEM_DESCRIPTIONS[status],
      content: { [PROBLEM_JSON]: content },
    };
  } else if (!existing.content?.[PROBLEM_JSON]) {
    // A status answered with a body of its own (the status report's 503) can also be a problem.
    existing.content = { ...existing.content, [PROBLEM_JSON]: content };
  }
}

/**
 * The statuses the request pipeline answers before any handler runs: on an authenticated route
 * the rate limits (429) and an unreachable token issuer (503); where a body is read, the body
 * limit (413); where it is parsed as JSON, any other content type (415). Fastify reads the body
 * of every method but GET and HEAD, so a DELETE or a body-less POST sent a body meets both too
 * (an empty body, or JSON, is then read and ignored).
 */
function addPipelineProblems(method: string, operation: OperationObject): void {
  if (operation.security && operation.security.length > 0) {
    ensureProblem(operation, 429);
    ensureProblem(operation, 503);
  }
  const body = operation.requestBody;
  if (body && !isRef(body)) {
    ensureProblem(operation, 413);
    if (body.content[JSON_TYPE]) {
      ensureProblem(operation, 415);
    }
  } else if (method !== 'get' && method !== 'head') {
    ensureProblem(operation, 413);
    ensureProblem(operation, 415);
  }
  operation.responses = Object.fromEntries(
    Object.entries(operation.responses).sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** Raw bodies, sent or answered, are bytes, whatever DTO a decorator gave their status. */
function binaryOctets(operation: OperationObject): void {
  const binary: SchemaObject = { type: 'string', format: 'binary' };
  const body = operation.requestBody;
  if (body && !isRef(body) && body.content[OCTETS]) {
    body.content[OCTETS] = { schema: binary };
  }
  for (const [, response] of responsesOf(operation)) {
    if (response.content?.[OCTETS]) {
      response.content[OCTETS] = { schema: binary };
    }
  }
}

/** An event stream's 200 is only the stream: text, never a JSON body. */
function eventStreams(operation: OperationObject): void {
  const ok = operation.responses['200'] as ResponseObject | undefined;
  if (ok?.content?.[EVENT_STREAM]) {
    ok.content = { [EVENT_STREAM]: { schema: { type: 'string' } } };
  }
}

/** Path parameters are names (1 to limits.maxKeyBytes bytes), except a stream entry id. */
function pathParameters(operation: OperationObject, limits: DocumentLimits): void {
  for (const parameter of operation.parameters ?? []) {
    if (isRef(parameter) || parameter.in !== 'path') {
      continue;
    }
    const param: ParameterObject = parameter;
    param.schema =
      param.name === 'id'
        ? { type: 'string', pattern: ENTRY_ID.source }
        : { type: 'string', minLength: 1, maxLength: limits.maxNameBytes };
  }
}

/** The headers of one response: the request id always, and those its status implies. */
function statusHeaders(status: string, response: ResponseObject): Record<string, ReferenceObject> {
  const headers: Record<string, ReferenceObject> = { 'X-Request-Id': headerRef('RequestId') };
  const media = Object.keys(response.content ?? {});
  const problem = media.includes(PROBLEM_JSON);
  if (status === '401') {
    headers['WWW-Authenticate'] = headerRef('WwwAuthenticate');
  } else if (status === '403') {
    headers['WWW-Authenticate'] = headerRef('InsufficientScope');
  } else if ((status === '429' || status === '503') && problem) {
    // Every 429 and 503 problem invites a retry (isRetryable); a 503 that can also be a
    // readiness report has the header only in its problem form.
    headers['Retry-After'] = headerRef(
      media.length === 1 ? 'RetryAfter' : 'RetryAfterWhenRetryable',
    );
  }
  return headers;
}

function responseHeaders(operation: OperationObject): void {
  const extension = operation as unknown as Record<string, unknown>;
  const own = (extension[RESPONSE_HEADERS_EXTENSION] ?? {}) as Record<string, OperationHeader[]>;
  delete extension[RESPONSE_HEADERS_EXTENSION];
  for (const [status, response] of responsesOf(operation)) {
    const headers = statusHeaders(status, response);
    for (const header of own[status] ?? []) {
      headers[header] = headerRef(OPERATION_HEADERS[header]);
    }
    response.headers = { ...response.headers, ...headers };
  }
}

/** The component schemas a schema refers to, directly or through its members. */
function referencedSchemas(schema: Schema | undefined, found: Set<string>, all: OpenAPIObject) {
  if (!schema) {
    return;
  }
  if (isRef(schema)) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    if (!found.has(name)) {
      found.add(name);
      referencedSchemas(all.components?.schemas?.[name], found, all);
    }
    return;
  }
  for (const member of [
    ...Object.values(schema.properties ?? {}),
    ...(schema.items ? [schema.items] : []),
    ...(schema.allOf ?? []),
    ...(schema.oneOf ?? []),
    ...(schema.anyOf ?? []),
  ]) {
    referencedSchemas(member, found, all);
  }
}

/**
 * The validation pipe refuses fields a body DTO does not declare, so the request schemas say
 * so too (a generator then types them exactly). String maps keep their own additionalProperties.
 */
function closeRequestSchemas(document: OpenAPIObject): void {
  const names = new Set<string>();
  for (const [, operation] of operationsOf(document)) {
    const body = operation.requestBody;
    if (body && !isRef(body)) {
      referencedSchemas(body.content[JSON_TYPE]?.schema, names, document);
    }
  }
  for (const name of names) {
    const schema = document.components?.schemas?.[name];
    if (schema && !isRef(schema) && schema.type === 'object') {
      schema.additionalProperties = false;
    }
  }
}

/**
 * OpenAPI 3.1 has no `nullable` (the generator writes the 3.0 keyword): a null-able value is a
 * type list with "null", or a reference or null, so validators and generators read it alike.
 */
function nullableAsTypes(schema: SchemaObject): void {
  for (const [name, member] of Object.entries(schema.properties ?? {})) {
    if (isRef(member)) {
      continue;
    }
    if (member.nullable === true) {
      delete member.nullable;
      if (typeof member.type === 'string') {
        (member as { type: unknown }).type = [member.type, 'null'];
      } else if (member.allOf?.length === 1) {
        schema.properties![name] = { oneOf: [member.allOf[0], { type: 'null' }] };
        continue;
      }
    }
    nullableAsTypes(member);
  }
}

/** The name and batch bounds the service checks, on the request schemas that carry them. */
function nameBounds(document: OpenAPIObject, limits: DocumentLimits): void {
  const schemas = document.components?.schemas ?? {};
  const name = { minLength: 1, maxLength: limits.maxNameBytes };
  const property = (schema: string, field: string): SchemaObject | undefined => {
    const found = schemas[schema];
    const member = found && !isRef(found) ? found.properties?.[field] : undefined;
    return member && !isRef(member) ? member : undefined;
  };
  for (const [schema, fields] of Object.entries(NAME_FIELDS)) {
    for (const field of fields) {
      Object.assign(property(schema, field) ?? {}, name);
    }
  }
  for (const [schema, fields] of Object.entries(BATCH_FIELDS)) {
    for (const field of fields) {
      const batch = property(schema, field);
      if (batch) {
        Object.assign(batch, { minItems: 1, maxItems: limits.maxBatch });
        if (batch.items && !isRef(batch.items) && !batch.items.pattern) {
          Object.assign(batch.items, name);
        }
      }
    }
  }
}

function* operationsOf(document: OpenAPIObject): Generator<[string, OperationObject]> {
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation) {
        yield [method, operation];
      }
    }
  }
}

/** Applies the server-wide rules to a document the decorators produced; answers it. */
export function applyDocumentRules(document: OpenAPIObject, limits: DocumentLimits): OpenAPIObject {
  document.components = { ...document.components, headers: HEADERS };
  for (const [method, operation] of operationsOf(document)) {
    addPipelineProblems(method, operation);
    binaryOctets(operation);
    eventStreams(operation);
    pathParameters(operation, limits);
    responseHeaders(operation);
  }
  closeRequestSchemas(document);
  nameBounds(document, limits);
  for (const schema of Object.values(document.components.schemas ?? {})) {
    if (!isRef(schema)) {
      nullableAsTypes(schema);
    }
  }
  return document;
}

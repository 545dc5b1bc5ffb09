import { applyDecorators } from '@nestjs/common';
import { ApiExtension, ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { ProblemDto } from './problem.dto';

export type ProblemStatus = 400 | 404 | 406 | 409 | 413 | 415 | 429 | 503 | 504 | 507;

/** A problem status with its default description, or with a description of its own. */
export type ProblemEntry = ProblemStatus | [ProblemStatus, string];

export const PROBLEM_DESCRIPTIONS: Record<ProblemStatus, string> = {
  400: 'Invalid name, body or query (`VALIDATION_FAILED`, with `errors`)',
  404: 'Does not exist (`NOT_FOUND`)',
  406: 'The stored value is not UTF-8 text; read it with encoding=base64 (`NOT_UTF8`)',
  409: 'Conflict',
  413: 'Body over server.bodyLimitBytes or value over limits.maxValueBytes (`PAYLOAD_TOO_LARGE`), or an answer over limits.maxResponseBytes (`RESPONSE_TOO_LARGE`)',
  415: 'Unsupported content type (`UNSUPPORTED_MEDIA_TYPE`)',
  429: 'A rate limit or quota of the caller is spent (`RATE_LIMITED`, `QUOTA_EXCEEDED`), with Retry-After',
  503: 'Redis unreachable, loading or read-only (`REDIS_UNAVAILABLE`, `REDIS_READONLY`), or the token issuer unreachable (`AUTH_UNAVAILABLE`); with Retry-After',
  504: 'Redis did not answer within redis.commandTimeoutMs (`REDIS_TIMEOUT`; for a write `OUTCOME_UNKNOWN`)',
  507: 'Redis is out of memory (`REDIS_OOM`)',
};

/** A read whose answer is bounded by limits.maxResponseBytes. */
export const ANSWER_TOO_LARGE: [413, string] = [
  413,
  'The answer would be over limits.maxResponseBytes (`RESPONSE_TOO_LARGE`)',
];

/** One problem+json response in OpenAPI. */
export const ApiProblem = (status: number, description: string): MethodDecorator & ClassDecorator =>
  applyDecorators(
    ApiExtraModels(ProblemDto),
    ApiResponse({
      status,
      description,
      content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDto) } } },
    }),
  );

/**
 * Documents problem+json error responses; a description overrides the default text, and a
 * status given twice is documented once (the last description wins).
 */
export const ApiProblems = (...entries: ProblemEntry[]): MethodDecorator & ClassDecorator => {
  const described = new Map<ProblemStatus, string>();
  for (const entry of entries) {
    const [status, description] = Array.isArray(entry)
      ? entry
      : [entry, PROBLEM_DESCRIPTIONS[entry]];
    described.set(status, description);
  }
  return applyDecorators(
    ...[...described].map(([status, description]) => ApiProblem(status, description)),
  );
};

/** The errors every Redis-backed read can answer. */
export const ApiReadProblems = (): MethodDecorator & ClassDecorator => ApiProblems(400, 503, 504);

/** The errors every Redis-backed write can answer. */
export const ApiWriteProblems = (): MethodDecorator & ClassDecorator =>
  ApiProblems(400, 503, 504, 507);

/** The operation extension that lists response headers beyond those every response has. */
export const RESPONSE_HEADERS_EXTENSION = 'x-response-headers';

/** Response headers an operation adds itself (the document's components.headers name them). */
export type OperationHeader = 'X-TTL' | 'X-Cache' | 'Retry-After';

/**
 * Documents headers a handler sets on its answers, by status. The document step turns the
 * extension into header references (see openapi/document-rules.ts); given once per operation.
 */
export const ApiResponseHeaders = (
  headers: Partial<Record<number, OperationHeader[]>>,
): MethodDecorator => ApiExtension(RESPONSE_HEADERS_EXTENSION, headers);

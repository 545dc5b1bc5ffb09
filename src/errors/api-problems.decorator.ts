import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { ProblemDto } from './problem.dto';

type ProblemStatus = 400 | 404 | 406 | 409 | 413 | 415 | 429 | 503 | 504 | 507;

const DEFAULTS: Record<ProblemStatus, string> = {
  400: 'Invalid name, body or query (`VALIDATION_FAILED`, with `errors`)',
  404: 'Does not exist (`NOT_FOUND`)',
  406: 'The stored value is not UTF-8 text; read it with encoding=base64 (`NOT_UTF8`)',
  409: 'Conflict',
  413: 'Body over server.bodyLimitBytes or value over limits.maxValueBytes (`PAYLOAD_TOO_LARGE`)',
  415: 'Unsupported content type (`UNSUPPORTED_MEDIA_TYPE`)',
  429: 'Rate limit spent (`RATE_LIMITED`), with Retry-After',
  503: 'Redis unreachable, loading or read-only (`REDIS_UNAVAILABLE`, `REDIS_READONLY`), with Retry-After',
  504: 'Redis did not answer within redis.commandTimeoutMs (`REDIS_TIMEOUT`; for a write `OUTCOME_UNKNOWN`)',
  507: 'Redis is out of memory (`REDIS_OOM`)',
};

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

/** Documents problem+json error responses; a description overrides the default text. */
export const ApiProblems = (
  ...entries: (ProblemStatus | [ProblemStatus, string])[]
): MethodDecorator & ClassDecorator =>
  applyDecorators(
    ...entries.map((entry) => {
      const [status, description] = Array.isArray(entry) ? entry : [entry, DEFAULTS[entry]];
      return ApiProblem(status, description);
    }),
  );

/** The errors every Redis-backed read can answer. */
export const ApiReadProblems = (): MethodDecorator & ClassDecorator => ApiProblems(400, 503, 504);

/** The errors every Redis-backed write can answer. */
export const ApiWriteProblems = (): MethodDecorator & ClassDecorator =>
  ApiProblems(400, 503, 504, 507);

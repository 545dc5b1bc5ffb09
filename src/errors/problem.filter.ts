import {
  ArgumentsHost,
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  Optional,
  type ExceptionFilter,
} from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppConfig } from '../config/app-config';
import { GatewayMetrics } from '../observability/gateway-metrics';
import { AppError, type ErrorCode } from './app-error';
import { ERROR_STATUS, codeForStatus, isRetryable } from './error-status';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId?: string;
  errors?: AppError['errors'];
}

const GENERIC_DETAIL: Partial<Record<ErrorCode, string>> = {
  BAD_REQUEST: 'The request is malformed.',
  INVALID_TOKEN: 'The access token is missing or not valid.',
  NOT_FOUND: 'The resource does not exist.',
  PAYLOAD_TOO_LARGE: 'The request body is too large.',
  UNSUPPORTED_MEDIA_TYPE: 'The request body has an unsupported content type.',
  INTERNAL: 'An internal error occurred.',
};

/** The `reason` of a 429 whose error does not name one. */
const LIMIT_OF_CODE: Partial<Record<ErrorCode, string>> = {
  TOO_MANY_SUBJECT_STREAMS: 'sse_streams',
  RATE_LIMITED: 'requests',
  QUOTA_EXCEEDED: 'quota',
};

/**
 * A route whose protocol fixes its own error shape (the Upstash-compatible endpoint) renders
 * its errors with this function, set as its Fastify route config `errorBody`; status, headers
 * and metrics stay this filter's.
 */
export type ErrorBody = (error: AppError, status: number) => unknown;

function errorBodyOf(request: FastifyRequest): ErrorBody | undefined {
  const config = request.routeOptions?.config as { errorBody?: unknown } | undefined;
  return typeof config?.errorBody === 'function' ? (config.errorBody as ErrorBody) : undefined;
}

/** Errors Fastify raises itself (body parsing, limits) carry a statusCode and a FST_ code. */
function isHttpLikeError(error: unknown): error is Error & { statusCode: number } {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return error instanceof Error && typeof status === 'number' && status >= 400 && status < 500;
}

/** The one place where every failure becomes an RFC 9457 problem+json response. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProblemFilter');

  constructor(
    private readonly config: AppConfig,
    @Optional() private readonly metrics?: GatewayMetrics,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    this.send(this.toAppError(exception), request, reply);
  }

  toAppError(exception: unknown): AppError {
    if (exception instanceof AppError) {
      return exception;
    }
    const status =
      exception instanceof HttpException
        ? exception.getStatus()
        : isHttpLikeError(exception)
          ? exception.statusCode
          : undefined;
    if (status !== undefined) {
      const code = codeForStatus(status);
      return new AppError(code, GENERIC_DETAIL[code] ?? STATUS_CODES[ERROR_STATUS[code]] ?? '');
    }
    this.logger.error({ err: exception }, 'unhandled error');
    return new AppError('INTERNAL', GENERIC_DETAIL.INTERNAL ?? '');
  }

  send(error: AppError, request: FastifyRequest, reply: FastifyReply): void {
    if (reply.sent || reply.raw.headersSent) {
      // A streamed response already started: the only safe thing left is to end it.
      reply.raw.end();
      return;
    }
    const status = ERROR_STATUS[error.code];
    const body: Problem = {
      type: 'about:blank',
      title: STATUS_CODES[status] ?? 'Error',
      status,
      detail: error.detail,
      code: error.code,
      requestId: String(request.id),
      ...(error.errors ? { errors: error.errors } : {}),
    };
    if (status === HttpStatus.TOO_MANY_REQUESTS) {
      // Every 429, whichever limit answered it, in one metric.
      this.metrics?.rateLimited.inc({
        reason: error.reason ?? LIMIT_OF_CODE[error.code] ?? 'other',
      });
    }
    if (isRetryable(error.code)) {
      void reply.header('retry-after', String(this.config.server.retryAfterS));
    }
    const own = errorBodyOf(request);
    if (own) {
      void reply
        .headers(error.headers)
        .code(status)
        .type('application/json')
        .send(own(error, status));
      return;
    }
    // An error's own headers (a Retry-After it computed) win over the default.
    void reply.headers(error.headers).code(status).type(PROBLEM_CONTENT_TYPE).send(body);
  }
}

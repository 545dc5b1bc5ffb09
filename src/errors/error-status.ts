import { HttpStatus } from '@nestjs/common';
import type { ErrorCode } from './app-error';

/** Every error code and its HTTP status; the compiler keeps this table complete. */
export const ERROR_STATUS = {
  BAD_REQUEST: HttpStatus.BAD_REQUEST,
  VALIDATION_FAILED: HttpStatus.BAD_REQUEST,
  INVALID_TOKEN: HttpStatus.UNAUTHORIZED,
  INSUFFICIENT_SCOPE: HttpStatus.FORBIDDEN,
  KEY_FORBIDDEN: HttpStatus.FORBIDDEN,
  REDIS_NO_PERMISSION: HttpStatus.FORBIDDEN,
  NOT_FOUND: HttpStatus.NOT_FOUND,
  NOT_UTF8: HttpStatus.NOT_ACCEPTABLE,
  WRONG_TYPE: HttpStatus.CONFLICT,
  CONDITION_FAILED: HttpStatus.CONFLICT,
  NOT_A_NUMBER: HttpStatus.CONFLICT,
  OUT_OF_RANGE: HttpStatus.CONFLICT,
  PAYLOAD_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  RESPONSE_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  UNSUPPORTED_MEDIA_TYPE: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  RATE_LIMITED: HttpStatus.TOO_MANY_REQUESTS,
  QUOTA_EXCEEDED: HttpStatus.TOO_MANY_REQUESTS,
  INTERNAL: HttpStatus.INTERNAL_SERVER_ERROR,
  AUTH_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
  REDIS_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
  REDIS_READONLY: HttpStatus.SERVICE_UNAVAILABLE,
  OUTCOME_UNKNOWN: HttpStatus.GATEWAY_TIMEOUT,
  REDIS_TIMEOUT: HttpStatus.GATEWAY_TIMEOUT,
  REDIS_OOM: HttpStatus.INSUFFICIENT_STORAGE,
  GROUP_EXISTS: HttpStatus.CONFLICT,
  STREAM_ID_TOO_SMALL: HttpStatus.CONFLICT,
  IDEMPOTENCY_KEY_REUSED: HttpStatus.CONFLICT,
  BLOCKING_POOL_EXHAUSTED: HttpStatus.SERVICE_UNAVAILABLE,
  TOO_MANY_STREAMS: HttpStatus.SERVICE_UNAVAILABLE,
  TOO_MANY_SUBJECT_STREAMS: HttpStatus.TOO_MANY_REQUESTS,
  LOCK_HELD: HttpStatus.CONFLICT,
  LOCK_NOT_OWNER: HttpStatus.CONFLICT,
  LOCK_SERVICE_RECOVERING: HttpStatus.SERVICE_UNAVAILABLE,
  LOCK_QUORUM_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
} as const satisfies Record<ErrorCode, HttpStatus>;

/** The code for an HTTP error raised outside our services (routing, body parsing, guards). */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'BAD_REQUEST';
    case 401:
      return 'INVALID_TOKEN';
    case 403:
      return 'INSUFFICIENT_SCOPE';
    case 404:
      return 'NOT_FOUND';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 415:
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 429:
      return 'RATE_LIMITED';
    case 503:
      return 'REDIS_UNAVAILABLE';
    default:
      return status >= 400 && status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
  }
}

/** Codes after which a client should come back later (Retry-After). */
export function isRetryable(code: ErrorCode): boolean {
  return (
    ERROR_STATUS[code] === HttpStatus.SERVICE_UNAVAILABLE ||
    ERROR_STATUS[code] === HttpStatus.TOO_MANY_REQUESTS ||
    code === 'LOCK_HELD'
  );
}

/** The stable error codes of the API: every problem+json body carries one of them. */
export const ERROR_CODES = [
  'BAD_REQUEST',
  'VALIDATION_FAILED',
  'INVALID_TOKEN',
  'INSUFFICIENT_SCOPE',
  'KEY_FORBIDDEN',
  'REDIS_NO_PERMISSION',
  'NOT_FOUND',
  'NOT_UTF8',
  'WRONG_TYPE',
  'CONDITION_FAILED',
  'NOT_A_NUMBER',
  'OUT_OF_RANGE',
  'PAYLOAD_TOO_LARGE',
  'RESPONSE_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'INTERNAL',
  'AUTH_UNAVAILABLE',
  'REDIS_UNAVAILABLE',
  'REDIS_READONLY',
  'OUTCOME_UNKNOWN',
  'REDIS_TIMEOUT',
  'REDIS_OOM',
  'GROUP_EXISTS',
  'STREAM_ID_TOO_SMALL',
  'IDEMPOTENCY_KEY_REUSED',
  'BLOCKING_POOL_EXHAUSTED',
  'TOO_MANY_STREAMS',
  'TOO_MANY_SUBJECT_STREAMS',
  'LOCK_HELD',
  'LOCK_NOT_OWNER',
  'LOCK_SERVICE_RECOVERING',
  'LOCK_QUORUM_UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A validation problem lists at most this many fields: it stops at the first ones found. */
export const MAX_FIELD_ERRORS = 20;
/** Field paths longer than this are cut in `errors`: a name is echoed back, never a megabyte. */
const MAX_FIELD_PATH = 128;

/** One entry of a validation problem's `errors` list. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * A domain error: services throw it, the problem filter turns it into problem+json with the
 * status of its code. `detail` is shown to the caller, so it never carries Redis's own text.
 */
export class AppError extends Error {
  readonly errors?: FieldError[];
  /** Response headers that belong to this error (e.g. WWW-Authenticate). */
  readonly headers: Readonly<Record<string, string>>;
  /** For a 429: which limit (the `reason` of redis_gateway_rate_limited_total). */
  readonly reason?: string;

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      cause?: unknown;
      reason?: string;
    } = {},
  ) {
    super(detail, { cause: options.cause });
    this.name = 'AppError';
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.reason = options.reason;
  }

  static validation(errors: FieldError[]): AppError {
    const listed = errors.slice(0, MAX_FIELD_ERRORS).map(({ field, message }) => ({
      field: field.length > MAX_FIELD_PATH ? `${field.slice(0, MAX_FIELD_PATH)}…` : field,
      message,
    }));
    return new AppError('VALIDATION_FAILED', 'The request is not valid.', { errors: listed });
  }

  /** An answer that would carry more stored bytes than limits.maxResponseBytes allows. */
  static responseTooLarge(limit: number): AppError {
    return new AppError(
      'RESPONSE_TOO_LARGE',
      `The answer would carry more than ${limit} bytes of data (limits.maxResponseBytes); ask for fewer or smaller items.`,
    );
  }

  static notFound(what: string): AppError {
    return new AppError('NOT_FOUND', `${what} does not exist.`);
  }
}

import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppError, type FieldError } from '../errors/app-error';

// C0 controls, DEL and C1 controls: never a legitimate part of a name, and they break logs and
// terminals.
// eslint-disable-next-line no-control-regex -- control characters are what this rejects
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The rules every caller-given name follows (keys, fields, channels, patterns, streams,
 * groups, consumers, locks), and the bounds on how many a request may carry: one owner of both.
 */
@Injectable()
export class Names {
  private readonly maxNameBytes: number;
  private readonly maxBatch: number;
  private readonly maxCount: number;

  constructor(config: AppConfig) {
    this.maxNameBytes = config.limits.maxKeyBytes;
    this.maxBatch = config.limits.maxBatchKeys;
    this.maxCount = config.limits.maxScanCount;
  }

  /** The reason a name is invalid, or null when it is a valid name. */
  problem(name: unknown, { allowEmpty = false } = {}): string | null {
    if (typeof name !== 'string') {
      return 'must be a string';
    }
    if (name.length === 0) {
      return allowEmpty ? null : 'must not be empty';
    }
    if (!name.isWellFormed()) {
      return 'must be valid UTF-8 (no lone surrogates)';
    }
    if (CONTROL_CHARACTERS.test(name)) {
      return 'must not contain control characters';
    }
    if (Buffer.byteLength(name, 'utf8') > this.maxNameBytes) {
      return `must be at most ${this.maxNameBytes} bytes`;
    }
    return null;
  }

  /** The validation errors of names given as [field, name] (the field says where it was). */
  problems(named: readonly (readonly [field: string, name: unknown])[]): FieldError[] {
    return named.flatMap(([field, name]) => {
      const message = this.problem(name);
      return message ? [{ field, message }] : [];
    });
  }

  /** Throws 400 listing every invalid name, then any `more` errors found with them. */
  check(named: readonly (readonly [field: string, name: unknown])[], more: FieldError[] = []) {
    const errors = [...this.problems(named), ...more];
    if (errors.length > 0) {
      throw AppError.validation(errors);
    }
  }

  /** Throws 400 unless a batch holds 1 (or `min`) to limits.maxBatchKeys items. */
  checkBatch(length: number, field: string, { min = 1 } = {}): void {
    if (length < min || length > this.maxBatch) {
      throw AppError.validation([
        {
          field,
          message: `${field} must hold ${min} to ${this.maxBatch} items (limits.maxBatchKeys)`,
        },
      ]);
    }
  }

  /** A page size: `value` up to limits.maxScanCount (400 past it), else `fallback`, capped too. */
  count(value: number | undefined, fallback: number, field = 'count'): number {
    if (value !== undefined && value > this.maxCount) {
      throw AppError.validation([
        { field, message: `${field} must be at most ${this.maxCount} (limits.maxScanCount)` },
      ]);
    }
    return value ?? Math.min(fallback, this.maxCount);
  }
}

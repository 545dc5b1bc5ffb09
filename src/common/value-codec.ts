import { Injectable } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { Optional } from './validation';

export const ENCODINGS = ['utf8', 'base64'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** The `encoding` field or query parameter shared by every value-carrying DTO. */
export class EncodingOption {
  @ApiPropertyOptional({
    enum: ENCODINGS,
    description: '`base64` carries arbitrary bytes; `utf8` (default) carries text',
  })
  @Optional()
  @IsIn(ENCODINGS)
  encoding?: Encoding;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// ignoreBOM: a value that starts with U+FEFF keeps it (the default would drop it silently).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes as text when they are valid UTF-8, else as base64, saying which. */
export type TextOrBase64 = { text: string } | { base64: string };

/** Strict UTF-8 text of `bytes`, or null when they are not valid UTF-8 (never mangled). */
export function utf8OrNull(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Turns request values into the bytes Redis stores and back. Text must be well-formed (a lone
 * surrogate would silently become U+FFFD), base64 must be canonical, and the decoded size is
 * bounded by `limits.maxValueBytes`.
 */
@Injectable()
export class ValueCodec {
  private readonly maxValueBytes: number;

  constructor(config: AppConfig) {
    this.maxValueBytes = config.limits.maxValueBytes;
  }

  decode(value: string, encoding: Encoding = 'utf8', field = 'value'): Buffer {
    let bytes: Buffer;
    if (encoding === 'base64') {
      if (!BASE64.test(value)) {
        throw AppError.validation([{ field, message: `${field} must be valid base64` }]);
      }
      bytes = Buffer.from(value, 'base64');
    } else {
      if (!value.isWellFormed()) {
        throw AppError.validation([{ field, message: `${field} must be valid UTF-8 text` }]);
      }
      bytes = Buffer.from(value, 'utf8');
    }
    this.checkSize(bytes.length);
    return bytes;
  }

  checkSize(bytes: number): void {
    if (bytes > this.maxValueBytes) {
      throw new AppError(
        'PAYLOAD_TOO_LARGE',
        `The value is larger than ${this.maxValueBytes} bytes (limits.maxValueBytes).`,
      );
    }
  }

  /** Stored bytes for a response; text that is not valid UTF-8 is refused, never mangled. */
  encode(bytes: Buffer, encoding: Encoding = 'utf8'): string {
    if (encoding === 'base64') {
      return bytes.toString('base64');
    }
    const text = utf8OrNull(bytes);
    if (text === null) {
      throw new AppError(
        'NOT_UTF8',
        'The stored value is not valid UTF-8 text; read it with encoding=base64.',
      );
    }
    return text;
  }
}

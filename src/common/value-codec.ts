import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
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

/**
 * Turns request values into the bytes Redis stores and back. Text must be well-formed (a lone
 * surrogate would silently become U+FFFD), base64 must be canonical, and the decoded size is
 * bounded by `limits.maxValueBytes`.
 */
export class ValueCodec {
  constructor(private readonly maxValueBytes: number) {}

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
    try {
      return strictUtf8.decode(bytes);
    } catch {
      throw new AppError(
        'NOT_UTF8',
        'The stored value is not valid UTF-8 text; read it with encoding=base64.',
      );
    }
  }
}

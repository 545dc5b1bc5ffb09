import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ERROR_CODES, type ErrorCode } from './app-error';

export class FieldErrorDto {
  @ApiProperty({ example: 'ttl' })
  field!: string;

  @ApiProperty({ example: 'ttl must be an integer number' })
  message!: string;
}

/** RFC 9457 problem details, as every error leaves the gateway. */
export class ProblemDto {
  @ApiProperty({ example: 'about:blank' })
  type!: string;

  @ApiProperty({ example: 'Not Found' })
  title!: string;

  @ApiProperty({ type: 'integer', example: 404 })
  status!: number;

  @ApiProperty({ example: 'The key does not exist.' })
  detail!: string;

  @ApiProperty({ enum: ERROR_CODES, enumName: 'ErrorCode', example: 'NOT_FOUND' })
  code!: ErrorCode;

  @ApiPropertyOptional({ description: 'The request id (also in the X-Request-Id header)' })
  requestId?: string;

  @ApiPropertyOptional({ type: [FieldErrorDto], description: 'Each invalid field (400 only)' })
  errors?: FieldErrorDto[];
}

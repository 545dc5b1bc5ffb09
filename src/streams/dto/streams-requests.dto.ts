import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsArray, IsBoolean, IsInt, IsString, Matches, Max, Min } from 'class-validator';
import { NotWith, Optional, QueryBool, QueryInt, StringMap } from '../../common/validation';
import { EncodingOption } from '../../common/value-codec';
import { EventsQuery } from '../../sse/sse.dto';

/** `count` of a listing in a query: entries at most, 100 by default. */
const PageCount = (): PropertyDecorator =>
  applyDecorators(
    ApiPropertyOptional({
      type: 'integer',
      minimum: 1,
      description: 'Entries at most, 100 by default',
    }),
    QueryInt(),
    Optional(),
    IsInt(),
    Min(1),
  );

/** A stream entry id: `<ms>-<seq>` or `<ms>` (sequence 0), each part a 64-bit unsigned integer. */
export const ENTRY_ID = /^\d{1,20}(-\d{1,20})?$/;
const ENTRY_ID_MESSAGE = 'must be a stream entry id such as 1700000000000-0';
/** Range bounds: an id, `(id` (exclusive), or `-` / `+`. */
const RANGE_BOUND = /^(-|\+|\(?\d{1,20}(-\d{1,20})?)$/;
const RANGE_MESSAGE = 'must be -, +, an entry id, or ( and an entry id (exclusive)';

/** An explicit id of a new entry: an entry id, or `<ms>-*` for the next sequence. */
const NEW_ENTRY_ID = /^\d{1,20}(-(\d{1,20}|\*))?$/;
/** Where a tail or a group starts: `$` (new entries only), or an entry id (`0`: everything). */
const START_ID = /^(\$|\d{1,20}(-\d{1,20})?)$/;

/** Largest 32-bit signed millisecond count, the bound of every `*Ms` field. */
const MAX_MS = 2147483647;

export class AddEntryDto extends EncodingOption {
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'Field names and values (values are text, or base64 with encoding=base64)',
    example: { event: 'signup', user: '42' },
  })
  @StringMap()
  fields!: Record<string, string>;

  @ApiPropertyOptional({
    description:
      'An explicit id (`<ms>-<seq>`, or `<ms>-*` for the next sequence); automatic when absent',
    example: '1700000000000-0',
    pattern: NEW_ENTRY_ID.source,
  })
  @Optional()
  @Matches(NEW_ENTRY_ID, { message: `id ${ENTRY_ID_MESSAGE}` })
  id?: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    description: 'Trim to this many entries (MAXLEN); at most streams.maxLength, its default',
  })
  @Optional()
  @IsInt()
  @Min(0)
  maxLen?: number;

  @ApiPropertyOptional({
    description: 'Trim approximately (`MAXLEN ~`, cheaper); exact when false (the default)',
  })
  @Optional()
  @IsBoolean()
  approximate?: boolean;
}

export class RangeQuery extends EncodingOption {
  @ApiPropertyOptional({
    description: `First id of the range; ${RANGE_MESSAGE}`,
    default: '-',
    pattern: RANGE_BOUND.source,
  })
  @Optional()
  @Matches(RANGE_BOUND, { message: `start ${RANGE_MESSAGE}` })
  start?: string;

  @ApiPropertyOptional({
    description: `Last id of the range; ${RANGE_MESSAGE}`,
    default: '+',
    pattern: RANGE_BOUND.source,
  })
  @Optional()
  @Matches(RANGE_BOUND, { message: `end ${RANGE_MESSAGE}` })
  end?: string;

  @PageCount()
  count?: number;

  @ApiPropertyOptional({ type: Boolean, description: 'Newest first (XREVRANGE)' })
  @QueryBool()
  @Optional()
  @IsBoolean()
  reverse?: boolean;
}

export class TrimDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    description: 'Keep at most this many entries (MAXLEN)',
  })
  @Optional()
  @IsInt()
  @Min(0)
  maxLen?: number;

  @ApiPropertyOptional({
    description: 'Remove the entries with a smaller id (MINID)',
    pattern: ENTRY_ID.source,
  })
  @NotWith('maxLen')
  @Optional()
  @Matches(ENTRY_ID, { message: `minId ${ENTRY_ID_MESSAGE}` })
  minId?: string;

  @ApiPropertyOptional({ description: 'Trim approximately (`~`, cheaper); exact by default' })
  @Optional()
  @IsBoolean()
  approximate?: boolean;
}

export class TailQuery extends EventsQuery {
  @ApiPropertyOptional({
    description:
      '`$` (default): only entries added from now on; `0`: every entry; or an entry id to ' +
      'start after. A `Last-Event-ID` header takes precedence.',
    default: '$',
    pattern: START_ID.source,
  })
  @Optional()
  @Matches(START_ID, { message: `from must be $, 0 or an entry id` })
  from?: string;
}

export class CreateGroupDto {
  @ApiProperty({ description: 'The consumer group name', example: 'workers' })
  @IsString()
  group!: string;

  @ApiPropertyOptional({
    description: '`$` (default): deliver entries added from now on; `0`: every entry; or an id',
    default: '$',
    pattern: START_ID.source,
  })
  @Optional()
  @Matches(START_ID, { message: 'from must be $, 0 or an entry id' })
  from?: string;

  @ApiPropertyOptional({ description: 'Create the stream when it is absent (default true)' })
  @Optional()
  @IsBoolean()
  mkStream?: boolean;
}

export class GroupReadDto extends EncodingOption {
  @ApiProperty({ description: 'The consumer name (created on first read)', example: 'worker-1' })
  @IsString()
  consumer!: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Entries at most, 10 by default',
  })
  @Optional()
  @IsInt()
  @Min(1)
  count?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_MS,
    description:
      'Wait up to this long for new entries when there are none (capped at limits.maxBlockMs); ' +
      'no wait when absent or 0',
  })
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_MS)
  blockMs?: number;

  @ApiPropertyOptional({
    description: 'Do not track the entries as pending (no ack needed, at-most-once)',
  })
  @Optional()
  @IsBoolean()
  noAck?: boolean;
}

export class AckDto {
  @ApiProperty({
    type: [String],
    description: 'Entry ids, at most limits.maxBatchKeys',
    items: { type: 'string', pattern: ENTRY_ID.source },
  })
  @IsArray()
  @Matches(ENTRY_ID, { each: true, message: `each of ids ${ENTRY_ID_MESSAGE}` })
  ids!: string[];
}

export class PendingQuery {
  @ApiPropertyOptional({ description: 'Only the entries of this consumer' })
  @Optional()
  @IsString()
  consumer?: string;

  @PageCount()
  count?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_MS,
    description: 'Only entries idle at least this long',
  })
  @QueryInt()
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_MS)
  minIdleMs?: number;
}

export class ClaimDto extends EncodingOption {
  @ApiProperty({ description: 'The consumer that takes the entries over', example: 'worker-2' })
  @IsString()
  consumer!: string;

  @ApiProperty({
    type: 'integer',
    minimum: 0,
    maximum: MAX_MS,
    description: 'Claim only entries idle at least this long',
  })
  @IsInt()
  @Min(0)
  @Max(MAX_MS)
  minIdleMs!: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Entries at most, 100 by default',
  })
  @Optional()
  @IsInt()
  @Min(1)
  count?: number;

  @ApiPropertyOptional({
    description: 'Scan the pending list from this id (`nextStart` of the previous call); 0-0 first',
    default: '0-0',
    pattern: ENTRY_ID.source,
  })
  @Optional()
  @Matches(ENTRY_ID, { message: `start ${ENTRY_ID_MESSAGE}` })
  start?: string;
}

import { ApiProperty } from '@nestjs/swagger';

const fieldsSchema = {
  type: 'object',
  additionalProperties: { type: 'string' },
  example: { event: 'signup', user: '42' },
} as const;

export class EntryIdDto {
  @ApiProperty()
  key!: string;

  @ApiProperty({ example: '1700000000000-0' })
  id!: string;
}

export class EntryDto {
  @ApiProperty({ example: '1700000000000-0' })
  id!: string;

  @ApiProperty(fieldsSchema)
  fields!: Record<string, string>;
}

export class EntriesDto {
  @ApiProperty()
  key!: string;

  @ApiProperty({ type: [EntryDto] })
  entries!: EntryDto[];
}

export class GroupEntriesDto {
  @ApiProperty({ type: [EntryDto] })
  entries!: EntryDto[];
}

export class StreamInfoDto {
  @ApiProperty()
  key!: string;

  @ApiProperty({ type: 'integer' })
  length!: number;

  @ApiProperty({ type: String, nullable: true, description: 'null when the stream is empty' })
  firstId!: string | null;

  @ApiProperty({ type: String, nullable: true, description: 'null when the stream is empty' })
  lastId!: string | null;

  @ApiProperty({ type: 'integer', description: 'Consumer groups of the stream' })
  groups!: number;
}

export class TrimmedDto {
  @ApiProperty()
  key!: string;

  @ApiProperty({ type: 'integer', description: 'Entries removed' })
  trimmed!: number;
}

export class GroupCreatedDto {
  @ApiProperty()
  key!: string;

  @ApiProperty()
  group!: string;
}

export class GroupDto {
  @ApiProperty()
  name!: string;

  @ApiProperty({ type: 'integer' })
  consumers!: number;

  @ApiProperty({ type: 'integer', description: 'Entries delivered and not yet acknowledged' })
  pending!: number;

  @ApiProperty({ example: '1700000000000-0' })
  lastDeliveredId!: string;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'Entries not yet delivered to the group; null when Redis cannot tell',
  })
  lag!: number | null;
}

export class GroupsDto {
  @ApiProperty()
  key!: string;

  @ApiProperty({ type: [GroupDto] })
  groups!: GroupDto[];
}

export class AcknowledgedDto {
  @ApiProperty({
    type: 'integer',
    description: 'Entries acknowledged (unknown or already acknowledged ids: 0)',
  })
  acknowledged!: number;
}

export class PendingEntryDto {
  @ApiProperty()
  id!: string;

  @ApiProperty()
  consumer!: string;

  @ApiProperty({ type: 'integer', description: 'Time since the entry was last delivered' })
  idleMs!: number;

  @ApiProperty({ type: 'integer', description: 'Times the entry was delivered' })
  deliveries!: number;
}

export class ConsumerPendingDto {
  @ApiProperty()
  name!: string;

  @ApiProperty({ type: 'integer' })
  pending!: number;
}

export class PendingDto {
  @ApiProperty({ type: 'integer', description: 'Pending entries of the whole group' })
  count!: number;

  @ApiProperty({ type: String, nullable: true })
  minId!: string | null;

  @ApiProperty({ type: String, nullable: true })
  maxId!: string | null;

  @ApiProperty({ type: [ConsumerPendingDto], description: 'Pending entries per consumer' })
  consumers!: ConsumerPendingDto[];

  @ApiProperty({
    type: [PendingEntryDto],
    description: 'The pending entries (filtered by consumer and minIdleMs), oldest first',
  })
  pending!: PendingEntryDto[];
}

export class ClaimedDto {
  @ApiProperty({ type: [EntryDto] })
  entries!: EntryDto[];

  @ApiProperty({ description: 'Pass as `start` to continue; 0-0 when the scan is complete' })
  nextStart!: string;

  @ApiProperty({
    type: [String],
    description: 'Pending ids whose entries were deleted; Redis dropped them from the list',
  })
  deletedIds!: string[];
}

import type { Encoding, ValueCodec } from '../common/value-codec';

/** An entry as Redis answers it in binary-safe form: id and flat field/value list. */
export type RawEntry = [id: Buffer, fields: Buffer[] | null];

export interface Entry {
  id: string;
  fields: Record<string, string>;
}

/** The bytes an entry holds: its id, names and values (what limits.maxResponseBytes counts). */
export function entrySize([id, flat]: RawEntry): number {
  return id.length + (flat ?? []).reduce((sum, part) => sum + part.length, 0);
}

/** `<ms>-<seq>` as two integers; `<ms>` alone is sequence 0. */
function idParts(id: string): [bigint, bigint] {
  const dash = id.indexOf('-');
  return dash < 0 ? [BigInt(id), 0n] : [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
}

/** Negative, zero or positive as stream id `a` sorts before, with or after `b`. */
export function compareIds(a: string, b: string): number {
  const [aMs, aSeq] = idParts(a);
  const [bMs, bSeq] = idParts(b);
  if (aMs !== bMs) {
    return aMs < bMs ? -1 : 1;
  }
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

/** A `Last-Event-ID` or `from` value that names an entry id (SSE resumption). */
export const RESUMABLE_ID = /^\d{1,20}(-\d{1,20})?$/;

/**
 * Field names and values for a response. With `utf8` (the default) bytes that are not valid
 * UTF-8 are refused (406 NOT_UTF8), never mangled; `base64` carries anything.
 */
export function toEntry(
  [id, flat]: RawEntry,
  codec: ValueCodec,
  encoding: Encoding | undefined,
  nameEncoding: Encoding | undefined = encoding,
): Entry {
  const fields: [string, string][] = [];
  const list = flat ?? [];
  for (let index = 0; index + 1 < list.length; index += 2) {
    fields.push([codec.encode(list[index], nameEncoding), codec.encode(list[index + 1], encoding)]);
  }
  // fromEntries: a field named __proto__ stays an ordinary field (an assignment would drop it).
  return { id: id.toString(), fields: Object.fromEntries(fields) };
}

/**
 * Entries of a reply, skipping ones Redis reports as deleted (a null field list). Field names
 * are names, always text, as an add takes them; `encoding` applies to the values.
 */
export function toEntries(
  raw: RawEntry[] | null,
  codec: ValueCodec,
  encoding: Encoding | undefined,
): Entry[] {
  return (raw ?? [])
    .filter(([, flat]) => flat !== null)
    .map((e) => toEntry(e, codec, encoding, 'utf8'));
}

/** A flat `[name, value, name, value, ...]` reply (XINFO) as an object. */
export function pairs(reply: unknown[]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (let index = 0; index + 1 < reply.length; index += 2) {
    result[String(reply[index])] = reply[index + 1];
  }
  return result;
}

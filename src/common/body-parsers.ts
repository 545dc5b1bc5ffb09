import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { ASCII } from './ascii';

/** No request body of this API nests deeper; class-transformer recurses and would overflow. */
export const MAX_BODY_DEPTH = 16;

const {
  space: SPACE,
  quote: QUOTE,
  backslash: BACKSLASH,
  comma: COMMA,
  openBrace: OPEN_OBJECT,
  openBracket: OPEN_ARRAY,
  closeBrace: CLOSE_OBJECT,
  closeBracket: CLOSE_ARRAY,
} = ASCII;

/**
 * Why a JSON text is too costly to parse, found in one pass over its characters without
 * parsing it: nesting deeper than `maxDepth`, or more than `maxValues` values (object members
 * and array elements). JSON.parse of a body at the body limit
 * made of tiny members takes longer than a request may block the event loop (a 2 MiB object of
 * 260,000 members: 130–170 ms, measured), while this scan takes a few milliseconds. Malformed
 * text passes and is refused by the parser.
 */
export function jsonCostProblem(text: string, maxDepth: number, maxValues: number): string | null {
  let depth = 0;
  let values = 0;
  let inString = false;
  // Just after `{` or `[`: the next character that is not white space starts the first value,
  // unless it closes the container at once.
  let opened = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (inString) {
      if (char === BACKSLASH) {
        index += 1;
      } else if (char === QUOTE) {
        inString = false;
      }
      continue;
    }
    if (opened && char > SPACE) {
      opened = false;
      if (char !== CLOSE_OBJECT && char !== CLOSE_ARRAY) {
        values += 1;
      }
    }
    switch (char) {
      case QUOTE:
        inString = true;
        break;
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        depth += 1;
        opened = true;
        if (depth > maxDepth) {
          return `body must not nest deeper than ${maxDepth} levels`;
        }
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        depth -= 1;
        break;
      case COMMA:
        values += 1;
        break;
      default:
        break;
    }
    if (values > maxValues) {
      return `body must hold at most ${maxValues} values (limits.maxJsonValues)`;
    }
  }
  return null;
}

/**
 * The request body parsers: JSON (Fastify's own parser with its prototype-poisoning guards,
 * behind the cost scan above; an empty body is no body, as many clients send
 * `Content-Type: application/json` on a GET or DELETE), raw octets where a route takes them,
 * and nothing else: forms and text/plain get 415.
 */
export function installBodyParsers(fastify: FastifyInstance, config: AppConfig): void {
  const { bodyLimitBytes } = config.server;
  const { maxJsonValues } = config.limits;
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser(['application/json', 'text/plain']);
  fastify.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: bodyLimitBytes },
    (request, body, done) => {
      const text = body as string;
      if (text.length === 0) {
        done(null, undefined);
        return;
      }
      const problem = jsonCostProblem(text, MAX_BODY_DEPTH, maxJsonValues);
      if (problem) {
        done(AppError.validation([{ field: 'body', message: problem }]), undefined);
        return;
      }
      void parseJson(request, text, done);
    },
  );
  fastify.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: bodyLimitBytes },
    (_request, body, done) => done(null, body),
  );
}

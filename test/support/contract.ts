import { readFileSync } from 'node:fs';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { OPENAPI_FILE } from '../../src/openapi/openapi';

/*
 * The contract test: every answer a suite receives through TestApp.call (and, by
 * contract-fetch.ts, through fetch from a gateway on this machine) is checked against the
 * committed openapi.json, the document client generators read. The operation must be
 * documented, its status too, the body must match the schema documented for that status and
 * content type, and the headers the document calls required must be there. So the document
 * cannot claim what the server does not do, nor leave out what it does, for any answer a test
 * has seen.
 */

interface MediaObject {
  schema?: object;
}
interface HeaderObject {
  $ref?: string;
  required?: boolean;
  schema?: { type?: string };
}
interface ResponseObject {
  content?: Record<string, MediaObject>;
  headers?: Record<string, HeaderObject>;
}
interface OperationObject {
  responses: Record<string, ResponseObject>;
}
interface Document {
  paths: Record<string, Record<string, OperationObject>>;
  components: { headers?: Record<string, HeaderObject> };
}

/**
 * Answers the check leaves alone, each with its reason. Paths the document does not hold at
 * all are never checked (the deliberate 404s of unknown routes, the /docs UI, the Upstash
 * endpoint, which is off by default and so not in the document): the contract is about the
 * operations it documents. Only these further cases, on documented paths, are exempt.
 */
export const CONTRACT_EXEMPTIONS: readonly {
  method: string;
  path: RegExp;
  status: number;
  reason: string;
}[] = [];

/** One answer that breaks the contract, with what the check found. */
export interface ContractViolation {
  request: string;
  status: number;
  problems: string[];
}

const JSON_MEDIA = /^application\/(?:[\w.+-]+\+)?json$/;

/** A route template as a regular expression, and how specific it is (literal segments win). */
interface Template {
  path: string;
  pattern: RegExp;
  literals: number;
}

function templateOf(path: string): Template {
  const segments = path.split('/');
  const source = segments
    .map((segment) =>
      /^\{[^}]+\}$/.test(segment) ? '[^/]+' : segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return {
    path,
    pattern: new RegExp(`^${source}$`),
    literals: segments.filter((segment) => !segment.startsWith('{')).length,
  };
}

/** Every `$ref` into the document's own components, made absolute so Ajv resolves it. */
function absoluteRefs(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(absoluteRefs);
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, member]) => [
        key,
        key === '$ref' && typeof member === 'string' && member.startsWith('#/')
          ? `${DOCUMENT_ID}${member}`
          : absoluteRefs(member),
      ]),
    );
  }
  return value;
}

const DOCUMENT_ID = 'openapi.json';
const MAX_REMEMBERED_PATHS = 10000;

export class Contract {
  private readonly templates: Template[];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly matches = new Map<string, Template[]>();

  constructor(private readonly document: Document) {
    this.templates = Object.keys(document.paths)
      .map(templateOf)
      .sort((a, b) => b.literals - a.literals);
    // OpenAPI's own keywords (example, description) are not JSON Schema's: not strict. Formats
    // such as `binary` describe non-JSON bodies, which are not validated.
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    this.ajv.addSchema({ $id: DOCUMENT_ID, components: absoluteRefs(document.components) });
  }

  /** The committed document, read once per process. */
  static committed(): Contract {
    committed ??= new Contract(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document);
    return committed;
  }

  /** Whether the document has a path template this path fits (else no answer there is checked). */
  covers(url: string): boolean {
    return this.templatesOf(new URL(url, 'http://gateway').pathname).length > 0;
  }

  /** What is wrong with one answer (empty when it keeps the contract, or is not covered). */
  check(method: InjectOptions['method'], url: string, response: LightMyRequestResponse): string[] {
    const verb = String(method).toLowerCase();
    const path = new URL(url, 'http://gateway').pathname;
    const status = response.statusCode;
    const matching = this.templatesOf(path);
    if (matching.length === 0 || isExempt(verb, path, status)) {
      return [];
    }
    const template = matching.find((candidate) => this.document.paths[candidate.path][verb]);
    if (!template) {
      return [`${verb.toUpperCase()} is not documented for ${matching[0].path}`];
    }
    const operation = this.document.paths[template.path][verb];
    const documented = operation.responses[String(status)];
    const where = `${verb.toUpperCase()} ${template.path} ${status}`;
    if (!documented) {
      return [`${where}: status not documented (${bodyHint(response)})`];
    }
    return [
      ...this.bodyProblems(where, documented, response),
      ...this.headerProblems(where, documented, response),
    ];
  }

  /**
   * The templates a path matches, most literal first, remembered per path: the flood tests send
   * thousands of requests to a few paths, and the check runs in the event loop they measure.
   */
  private templatesOf(path: string): Template[] {
    let matching = this.matches.get(path);
    if (!matching) {
      if (this.matches.size >= MAX_REMEMBERED_PATHS) {
        this.matches.clear();
      }
      matching = this.templates.filter((template) => template.pattern.test(path));
      this.matches.set(path, matching);
    }
    return matching;
  }

  private bodyProblems(
    where: string,
    documented: ResponseObject,
    response: LightMyRequestResponse,
  ): string[] {
    const media = String(response.headers['content-type'] ?? '')
      .split(';')[0]
      .trim();
    const content = documented.content ?? {};
    if (Object.keys(content).length === 0) {
      return response.rawPayload.length === 0 ? [] : [`${where}: a body where none is documented`];
    }
    const entry = content[media];
    if (!entry) {
      return [
        `${where}: content type "${media}" not documented (${Object.keys(content).join(', ')})`,
      ];
    }
    if (!JSON_MEDIA.test(media) || !entry.schema) {
      return [];
    }
    let body: unknown;
    try {
      body = JSON.parse(response.payload);
    } catch {
      return [`${where}: ${media} body is not JSON`];
    }
    const validate = this.validator(`${where} ${media}`, entry.schema);
    if (validate(body)) {
      return [];
    }
    return (validate.errors ?? []).map(
      (error) => `${where}: body${error.instancePath} ${error.message} (${bodyHint(response)})`,
    );
  }

  /** Required headers must be there; any documented header that is there must fit its schema. */
  private headerProblems(
    where: string,
    documented: ResponseObject,
    response: LightMyRequestResponse,
  ): string[] {
    return Object.entries(documented.headers ?? {}).flatMap(([name, header]) => {
      const resolved = header.$ref
        ? this.document.components.headers?.[header.$ref.split('/').pop() ?? '']
        : header;
      const value = response.headers[name.toLowerCase()];
      if (value === undefined) {
        return resolved?.required === true ? [`${where}: required header ${name} missing`] : [];
      }
      if (!resolved?.schema) {
        return [];
      }
      const validate = this.validator(
        `header ${header.$ref ?? `${where} ${name}`}`,
        resolved.schema,
      );
      return validate(headerValue(String(value), resolved.schema))
        ? []
        : [`${where}: header ${name}: ${JSON.stringify(value)} does not fit its schema`];
    });
  }

  private validator(key: string, schema: object): ValidateFunction {
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile(absoluteRefs(schema) as object);
      this.validators.set(key, validate);
    }
    return validate;
  }
}

let committed: Contract | undefined;

function isExempt(method: string, path: string, status: number): boolean {
  return CONTRACT_EXEMPTIONS.some(
    (exemption) =>
      exemption.method.toLowerCase() === method &&
      exemption.path.test(path) &&
      exemption.status === status,
  );
}

/** A header's text as the JSON value its schema describes (an integer header is a number). */
function headerValue(text: string, schema: { type?: string }): unknown {
  return schema.type === 'integer' && /^-?\d+$/.test(text) ? Number(text) : text;
}

/** The start of a body, to show which answer broke the contract. */
function bodyHint(response: LightMyRequestResponse): string {
  const text = response.payload;
  return text.length > 160 ? `${text.slice(0, 160)}…` : text || 'empty body';
}

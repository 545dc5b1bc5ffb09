import {
  ValidationPipe,
  type ArgumentMetadata,
  type PipeTransform,
  type Type,
  type ValidationError,
} from '@nestjs/common';
import { Transform } from 'class-transformer';
import { ValidateBy } from 'class-validator';
import { AppError, type FieldError } from '../errors/app-error';

function fieldErrors(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent
      ? /^\d+$/.test(error.property)
        ? `${parent}[${error.property}]`
        : `${parent}.${error.property}`
      : error.property;
    const own = Object.entries(error.constraints ?? {}).map(([rule, message]) => ({
      field,
      message: rule === 'whitelistValidation' ? 'is not a known field' : message,
    }));
    return [...own, ...fieldErrors(error.children ?? [], field)];
  });
}

/** No request body of this API nests deeper; class-transformer recurses and would overflow. */
const MAX_BODY_DEPTH = 16;

/** Whether a parsed JSON value nests deeper than `max` (iterative: no recursion to overflow). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== 'object' || node === null) {
      continue;
    }
    if (depth > max) {
      return true;
    }
    for (const child of Object.values(node)) {
      stack.push([child, depth + 1]);
    }
  }
  return false;
}

const isEmpty = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && Object.keys(value).length === 0;

const isDto = (metatype: ArgumentMetadata['metatype']): boolean =>
  metatype !== undefined && ![Object, String, Number, Boolean, Array].includes(metatype as never);

/**
 * The global validation pipe: unknown fields are errors, nothing is converted implicitly (a
 * string "1e3" is not a number), and failures become 400 VALIDATION_FAILED listing each field.
 * Messages name the field and the rule, never the value. A body declared as a DTO must be a
 * JSON object: raw octets there are a 415, an array or a bare value a 400.
 */
export class AppValidationPipe extends ValidationPipe {
  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      transform: true,
      transformOptions: { enableImplicitConversion: false },
      validationError: { target: false, value: false },
      exceptionFactory: (errors) => AppError.validation(fieldErrors(errors)),
    });
  }

  /** Per query DTO: whether an empty query is valid, found once (most requests send none). */
  private readonly emptyQueryValid = new WeakMap<Type<unknown>, boolean>();

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const { metatype } = metadata;
    if (metadata.type === 'query' && metatype && isDto(metatype) && isEmpty(value)) {
      let valid = this.emptyQueryValid.get(metatype);
      if (valid === undefined) {
        valid = await super.transform({}, metadata).then(
          () => true,
          () => false,
        );
        this.emptyQueryValid.set(metatype, valid);
      }
      if (valid) {
        return new metatype();
      }
    }
    if (metadata.type === 'body' && isDto(metadata.metatype)) {
      if (Buffer.isBuffer(value)) {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'This operation takes a JSON body.');
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw AppError.validation([{ field: 'body', message: 'body must be a JSON object' }]);
      }
      if (nestsDeeperThan(value, MAX_BODY_DEPTH)) {
        throw AppError.validation([
          { field: 'body', message: `body must not nest deeper than ${MAX_BODY_DEPTH} levels` },
        ]);
      }
    }
    return super.transform(value, metadata) as Promise<unknown>;
  }
}

/** A body of raw octets (passed through as a Buffer) or a JSON object validated as `dto`. */
export class JsonOrOctetsPipe implements PipeTransform {
  private readonly validation = new AppValidationPipe();

  constructor(private readonly dto: Type<unknown>) {}

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    return Buffer.isBuffer(value)
      ? value
      : this.validation.transform(value, { ...metadata, metatype: this.dto });
  }
}

/** A query-string integer: only plain decimal digits are converted ("1e3" and "0x10" stay text). */
export const QueryInt = (): PropertyDecorator =>
  Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^-?\d{1,16}$/.test(value) ? Number(value) : value,
  );

/** A query-string flag: "true" or "false" (anything else stays text and fails validation). */
export const QueryBool = (): PropertyDecorator =>
  Transform(({ value }: { value: unknown }) =>
    value === 'true' ? true : value === 'false' ? false : value,
  );

/** The property may not be given together with `other`. */
export const NotWith = (other: string): PropertyDecorator =>
  ValidateBy({
    name: 'notWith',
    constraints: [other],
    validator: {
      validate: (value: unknown, args) =>
        value === undefined || (args?.object as Record<string, unknown>)[other] === undefined,
      defaultMessage: (args) => `${args?.property} cannot be combined with ${other}`,
    },
  });

import {
  ValidationPipe,
  type ArgumentMetadata,
  type PipeTransform,
  type Type,
  type ValidationError,
} from '@nestjs/common';
import { Transform } from 'class-transformer';
import { Allow, ValidateBy, ValidateIf, getMetadataStorage } from 'class-validator';
import { AppError, MAX_FIELD_ERRORS, type FieldError } from '../errors/app-error';

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

/**
 * A field that may be left out, but is never `null` unless its DTO says so: class-validator's
 * own IsOptional lets `null` through every rule after it.
 */
export const Optional = (): PropertyDecorator =>
  ValidateIf((_object: object, value: unknown) => value !== undefined);

/** Per DTO class, its fields declared with `@StringMap()`. */
const stringMaps = new WeakMap<object, string[]>();

/**
 * A JSON object of names to strings (hash fields, stream entry fields), checked by the
 * validation pipe in one pass and kept away from class-transformer: its key handling is
 * quadratic (a uniqueness filter with indexOf; 150,000 fields took 15 s, measured). Required.
 */
export const StringMap = (): PropertyDecorator => (target, property) => {
  const fields = stringMaps.get(target.constructor) ?? [];
  stringMaps.set(target.constructor, [...fields, String(property)]);
  Allow()(target, property);
};

function stringMapsOf(metatype: Type<unknown>): string[] {
  const fields: string[] = [];
  for (
    let type: unknown = metatype;
    typeof type === 'function';
    type = Object.getPrototypeOf(type)
  ) {
    fields.push(...(stringMaps.get(type) ?? []));
  }
  return fields;
}

function isStringMap(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  for (const name in value) {
    if (typeof (value as Record<string, unknown>)[name] !== 'string') {
      return false;
    }
  }
  return true;
}

/**
 * Takes the string maps out of a body (validated here), so the rest goes through
 * class-transformer and class-validator, and the maps are put back on the result.
 */
function detachStringMaps(
  body: Record<string, unknown>,
  fields: string[],
): { rest: Record<string, unknown>; maps: Record<string, Record<string, string>> } {
  const maps: Record<string, Record<string, string>> = {};
  const errors: FieldError[] = [];
  for (const field of fields) {
    const map = body[field];
    if (isStringMap(map)) {
      maps[field] = map;
    } else {
      errors.push({ field, message: `${field} must be an object whose values are strings` });
    }
  }
  if (errors.length > 0) {
    throw AppError.validation(errors);
  }
  const rest = { ...body };
  for (const field of fields) {
    delete rest[field];
  }
  return { rest, maps };
}

/** The fields a DTO class declares (its validation metadata), found once per class. */
const declaredFields = new WeakMap<object, ReadonlySet<string>>();

function fieldsOf(metatype: Type<unknown>): ReadonlySet<string> {
  let fields = declaredFields.get(metatype);
  if (!fields) {
    const metadata = getMetadataStorage().getTargetValidationMetadatas(metatype, '', true, false);
    fields = new Set(metadata.map(({ propertyName }) => propertyName));
    declaredFields.set(metatype, fields);
  }
  return fields;
}

/**
 * The first fields of `body` its DTO does not declare, at most MAX_FIELD_ERRORS of them: one
 * pass over the keys with a set lookup each. class-validator's own whitelist check is quadratic
 * in the number of unknown fields (measured: 40,000 of them took 1.4 s), so a body with any is
 * refused here, before class-transformer and class-validator see it.
 */
function undeclaredFields(body: object, declared: ReadonlySet<string>): FieldError[] {
  const errors: FieldError[] = [];
  for (const field of Object.keys(body)) {
    if (!declared.has(field)) {
      errors.push({ field, message: 'is not a known field' });
      if (errors.length === MAX_FIELD_ERRORS) {
        break;
      }
    }
  }
  return errors;
}

const isEmpty = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && Object.keys(value).length === 0;

const isDto = (metatype: ArgumentMetadata['metatype']): boolean =>
  metatype !== undefined &&
  ![Object, String, Number, Boolean, Array, Buffer].includes(metatype as never);

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
      return this.transformBody(value, metadata, metadata.metatype as Type<unknown>);
    }
    return super.transform(value, metadata) as Promise<unknown>;
  }

  /**
   * A body DTO, in linear time: undeclared fields and string maps are checked here in one pass
   * each, and only a body with fewer undeclared fields than the error cap goes on to
   * class-validator (without them), so its own errors are listed too.
   */
  private async transformBody(
    value: unknown,
    metadata: ArgumentMetadata,
    metatype: Type<unknown>,
  ): Promise<unknown> {
    if (Buffer.isBuffer(value)) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'This operation takes a JSON body.');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw AppError.validation([{ field: 'body', message: 'body must be a JSON object' }]);
    }
    const undeclared = undeclaredFields(value, fieldsOf(metatype));
    if (undeclared.length >= MAX_FIELD_ERRORS) {
      throw AppError.validation(undeclared);
    }
    let rest = value as Record<string, unknown>;
    if (undeclared.length > 0) {
      rest = { ...rest };
      for (const { field } of undeclared) {
        delete rest[field];
      }
    }
    const mapFields = stringMapsOf(metatype);
    let maps = {};
    let dto: object;
    try {
      if (mapFields.length > 0) {
        ({ rest, maps } = detachStringMaps(rest, mapFields));
      }
      dto = (await super.transform(rest, metadata)) as object;
    } catch (error) {
      if (undeclared.length > 0 && error instanceof AppError && error.errors) {
        throw AppError.validation([...undeclared, ...error.errors]);
      }
      throw error;
    }
    if (undeclared.length > 0) {
      throw AppError.validation(undeclared);
    }
    return Object.assign(dto, maps);
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

/** Validates a parameter as `dto` whatever its declared type (which OpenAPI reads). */
export class DtoPipe implements PipeTransform {
  private readonly validation = new AppValidationPipe();

  constructor(private readonly dto: Type<unknown>) {}

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    return this.validation.transform(value, { ...metadata, metatype: this.dto });
  }
}

/** A body of raw octets only: a JSON (or empty) body is a 415, before anything is written. */
export class OctetsPipe implements PipeTransform {
  transform(value: unknown): Buffer {
    if (!Buffer.isBuffer(value)) {
      throw new AppError(
        'UNSUPPORTED_MEDIA_TYPE',
        'This operation takes the raw value as application/octet-stream.',
      );
    }
    return value;
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

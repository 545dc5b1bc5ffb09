import { ValidationPipe, type ValidationError } from '@nestjs/common';
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

/**
 * The global validation pipe: unknown fields are errors, nothing is converted implicitly (a
 * string "1e3" is not a number), and failures become 400 VALIDATION_FAILED listing each field.
 * Messages name the field and the rule, never the value.
 */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => AppError.validation(fieldErrors(errors)),
  });
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

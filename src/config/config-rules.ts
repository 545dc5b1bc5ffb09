import { IsIn, IsInt, Max, Min, type ValidationOptions } from 'class-validator';
import { applyDecorators } from '@nestjs/common';

// The rules the settings of app-config.ts share.

/**
 * An origin as a browser serialises it: http or https, a lower-case host name, IPv4 or [IPv6]
 * address, an optional port, and nothing after it (no path, no trailing slash, no wildcard).
 */
export const CORS_ORIGIN =
  /^https?:\/\/(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;
export const CORS_ORIGINS_MESSAGE =
  'must be a list of exact origins (http://host:port or https://host, no path, no wildcard)';

export const HOST_PORT = /^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;

// One message per rule, naming what is allowed and never the value that was given.
export function IntRange(min: number, max: number): PropertyDecorator {
  const message = { message: `must be an integer from ${min} to ${max}` };
  return applyDecorators(IsInt(message), Min(min, message), Max(max, message));
}

export function OneOf(
  values: readonly string[],
  options: ValidationOptions = {},
): PropertyDecorator {
  return IsIn(values as string[], { message: `must be one of: ${values.join(', ')}`, ...options });
}

export const isText = { message: 'must be a string' };
export const isFlag = { message: 'must be true or false' };

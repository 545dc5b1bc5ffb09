import { AppError } from '../errors/app-error';
import { ERROR_STATUS } from '../errors/error-status';
import type { LogFields } from '../observability/http-observability';
import type { GatewayMetrics } from '../observability/gateway-metrics';
import type { CommandName } from './command-table';
import { REDIS_REPLY, type Outcome } from './upstash-reply';

/** A pipeline's log line names at most this many distinct commands, and counts them all. */
const MAX_LOGGED_NAMES = 16;

/** How a command ended: answered, answered with a Redis error, or refused by the gateway. */
export type CommandResult = 'ok' | 'error' | 'refused';

/** `command: 'SET'` for one command; the distinct names (capped) and the count for several. */
export function commandLogFields(names: CommandName[], pipeline: boolean): LogFields {
  if (!pipeline) {
    return { command: names[0].name };
  }
  const distinct = [...new Set(names.map(({ name }) => name))];
  return { commands: distinct.slice(0, MAX_LOGGED_NAMES), commandCount: names.length };
}

/**
 * What a failed request means for each of its commands: a Redis error reply (EXECABORT,
 * CROSSSLOT) or an outage is an error, any other refusal of the gateway (a key outside the
 * token's patterns, a command not offered, a quota) means nothing of it was sent.
 */
export function failureResult(error: unknown): CommandResult {
  if (!(error instanceof AppError) || error.reason === REDIS_REPLY) {
    return 'error';
  }
  return Number(ERROR_STATUS[error.code]) < 500 ? 'refused' : 'error';
}

/** Counts each command of a request by family and result (redis_gateway_upstash_commands_total). */
export function countCommands(
  metrics: GatewayMetrics,
  names: CommandName[],
  results: CommandResult | Outcome[],
): void {
  names.forEach(({ family }, index) => {
    const result =
      typeof results === 'string' ? results : 'error' in results[index] ? 'error' : 'ok';
    metrics.upstashCommands.inc({ family, result });
  });
}

/**
 * An operation that did not settle within its deadline: its commands may still be queued in
 * the client (auto-pipelining sends a batch only after the previous one settled), so some may
 * reach Redis after the caller was answered.
 */
export class OperationTimeoutError extends Error {
  constructor() {
    super('Operation timed out');
    this.name = 'OperationTimeoutError';
  }
}

export interface DeadlineOptions {
  /** Called when the deadline passes first (e.g. to close a connection left mid-command). */
  onTimeout?: () => void;
  /** What the deadline rejects with; an OperationTimeoutError by default. */
  error?: () => Error;
}

/**
 * `operation`, or a rejection after `ms` if it has not settled by then: the one deadline every
 * Redis call of the gateway runs under (commands, scripts, blocking reads, connects, the
 * subscriber's PING). ioredis has no deadline that covers a whole operation of several round
 * trips, nor one that frees a connection stuck in a command. A late rejection of the abandoned
 * operation is swallowed (it must not become an unhandled rejection).
 */
export function withDeadline<T>(
  operation: Promise<T>,
  ms: number,
  { onTimeout, error = () => new OperationTimeoutError() }: DeadlineOptions = {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(error());
    }, ms);
  });
  operation.catch(() => undefined);
  return Promise.race([operation, deadline]).finally(() => clearTimeout(timer));
}

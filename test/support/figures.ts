/**
 * Figures a test measured (latencies, counts, recovery times), printed on stdout only when the
 * environment variable `variable` is set: FAILURES_REPORT for the failure, load and topology
 * tests, LIMITS_REPORT for the limits suite (docs/testing.md lists which). A normal run prints
 * nothing. With `figures`, the line is the label and the figures as JSON.
 */
export function report(
  label: string,
  figures?: Record<string, unknown>,
  variable = 'FAILURES_REPORT',
): void {
  if (process.env[variable]) {
    const line = figures === undefined ? label : `${label} ${JSON.stringify(figures)}`;
    process.stdout.write(`${line}\n`);
  }
}

/**
 * The p-th percentile (p from 0 to 100) by nearest rank: the smallest value with at least p % of
 * the values at or below it.
 */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

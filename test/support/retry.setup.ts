// A stopgap while the suite is not yet deterministic on a busy machine (docs/testing.md, "Timing
// bounds"): a failed test runs once more, and its first failure is printed in full, so a flake
// stays visible in the log ("logged before retry") instead of failing CI by chance. A test
// that fails twice still fails. Remove once repeated runs show no retry.
jest.retryTimes(1, { logErrorsBeforeRetry: true });

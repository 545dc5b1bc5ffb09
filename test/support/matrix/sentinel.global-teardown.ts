import type { SentinelSet } from '../topology';

interface SentinelGlobals {
  matrixSentinelSet?: SentinelSet;
}

export default async function sentinelGlobalTeardown(): Promise<void> {
  await (globalThis as SentinelGlobals).matrixSentinelSet?.stop();
}

import { SentinelSet } from '../topology';
import { SENTINEL_NAME_ENV, SENTINELS_ENV } from './env';

interface SentinelGlobals {
  matrixSentinelSet?: SentinelSet;
}

/** The Sentinel set (a primary, a replica, three Sentinels) the `sentinel` project runs on. */
export default async function sentinelGlobalSetup(): Promise<void> {
  const set = await SentinelSet.start();
  (globalThis as SentinelGlobals).matrixSentinelSet = set;
  process.env[SENTINELS_ENV] = set.sentinelNodes.join(',');
  process.env[SENTINEL_NAME_ENV] = SentinelSet.NAME;
  process.stdout.write(
    `\nsentinel project: primary 127.0.0.1:${set.primary.port}, replica 127.0.0.1:${set.replica.port}, ` +
      `Sentinels ${set.sentinelNodes.join(' ')}\n`,
  );
}

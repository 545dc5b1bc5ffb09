import type { RedisClusterSet } from '../topology';

interface ClusterGlobals {
  matrixClusterSet?: RedisClusterSet;
}

export default async function clusterGlobalTeardown(): Promise<void> {
  await (globalThis as ClusterGlobals).matrixClusterSet?.stop();
}

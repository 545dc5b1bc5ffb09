import { RedisClusterSet } from '../topology';
import { CLUSTER_NODES_ENV } from './env';

interface ClusterGlobals {
  matrixClusterSet?: RedisClusterSet;
}

/** The 3-master Redis Cluster the `cluster` project runs on. */
export default async function clusterGlobalSetup(): Promise<void> {
  const set = await RedisClusterSet.start(3);
  (globalThis as ClusterGlobals).matrixClusterSet = set;
  process.env[CLUSTER_NODES_ENV] = set.nodes.join(',');
  process.stdout.write(`\ncluster project: masters ${set.nodes.join(' ')}\n`);
}

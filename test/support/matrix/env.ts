/**
 * Which Redis topology the test matrix runs a suite against (jest.config.js `projects`): the
 * default project runs everything on one standalone Redis; the `sentinel` and `cluster` projects
 * run the endpoint suites again against a Sentinel set and a 3-master cluster that their global
 * setup started and announced through these environment variables.
 */
export type Topology = 'standalone' | 'sentinel' | 'cluster';

export const TOPOLOGY_ENV = 'TEST_TOPOLOGY';
/** `host:port,...` of the Sentinels watching the matrix's primary. */
export const SENTINELS_ENV = 'TEST_SENTINELS';
/** The name under which those Sentinels know the primary. */
export const SENTINEL_NAME_ENV = 'TEST_SENTINEL_NAME';
/** `host:port,...` of the matrix cluster's masters. */
export const CLUSTER_NODES_ENV = 'TEST_CLUSTER_NODES';

/** The topology of this test file (set by its project's setupFiles), standalone by default. */
export function testTopology(): Topology {
  const value = process.env[TOPOLOGY_ENV] ?? 'standalone';
  if (value !== 'standalone' && value !== 'sentinel' && value !== 'cluster') {
    throw new Error(`${TOPOLOGY_ENV} must be standalone, sentinel or cluster, not ${value}`);
  }
  return value;
}

/** The `host:port` list in an environment variable, which must be set. */
export function nodesFrom(variable: string): string[] {
  const nodes = (process.env[variable] ?? '').split(',').filter(Boolean);
  if (nodes.length === 0) {
    throw new Error(`${variable} is not set: the project's globalSetup did not run`);
  }
  return nodes;
}

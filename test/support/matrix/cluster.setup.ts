import { TOPOLOGY_ENV } from './env';

// Every TestApp of this test file (without an explicit redisUrl) runs in cluster mode.
process.env[TOPOLOGY_ENV] = 'cluster';

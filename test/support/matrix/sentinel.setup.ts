import { TOPOLOGY_ENV } from './env';

// Every TestApp of this test file (without an explicit redisUrl) runs in sentinel mode.
process.env[TOPOLOGY_ENV] = 'sentinel';

import type { Cluster, Redis } from 'ioredis';

/** A connection to Redis: one server (standalone, the Sentinels' primary) or a cluster. */
export type RedisClient = Redis | Cluster;

/** An argument of a command or script, as ioredis sends it. */
export type ScriptArg = string | number | Buffer;

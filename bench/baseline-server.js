// The same-run baseline of bench/http.bench.ts: what a bare Fastify + ioredis service does on this
// machine, so the gateway's figures read as a ratio rather than as absolute numbers. One route,
// GET /kv/:key, answering { key, value } from one Redis GET on an auto-pipelined connection
// (concurrent requests share one write to Redis), with a response schema (Fastify's compiled
// serializer); no auth, no validation, no logging, no metrics. Plain CommonJS, so it runs as is.
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=8081 node bench/baseline-server.js
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS, run without a build */
const Fastify = require('fastify');
const { Redis } = require('ioredis');

const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', {
  enableAutoPipelining: true,
});
redis.on('error', (error) => console.error(`baseline: redis: ${error.message}`));

const app = Fastify({ logger: false });
app.get(
  '/kv/:key',
  {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { key: { type: 'string' }, value: { type: 'string' } },
        },
      },
    },
  },
  async (request, reply) => {
    const { key } = request.params;
    const value = await redis.get(key);
    if (value === null) {
      return reply.code(404).send({ key, error: 'not found' });
    }
    return { key, value };
  },
);

app
  .listen({ port: Number(process.env.PORT || 8081), host: process.env.HOST || '127.0.0.1' })
  .catch((error) => {
    console.error(`baseline: ${error.message}`);
    process.exit(1);
  });

process.on('SIGTERM', () => {
  app
    .close()
    .then(() => redis.quit())
    .finally(() => process.exit(0));
});

// The same-run baseline of bench/http.bench.ts: what a bare Fastify + ioredis service does on this
// machine, so the gateway's figures read as a ratio rather than as absolute numbers. Two routes on
// an auto-pipelined connection (concurrent requests share one write to Redis), each with a
// response schema (Fastify's compiled serializer): GET /kv/:key answers { key, value } from one
// Redis GET, and PUT /kv/:key takes { value } as JSON and answers { key } after one SET (the
// ceiling of the gateway's writes). No auth, no validation, no logging, no metrics. Plain
// CommonJS, so it runs as is.
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

app.put(
  '/kv/:key',
  { schema: { response: { 200: { type: 'object', properties: { key: { type: 'string' } } } } } },
  async (request) => {
    const { key } = request.params;
    await redis.set(key, String(request.body?.value ?? ''));
    return { key };
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

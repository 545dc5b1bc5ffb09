import { writeFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule } from '../app.module';
import { loadConfig } from '../config/config.loader';
import { OPENAPI_FILE, buildOpenApiDocument } from './openapi';

/** `npm run openapi`: regenerates the committed openapi.json (no Redis or issuer needed). */
async function main(): Promise<void> {
  const config = loadConfig({
    env: {},
    overrides: { auth: { issuer: 'https://issuer.invalid', audience: 'redis-gateway' } },
  });
  const app = await NestFactory.create(AppModule.forRoot(config), new FastifyAdapter(), {
    logger: false,
  });
  writeFileSync(OPENAPI_FILE, `${JSON.stringify(buildOpenApiDocument(app), null, 2)}\n`);
  await app.close();
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}

void main();

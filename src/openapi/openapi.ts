import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { TICKET_SCHEME } from '../auth/accepts-ticket.decorator';
import { BEARER_SCHEME } from '../auth/require-scopes.decorator';
import { AppConfig } from '../config/app-config';
import { applyDocumentRules } from './document-rules';
import { ALL_SCOPES } from '../auth/scopes';

export const OPENAPI_FILE = resolve(__dirname, '../../openapi.json');

const VERSION = (
  JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }
).version;

const DESCRIPTION = `Redis behind HTTP: key-value with TTL, hashes, pub/sub, streams and locks.

Every path under /redis needs \`Authorization: Bearer <JWT>\` from the configured OIDC issuer.
Scopes: ${ALL_SCOPES.join(', ')} (each operation lists the one it needs). Errors are RFC 9457
problem details (application/problem+json) with a stable \`code\`.`;

/** The OpenAPI 3.1 document of every route, from the controllers' decorators. */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setOpenAPIVersion('3.1.0')
    .setTitle('redis-gateway')
    .setDescription(DESCRIPTION)
    .setVersion(VERSION)
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: `An access token from the OIDC issuer, with the scopes ${ALL_SCOPES.join(' and ')}`,
      },
      BEARER_SCHEME,
    )
    .addApiKey(
      {
        type: 'apiKey',
        in: 'query',
        name: 'ticket',
        description:
          'A single-use stream ticket from POST /redis/tickets, for the SSE path it was issued for',
      },
      TICKET_SCHEME,
    )
    .build();
  const document = SwaggerModule.createDocument(app, config, {
    operationIdFactory: (controllerKey, methodKey) =>
      `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
  });
  const { limits } = app.get(AppConfig);
  return applyDocumentRules(document, {
    maxNameBytes: limits.maxKeyBytes,
    maxBatch: limits.maxBatchKeys,
  });
}

/** Serves the document at /openapi.json and its UI at /docs (both public). */
export function serveOpenApi(app: INestApplication): void {
  SwaggerModule.setup('docs', app, buildOpenApiDocument(app), {
    jsonDocumentUrl: 'openapi.json',
    raw: ['json'],
  });
}

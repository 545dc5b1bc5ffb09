import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from './app.factory';
import type { AppConfig } from './config/app-config';

/**
 * Starts the service and shuts it down gracefully on SIGTERM/SIGINT: stop accepting, let
 * in-flight requests finish (bounded by server.shutdownTimeoutMs), then close Redis, exit 0.
 */
export async function bootstrap(config: AppConfig): Promise<NestFastifyApplication> {
  const app = await createApp(config);
  await app.listen({ port: config.server.port, host: config.server.host });
  let closing = false;
  const shutdown = () => {
    if (closing) {
      return;
    }
    closing = true;
    const deadline = setTimeout(() => process.exit(1), config.server.shutdownTimeoutMs);
    deadline.unref();
    app
      .close()
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  return app;
}

import 'reflect-metadata';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrap } from '../bootstrap';
import { ConfigError, loadConfig } from '../config/config.loader';
import { CLIENT_SECRET, LocalIssuer } from './local-issuer';
import { answersPing, freePort } from './local-redis';

/**
 * `npm run dev`: the gateway with a usable local setup. Redis from REDIS_URL, else the one on
 * 127.0.0.1:6379, else a throwaway redis-server; a local development issuer; a ready curl.
 */

const env = process.env;

function fail(message: string): never {
  process.stderr.write(`redis-gateway dev: ${message}\n`);
  process.exit(1);
}

async function throwawayRedis(): Promise<{ url: string; child: ChildProcess }> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    fail('no Redis answers on 127.0.0.1:6379 and redis-server is not installed; set REDIS_URL');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-dev-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    { stdio: 'ignore' },
  );
  process.on('exit', () => {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 50 && !(await answersPing(url)); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, child };
}

async function findRedis(): Promise<{ url: string; origin: string }> {
  if (env.REDIS_URL) {
    return { url: env.REDIS_URL, origin: 'from REDIS_URL' };
  }
  const local = 'redis://127.0.0.1:6379';
  if (await answersPing(local)) {
    return { url: local, origin: 'already running' };
  }
  const { url } = await throwawayRedis();
  return { url, origin: 'throwaway redis-server started for this session' };
}

async function main(): Promise<void> {
  if (env.NODE_ENV === 'production') {
    fail('refusing to start: the development issuer must never run with NODE_ENV=production');
  }
  const redis = await findRedis();
  const issuer = await LocalIssuer.start({ clients: ['local-client'] });
  let config;
  try {
    config = loadConfig({
      env: {
        ...env,
        HOST: env.HOST ?? '127.0.0.1',
        REDIS_URL: redis.url,
        OIDC_ISSUER: issuer.url,
        OIDC_AUDIENCE: issuer.audience,
        JWKS_URI: '',
      },
      // A development Redis has usually just started and keeps nothing: the delayed restart
      // that protects production locks (locks.delayedRestartMs) would refuse locks for minutes.
      overrides: { locks: { delayedRestartMs: 0 } },
    });
  } catch (error) {
    fail(error instanceof ConfigError ? error.message : String(error));
  }
  await bootstrap(config);

  const base = `http://${config.server.host}:${config.server.port}`;
  const token = await issuer.token({ ttlS: 8 * 3600 });
  await fetch(`${base}/redis/kv/hello`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ value: 'world' }),
  });
  const tokenCommand =
    `curl -s -u local-client:${CLIENT_SECRET} -d grant_type=client_credentials ` +
    `-d resource=urn:redis-gateway -d 'scope=redis:read redis:write' ${issuer.url}/token`;
  process.stdout.write(
    [
      '',
      `redis-gateway (development) listening on ${base}`,
      `  Redis:  ${redis.url} (${redis.origin})`,
      `  Issuer: ${issuer.url} (development issuer; never for production)`,
      `  Docs:   ${base}/docs`,
      '',
      'Read the sample key (the token below is valid for 8 hours):',
      '',
      `  curl -s ${base}/redis/kv/hello -H 'Authorization: Bearer ${token}'`,
      '',
      'Write one:',
      '',
      `  curl -s -X PUT ${base}/redis/kv/greeting -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' -d '{"value":"hi","ttl":60}'`,
      '',
      'A fresh token:',
      '',
      `  ${tokenCommand}`,
      '',
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));

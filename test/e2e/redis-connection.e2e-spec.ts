import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { LocalIssuer } from '../../src/dev/local-issuer';
import { withApp, type TestApp } from '../support/app';
import { eventually, freePort } from '../support/ports';
import { RedisServer } from '../support/redis';

/** How the gateway reaches Redis: ACL credentials, a rotated password file, db, TLS with a CA. */
describe('connecting to Redis', () => {
  let issuer: LocalIssuer;
  let dir: string;

  beforeAll(async () => {
    issuer = await LocalIssuer.start();
    dir = mkdtempSync(join(tmpdir(), 'gateway-connection-'));
  });

  afterAll(async () => {
    await issuer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function roundTrip(t: TestApp, name: string): Promise<number> {
    const put = await t.call('PUT', `/redis/kv/${name}`, {
      token: t.tokens.both,
      body: { value: name },
    });
    return put.statusCode;
  }

  describe('ACL user and password file', () => {
    let server: RedisServer;
    let admin: Redis;

    beforeAll(async () => {
      server = await RedisServer.start();
      admin = server.client();
      await admin.call('ACL', 'SETUSER', 'svc', 'on', '>first-password', '~*', '&*', '+@all');
    });

    afterAll(async () => {
      await server.stop();
    });

    it('authenticates as the configured ACL user', async () => {
      await withApp(
        {
          issuer,
          redisUrl: server.url,
          config: { redis: { username: 'svc', password: 'first-password' } },
        },
        async (t) => {
          expect(await roundTrip(t, 'acl')).toBe(200);
          const clients = String(await admin.call('CLIENT', 'LIST'));
          expect(clients).toMatch(/name=redis-gateway:command .*user=svc/);
        },
      );
    });

    it('is not ready with a wrong password, and never shows it', async () => {
      await withApp(
        {
          issuer,
          redisUrl: server.url,
          captureLogs: true,
          ready: false,
          config: { redis: { username: 'svc', password: 'wrong-password-value' } },
        },
        async (t) => {
          const response = await t.call('GET', '/redis/kv/x', { token: t.tokens.read });
          expect(response.statusCode).toBe(503);
          expect(response.json().code).toBe('REDIS_UNAVAILABLE');
          expect((await t.call('GET', '/readyz')).statusCode).toBe(503);
          expect(response.body).not.toContain('wrong-password-value');
          expect(t.logs.join('')).not.toContain('wrong-password-value');
        },
      );
    });

    it('re-reads a rotated password file for new connections (R-11a)', async () => {
      const passwordFile = join(dir, 'redis-password');
      writeFileSync(passwordFile, 'first-password\n');
      await withApp(
        {
          issuer,
          redisUrl: server.url,
          config: { redis: { username: 'svc', passwordFile } },
        },
        async (t) => {
          expect(await roundTrip(t, 'before-rotation')).toBe(200);
          // Rotation: both passwords valid, the file changes, the old password goes away.
          await admin.call('ACL', 'SETUSER', 'svc', '>second-password');
          writeFileSync(passwordFile, 'second-password\n');
          await new Promise((resolve) => setTimeout(resolve, 2500));
          await admin.call('ACL', 'SETUSER', 'svc', '<first-password');
          // Live connections keep working after a password change (Redis); drop them to prove
          // that new ones authenticate with the new password.
          await admin.call('CLIENT', 'KILL', 'USER', 'svc');
          await eventually(
            async () => expect(await roundTrip(t, 'after-rotation')).toBe(200),
            5000,
          );
          expect(await admin.get(`${t.prefix}after-rotation`)).toBe('after-rotation');
        },
      );
    });
  });

  it('selects the database from the URL', async () => {
    const server = await RedisServer.start();
    try {
      await withApp({ issuer, redisUrl: `${server.url}/3` }, async (t) => {
        expect(await roundTrip(t, 'in-db-3')).toBe(200);
        const db3 = server.client({ db: 3 });
        expect(await db3.get(`${t.prefix}in-db-3`)).toBe('in-db-3');
        expect(await server.client().exists(`${t.prefix}in-db-3`)).toBe(0);
      });
    } finally {
      await server.stop();
    }
  });

  describe('rediss:// with a CA file', () => {
    let server: RedisServer;
    let tlsPort: number;
    let caFile: string;

    beforeAll(async () => {
      const openssl = (...args: string[]) =>
        execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
      openssl(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '1',
        '-subj',
        '/CN=test-ca',
      );
      openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'server.key',
        '-out',
        'server.csr',
        '-subj',
        '/CN=127.0.0.1',
      );
      writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
      openssl(
        'x509',
        '-req',
        '-in',
        'server.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'server.crt',
        '-days',
        '1',
        '-extfile',
        'ext.cnf',
      );
      caFile = join(dir, 'ca.crt');
      tlsPort = await freePort();
      server = await RedisServer.start({
        args: [
          '--tls-port',
          String(tlsPort),
          '--tls-cert-file',
          join(dir, 'server.crt'),
          '--tls-key-file',
          join(dir, 'server.key'),
          '--tls-ca-cert-file',
          caFile,
          '--tls-auth-clients',
          'no',
        ],
      });
    });

    afterAll(async () => {
      await server.stop();
    });

    it('connects over TLS trusting the configured CA', async () => {
      await withApp(
        {
          issuer,
          redisUrl: `rediss://127.0.0.1:${tlsPort}`,
          config: { redis: { tls: { caFile } } },
        },
        async (t) => {
          expect(await roundTrip(t, 'over-tls')).toBe(200);
          expect(await server.client().get(`${t.prefix}over-tls`)).toBe('over-tls');
          expect(await t.redis.get(`${t.prefix}over-tls`)).toBe('over-tls');
        },
      );
    });

    it('refuses a server its trust does not cover (503, not ready)', async () => {
      await withApp(
        {
          issuer,
          redisUrl: `rediss://127.0.0.1:${tlsPort}`,
          ready: false,
        },
        async (t) => {
          expect(await roundTrip(t, 'untrusted')).toBe(503);
          expect((await t.call('GET', '/readyz')).statusCode).toBe(503);
        },
      );
    });
  });
});

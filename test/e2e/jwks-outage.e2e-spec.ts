import { LocalIssuer } from '../../src/dev/local-issuer';
import { TestApp } from '../support/app';
import { sleep } from '../support/ports';

/** An issuer whose JWKS endpoint fails after the keys were cached (RELIABILITY.md A-7). */
describe('JWKS endpoint outage', () => {
  let issuer: LocalIssuer;

  beforeEach(async () => {
    issuer = await LocalIssuer.start();
  });

  afterEach(async () => {
    await issuer.close();
  });

  async function readAfterOutage(staleFallbackMs: number): Promise<number> {
    const t = await TestApp.create({
      issuer,
      config: {
        auth: {
          jwksCacheMaxAgeMs: 1000,
          jwksStaleFallbackMs: staleFallbackMs,
          // The verified-token cache trusts a token this long without its key: keep it short.
          tokenCacheTtlMs: 1000,
        },
      },
    });
    try {
      const token = await issuer.token({});
      expect((await t.call('GET', '/redis/kv/k', { token })).statusCode).toBe(404);
      issuer.jwksBehaviour = { status: 500 };
      await sleep(1300);
      const fetchesBefore = issuer.jwksFetches;
      const status = (await t.call('GET', '/redis/kv/k', { token })).statusCode;
      // The cached key had expired: the gateway did try the endpoint again.
      expect(issuer.jwksFetches).toBeGreaterThan(fetchesBefore);
      return status;
    } finally {
      await t.close();
    }
  }

  it('keeps accepting tokens of known keys past their cache age while the endpoint fails', async () => {
    expect(await readAfterOutage(60000)).toBe(404);
  });

  it('refuses them once the fallback window is off (auth.jwksStaleFallbackMs: 0)', async () => {
    expect(await readAfterOutage(0)).toBe(401);
  });
});

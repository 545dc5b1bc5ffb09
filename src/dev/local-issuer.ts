import './quiet-oidc-provider';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { ALL_SCOPES } from '../auth/scopes';

/**
 * A real OpenID provider on loopback for development and tests: oidc-provider issuing RS256
 * JWT access tokens through the client_credentials grant, with its discovery document and a
 * JWKS the owner can change (add or remove keys, fail, slow down) and count fetches of.
 * Development only: never part of a production configuration.
 */

export interface LocalIssuerOptions {
  /** Port to listen on (0: any free port). */
  port?: number;
  audience?: string;
  /** Client ids that may get tokens; a client_credentials token's `sub` is its client id. */
  clients?: string[];
  /** Lifetime of issued tokens in seconds unless a request asks for another. */
  tokenTtlS?: number;
}

export interface TokenRequest {
  scopes?: readonly string[];
  /** The key-pattern claim (`redis_keys`); omitted when undefined. */
  keyPatterns?: readonly string[];
  ttlS?: number;
  clientId?: string;
}

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface JwksBehaviour {
  /** Answer the JWKS with this HTTP status instead of the keys. */
  status?: number;
  delayMs?: number;
  /** Answer this raw body instead of the keys. */
  body?: string;
}

export const CLIENT_SECRET = 'local-issuer-secret-not-for-production';
const RESOURCE = 'urn:redis-gateway';

export async function createSigningKey(alg = 'RS256', kid = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export class LocalIssuer {
  /** Requests served at the JWKS endpoint so far. */
  jwksFetches = 0;
  jwksBehaviour: JwksBehaviour = {};
  /** The keys the JWKS publishes; the first is the one oidc-provider signs with. */
  published: SigningKey[];

  private constructor(
    readonly url: string,
    readonly audience: string,
    readonly signingKey: SigningKey,
    private readonly server: Server,
  ) {
    this.published = [signingKey];
  }

  static async start(options: LocalIssuerOptions = {}): Promise<LocalIssuer> {
    const audience = options.audience ?? 'redis-gateway';
    const clients = options.clients ?? ['local-client', 'other-client'];
    const tokenTtlS = options.tokenTtlS ?? 3600;
    const signingKey = await createSigningKey('RS256');
    const privateJwk = {
      ...(await exportJWK(signingKey.privateKey)),
      kid: signingKey.kid,
      alg: 'RS256',
      use: 'sig',
    };

    const server = createServer();
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // oidc-provider drops unknown parameters of the token endpoint from ctx.oidc.params; the
    // parsed form body still has them.
    const paramOf = (ctx: { oidc: { body?: Record<string, unknown> } }, name: string) => {
      const value = ctx.oidc.body?.[name];
      return typeof value === 'string' ? value : undefined;
    };

    const provider = new Provider(url, {
      clients: clients.map((client_id) => ({
        client_id,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: ALL_SCOPES.join(' '),
      })),
      jwks: { keys: [privateJwk] },
      scopes: [...ALL_SCOPES],
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (ctx) => {
            const ttl = Number(paramOf(ctx, 'ttl') ?? tokenTtlS);
            return {
              scope: ALL_SCOPES.join(' '),
              audience,
              accessTokenTTL: ttl,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            };
          },
        },
      },
      extraTokenClaims: (ctx) => {
        const patterns = paramOf(ctx, 'redis_keys');
        return patterns === undefined ? {} : { redis_keys: JSON.parse(patterns) as string[] };
      },
    });
    provider.on('server_error', () => undefined);

    const issuer = new LocalIssuer(url, audience, signingKey, server);
    const providerCallback = provider.callback();
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if (request.url === '/jwks') {
        void issuer.serveJwks(response);
      } else {
        void providerCallback(request, response);
      }
    });
    return issuer;
  }

  /** A real access token from the token endpoint (client_credentials). */
  async token(request: TokenRequest = {}): Promise<string> {
    const clientId = request.clientId ?? 'local-client';
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      resource: RESOURCE,
      scope: (request.scopes ?? ALL_SCOPES).join(' '),
    });
    if (request.keyPatterns) {
      form.set('redis_keys', JSON.stringify(request.keyPatterns));
    }
    if (request.ttlS !== undefined) {
      form.set('ttl', String(request.ttlS));
    }
    const send = () =>
      fetch(`${this.url}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${CLIENT_SECRET}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: form,
      });
    // fetch reuses idle keep-alive sockets, and one the server is closing at that moment fails
    // with ECONNRESET before the request is read (likelier on a busy machine). Issuing a token
    // has no effect to repeat, so one retry on a fresh socket is safe.
    const response = await send().catch((error: Error) => {
      if ((error.cause as NodeJS.ErrnoException | undefined)?.code !== 'ECONNRESET') {
        throw error;
      }
      return send();
    });
    const body = (await response.json()) as { access_token?: string; error_description?: string };
    if (!response.ok || !body.access_token) {
      throw new Error(`token request failed: ${response.status} ${body.error_description ?? ''}`);
    }
    return body.access_token;
  }

  /**
   * Signs any claims with any header, by default with the issuer's own key and valid standard
   * claims, so tests can forge exactly the token they need.
   */
  async sign(
    claims: Record<string, unknown> = {},
    options: { header?: Record<string, unknown>; key?: SigningKey } = {},
  ): Promise<string> {
    const key = options.key ?? this.signingKey;
    const now = Math.floor(Date.now() / 1000);
    const payload = {
      iss: this.url,
      aud: this.audience,
      sub: 'forged-client',
      iat: now,
      exp: now + 300,
      jti: randomUUID(),
      scope: ALL_SCOPES.join(' '),
      ...claims,
    };
    for (const [name, value] of Object.entries(payload)) {
      if (value === undefined) {
        delete payload[name as keyof typeof payload];
      }
    }
    return new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...options.header })
      .sign(key.privateKey);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serveJwks(response: ServerResponse): Promise<void> {
    this.jwksFetches++;
    const { status, delayMs, body } = this.jwksBehaviour;
    if (delayMs) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    response.writeHead(status ?? 200, { 'content-type': 'application/json' });
    response.end(body ?? JSON.stringify({ keys: this.published.map((key) => key.publicJwk) }));
  }
}

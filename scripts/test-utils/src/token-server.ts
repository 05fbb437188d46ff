import { createPrivateKey, randomBytes, sign, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A token server like the ones in front of ghcr.io or Docker Hub, small enough to read: it answers
 * `GET /token?service=…&scope=…` with an ES256 JWT in the exact shape distribution 2.8 accepts
 * (test-infra.md): x5c with the signing certificate, string `aud`, integer `exp`, `access` claims.
 * Anonymous callers get `anonymousActions`, users with the right Basic password get `userActions`.
 */
export interface TokenServerOptions {
  readonly issuer: string;
  readonly service: string;
  readonly signingKeyPem: string;
  readonly signingCertPem: string;
  /** user name → password */
  readonly users: Readonly<Record<string, string>>;
  readonly anonymousActions?: readonly string[];
  readonly userActions?: readonly string[];
  /** Token lifetime in seconds; default 300. */
  readonly expiresInSeconds?: number;
  /** Answer with `access_token` instead of `token` (both forms exist in the wild). */
  readonly useAccessTokenField?: boolean;
}

export interface TokenRequest {
  readonly user: string | undefined;
  readonly scopes: readonly string[];
  readonly hadAuthorization: boolean;
}

export interface TokenServer {
  /** The realm URL to configure in the registry. */
  readonly realm: string;
  readonly requests: TokenRequest[];
  /** Holds every token answer this long from now on (0 again to stop): lets concurrent callers overlap. */
  setAnswerDelay(ms: number): void;
  close(): Promise<void>;
}

function base64url(value: Buffer | string): string {
  return Buffer.from(value).toString('base64url');
}

function passwordMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const key = createPrivateKey(options.signingKeyPem);
  // x5c wants STANDARD base64 of the DER certificate.
  const x5c = [new X509Certificate(options.signingCertPem).raw.toString('base64')];
  const requests: TokenRequest[] = [];
  let answerDelayMs = 0;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (req.method !== 'GET' || url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    const authorization = req.headers.authorization;
    if (authorization !== undefined) {
      const match = /^Basic\s+(.+)$/i.exec(authorization);
      const decoded = match === null ? '' : Buffer.from(match[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const name = decoded.slice(0, colon);
      const password = options.users[name];
      if (colon < 0 || password === undefined || !passwordMatches(password, decoded.slice(colon + 1))) {
        requests.push({ user: undefined, scopes: url.searchParams.getAll('scope'), hadAuthorization: true });
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }),
          );
        return;
      }
      user = name;
    }
    const scopes = url.searchParams
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter((s) => s !== '');
    requests.push({ user, scopes, hadAuthorization: authorization !== undefined });
    const allowed = new Set(
      user === undefined ? (options.anonymousActions ?? ['pull']) : (options.userActions ?? ['pull', 'push']),
    );
    const access = scopes.flatMap((scope) => {
      const parts = scope.split(':');
      if (parts.length < 3) return [];
      const [type, ...rest] = parts;
      const actions = rest
        .pop()!
        .split(',')
        .filter((a) => allowed.has(a));
      return [{ type: type!, name: rest.join(':'), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresInSeconds ?? 300;
    const header = { typ: 'JWT', alg: 'ES256', x5c };
    const claims = {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + expiresIn,
      nbf: now - 5,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    // distribution verifies raw r‖s, not Node's default DER signature encoding.
    const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${signingInput}.${base64url(signature)}`;
    const body = options.useAccessTokenField === true ? { access_token: token } : { token };
    // The request is counted at once; only the answer waits.
    setTimeout(() => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(
          JSON.stringify({ ...body, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }),
        );
    }, answerDelayMs);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    setAnswerDelay: (ms) => {
      answerDelayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

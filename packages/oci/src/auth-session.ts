import { parseAuthChallenge, type AuthChallenge } from './auth.js';
import { resolveCredentials, type CredentialOptions, type ResolvedCredentials } from './credentials.js';
import { OciError, redactUrl } from './errors.js';
import type { OciEvent, OciEventListener } from './events.js';
import { formatReference, registryApiHost, type ImageReference } from './reference.js';
import { errorFromResponse } from './response-errors.js';
import type { HttpClient, HttpRequestOptions, HttpResponse } from './transport.js';

/** Sends requests to a repository with whatever authorization its registry asks for. */
export interface RegistrySession {
  /**
   * `path` is relative to `/v2/<repository>` or an absolute URL (an upload location); `scopes` are
   * the token scopes the request needs (`repository:NAME:pull`).
   */
  send(
    ref: ImageReference,
    path: string,
    scopes: readonly string[],
    options: HttpRequestOptions,
  ): Promise<HttpResponse>;
}

export interface AuthSessionOptions {
  readonly credentials?: CredentialOptions | undefined;
  readonly plainHttp?: boolean | undefined;
  readonly onEvent?: OciEventListener | undefined;
}

interface Token {
  readonly header: string;
  readonly expiresAt: number;
}

/** A token fetch that several requests wait for; aborted only when every one of them gave up. */
interface SharedTokenFetch {
  readonly promise: Promise<Token>;
  readonly controller: AbortController;
  waiting: number;
  settled: boolean;
}

interface RegistryAuth {
  challenge?: AuthChallenge;
  credentials?: Promise<ResolvedCredentials>;
  /** Keyed by realm, service and the sorted scopes. */
  readonly tokens: Map<string, Token>;
  readonly fetching: Map<string, SharedTokenFetch>;
}

type BearerChallenge = Extract<AuthChallenge, { scheme: 'bearer' }>;

const MAX_TOKEN_BODY = 1024 * 1024;
const TOKEN_EXPIRY_MARGIN_MS = 10_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;

/**
 * Authorization for one client, per registry: learns the challenge from the first 401, resolves
 * credentials once, and keeps Bearer tokens per realm/service/scope until shortly before they
 * expire. Concurrent requests that need the same token share one token request (like oras-go's
 * auth cache), so N parallel pulls cost the token server one round trip, not N.
 */
export class AuthSession implements RegistrySession {
  private readonly registries = new Map<string, RegistryAuth>();

  constructor(
    private readonly http: HttpClient,
    private readonly options: AuthSessionOptions,
  ) {}

  async send(
    ref: ImageReference,
    path: string,
    scopes: readonly string[],
    options: HttpRequestOptions,
  ): Promise<HttpResponse> {
    const url = /^https?:\/\//.test(path)
      ? path
      : `${this.baseUrl(ref.registry)}/v2/${ref.repository}${path}`;
    // Upload locations may point elsewhere (a storage host): registry credentials go only to the registry.
    if (new URL(url).host !== registryApiHost(ref.registry)) return this.http.request(url, options);
    const first = await this.authorization(ref.registry, scopes, undefined, options.signal);
    const response = await this.http.request(url, withAuthorization(options, first));
    if (response.status !== 401) return response;
    const challenge = parseAuthChallenge(response.headers['www-authenticate']);
    if (challenge === undefined) return response;
    await response.discard();
    this.state(ref.registry).challenge = challenge;
    const allScopes = challenge.scheme === 'bearer' ? [...new Set([...scopes, ...challenge.scopes])] : scopes;
    const second = await this.authorization(ref.registry, allScopes, first ?? '', options.signal);
    if (second === undefined || second === first) {
      const { credentials } = await this.credentials(ref.registry);
      throw new OciError('UNAUTHORIZED', `${formatReference(ref)}: the registry requires authentication`, {
        status: 401,
        url: redactUrl(url),
        hint:
          credentials === undefined
            ? 'log in (docker login) or pass --username/--password or --registry-token'
            : 'check the credentials (--username/--password, --registry-token or docker login)',
      });
    }
    return this.http.request(url, withAuthorization(options, second));
  }

  private state(registry: string): RegistryAuth {
    let state = this.registries.get(registry);
    if (state === undefined) {
      state = { tokens: new Map(), fetching: new Map() };
      this.registries.set(registry, state);
    }
    return state;
  }

  private baseUrl(registry: string): string {
    return `${this.options.plainHttp === true ? 'http' : 'https'}://${registryApiHost(registry)}`;
  }

  private credentials(registry: string): Promise<ResolvedCredentials> {
    const state = this.state(registry);
    state.credentials ??= resolveCredentials(registry, this.options.credentials).then((resolved) => {
      this.emit({ type: 'credentials', registry, source: resolved.source });
      return resolved;
    });
    return state.credentials;
  }

  /**
   * The Authorization header for a request, or undefined when none is known to be needed.
   * `rejected` is the header the registry just answered 401 to ('' for none): a cached token other
   * than that one is newer (another request refreshed it) and is used instead of asking again.
   */
  private async authorization(
    registry: string,
    scopes: readonly string[],
    rejected: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const state = this.state(registry);
    const { credentials } = await this.credentials(registry);
    if (credentials?.kind === 'bearer') return `Bearer ${credentials.token}`;
    const challenge = state.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      if (credentials === undefined) return undefined;
      if (rejected !== undefined) this.emit({ type: 'auth', registry, scheme: 'basic' });
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const scope = [...scopes].sort().join(' ');
    const key = `${challenge.realm} ${challenge.service ?? ''} ${scope}`;
    const cached = state.tokens.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now() && cached.header !== rejected)
      return cached.header;
    const token = await this.sharedTokenFetch(state, key, registry, challenge, scopes, signal);
    return token.header;
  }

  private async sharedTokenFetch(
    state: RegistryAuth,
    key: string,
    registry: string,
    challenge: BearerChallenge,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<Token> {
    let shared = state.fetching.get(key);
    if (shared === undefined) {
      const controller = new AbortController();
      const fetch: SharedTokenFetch = {
        promise: this.fetchToken(registry, challenge, scopes, controller.signal)
          .then((token) => {
            state.tokens.set(key, token);
            this.emit({ type: 'auth', registry, scheme: 'bearer', scope: [...scopes].sort().join(' ') });
            return token;
          })
          .finally(() => {
            fetch.settled = true;
            state.fetching.delete(key);
          }),
        controller,
        waiting: 0,
        settled: false,
      };
      // Every waiter may have left (aborted) before it fails: nobody else is there to see the failure.
      fetch.promise.catch(() => undefined);
      state.fetching.set(key, fetch);
      shared = fetch;
    }
    return waitForShared(shared, signal);
  }

  private async fetchToken(
    registry: string,
    challenge: BearerChallenge,
    scopes: readonly string[],
    signal: AbortSignal,
  ): Promise<Token> {
    const { credentials } = await this.credentials(registry);
    const url = new URL(challenge.realm);
    if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (credentials?.kind === 'basic') {
      headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    const response = await this.http.request(url, { headers, signal });
    if (response.status !== 200) throw await errorFromResponse(response, 'token', undefined);
    const text = await response.text(MAX_TOKEN_BODY);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new OciError('UNAUTHORIZED', `the token server at ${redactUrl(url)} did not answer JSON`, {
        url: redactUrl(url),
      });
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new OciError('UNAUTHORIZED', `the token server at ${redactUrl(url)} gave no token`, {
        url: redactUrl(url),
      });
    }
    const lifetime =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + lifetime * 1000 - TOKEN_EXPIRY_MARGIN_MS };
  }

  private emit(event: OciEvent): void {
    this.options.onEvent?.(event);
  }
}

/** Waits for a shared fetch; an aborted waiter leaves at once, and the last one to leave stops the fetch. */
async function waitForShared(shared: SharedTokenFetch, signal: AbortSignal | undefined): Promise<Token> {
  const aborted = (): OciError =>
    new OciError('ABORTED', 'the token request was aborted', { cause: signal?.reason });
  if (signal?.aborted === true) throw aborted();
  shared.waiting++;
  let onAbort: (() => void) | undefined;
  try {
    if (signal === undefined) return await shared.promise;
    return await Promise.race([
      shared.promise,
      new Promise<never>((_, reject) => {
        onAbort = () => reject(aborted());
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    if (--shared.waiting === 0 && !shared.settled) shared.controller.abort();
  }
}

function withAuthorization(
  options: HttpRequestOptions,
  authorization: string | undefined,
): HttpRequestOptions {
  if (authorization === undefined) return options;
  return { ...options, headers: { ...options.headers, authorization } };
}

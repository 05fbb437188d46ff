import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Agent, Dispatcher, ProxyAgent } from 'undici';
import { Agent as AgentDispatcher, ProxyAgent as ProxyAgentDispatcher } from './undici-dispatchers.js';
import { OciError, redactUrl, type OciErrorCode } from './errors.js';
import type { OciEvent, OciEventListener } from './events.js';

/** How to reach servers: TLS trust, proxies, timeouts. Shared by the registry client and plain HTTPS downloads. */
export interface TransportOptions {
  /** Talk plain HTTP to registries. Explicit only: never inferred from a host name. */
  readonly plainHttp?: boolean | undefined;
  /** Skip TLS certificate verification (Trivy's `--insecure`). */
  readonly insecure?: boolean | undefined;
  /** An extra CA certificate (PEM) trusted in addition to the system roots (`--ca-cert`). */
  readonly caCertPem?: string | undefined;
  /** Sent on every request, e.g. `trivy-airgap/0.1.0`. */
  readonly userAgent: string;
  /** Where HTTP(S)_PROXY / NO_PROXY are read from; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** TCP + TLS connect timeout; default 30 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** Longest silence while waiting for headers or between body chunks; default 60 s. */
  readonly idleTimeoutMs?: number | undefined;
  readonly retry?: RetryOptions | undefined;
}

/** Retries on connection errors, 408, 429 and 5xx. Tests set tiny delays here. */
export interface RetryOptions {
  /** Attempts per request including the first; default 5. */
  readonly maxAttempts?: number | undefined;
  /** First backoff delay; doubled per attempt, with jitter; default 500 ms. */
  readonly baseDelayMs?: number | undefined;
  /** Largest single delay, also the cap on Retry-After; default 30 s. */
  readonly maxDelayMs?: number | undefined;
  /** Total time budget for one request's retries; default 120 s. */
  readonly maxTotalMs?: number | undefined;
}

export interface HttpRequestOptions {
  readonly method?: string | undefined;
  /** Lower-case names are simplest; `user-agent` is added. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** A factory is called again for every retry, so a stream body can be re-sent. */
  readonly body?: Buffer | string | (() => Readable) | undefined;
  readonly signal?: AbortSignal | undefined;
  /** `follow` (default) follows up to `maxRedirects` redirects, dropping Authorization when the origin changes. */
  readonly redirect?: 'follow' | 'manual' | undefined;
  readonly maxRedirects?: number | undefined;
  /** Default true; false sends the request exactly once (e.g. a PATCH that must not be repeated). */
  readonly retry?: boolean | undefined;
}

export interface HttpResponse {
  readonly status: number;
  /** Final URL after redirects. */
  readonly url: string;
  /** Lower-case header names; repeated headers joined with ", " (except set-cookie, which is dropped). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readable;
  /** Reads the whole body, failing with `tooLarge` when it would exceed `limit` bytes. */
  bytes(limit: number, tooLarge?: OciErrorCode): Promise<Buffer>;
  text(limit: number): Promise<string>;
  /** Throws away the body so the connection can be reused. */
  discard(): Promise<void>;
}

/** A `fetch`-like client with our transport rules: CA/insecure, proxies, retries, safe redirects. */
export interface HttpClient {
  request(url: string | URL, options?: HttpRequestOptions): Promise<HttpResponse>;
  close(): Promise<void>;
}

export interface HttpClientOptions extends TransportOptions {
  readonly onEvent?: OciEventListener | undefined;
}

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const TLS_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);
const TIMEOUT_ERROR_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

const DNS_ERROR_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const REFUSED_ERROR_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * A name that does not resolve or a port nobody listens on will not change in seconds: such
 * failures are tried once more, briefly, instead of through the whole backoff (16 "retrying" lines
 * for a machine without network, each with the same cause).
 */
const BRIEF_RETRY_CODES = new Set<OciErrorCode>(['DNS', 'CONNECTION_REFUSED']);
const BRIEF_RETRY_ATTEMPTS = 2;
const BRIEF_RETRY_DELAY_MS = 500;

/**
 * Turns a socket/TLS/undici error into an OciError without leaking the query string, naming the
 * real cause (DNS, a refused connection, TLS vs plain HTTP) and its fix. `proxy` is the proxy the
 * request went through, if any: then the name or port that failed may be the proxy's.
 */
export function networkError(cause: unknown, url: string | URL, proxy?: string): OciError {
  const code = errorCode(cause);
  const where = redactUrl(url);
  const host = hostOf(url);
  const via = proxy === undefined ? '' : ` through the proxy ${redactUrl(proxy)}`;
  if (isAbort(cause))
    return new OciError('ABORTED', `request to ${where} was aborted`, { cause, url: where });
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new OciError('TLS', `${host} does not speak TLS: it answered in plain HTTP (${code})`, {
      cause,
      url: where,
      hint: 'if the registry serves plain HTTP, pass --plain-http',
    });
  }
  if (code !== undefined && TLS_ERROR_CODES.has(code)) {
    return new OciError('TLS', `TLS verification failed for ${where} (${code})`, {
      cause,
      url: where,
      hint: 'pass the registry CA with --ca-cert, or --insecure to skip verification',
    });
  }
  if (code !== undefined && DNS_ERROR_CODES.has(code)) {
    const name = proxy === undefined ? host : hostOf(proxy);
    return new OciError(
      'DNS',
      `cannot resolve ${name}${proxy === undefined ? '' : ' (the proxy)'}: ${code === 'EAI_AGAIN' ? 'the DNS server did not answer' : 'no such host name'} (${code})`,
      {
        cause,
        url: where,
        hint:
          proxy === undefined
            ? "this machine cannot look up the registry's name: check its network and DNS (or the host name); if it must use a proxy, set HTTPS_PROXY"
            : 'check the HTTPS_PROXY / HTTP_PROXY setting and the DNS of this machine',
      },
    );
  }
  if (code !== undefined && REFUSED_ERROR_CODES.has(code)) {
    const target = proxy === undefined ? new URL(url).host : new URL(proxy).host;
    const what = code === 'ECONNREFUSED' ? 'refused the connection' : 'cannot be reached';
    return new OciError(
      'CONNECTION_REFUSED',
      `${target}${proxy === undefined ? '' : ' (the proxy)'} ${what} (${code})`,
      {
        cause,
        url: where,
        hint:
          proxy === undefined
            ? 'check that the registry runs and listens on that host and port (and that a firewall lets this machine through)'
            : 'check that the proxy runs and the HTTPS_PROXY / HTTP_PROXY setting',
      },
    );
  }
  if (code !== undefined && TIMEOUT_ERROR_CODES.has(code)) {
    return new OciError('TIMEOUT', `timed out talking to ${where}${via} (${code})`, { cause, url: where });
  }
  const detail = code ?? (cause instanceof Error ? cause.message : String(cause));
  return new OciError('NETWORK', `network error talking to ${where}${via} (${detail})`, {
    cause,
    url: where,
  });
}

function hostOf(url: string | URL): string {
  try {
    return (typeof url === 'string' ? new URL(url) : url).hostname;
  } catch {
    return '<invalid url>';
  }
}

function errorCode(error: unknown): string | undefined {
  // undici wraps socket errors (UND_ERR_SOCKET) around the real cause (ECONNRESET…): prefer the inner code.
  let found: string | undefined;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
    if (typeof code === 'string') found = code;
  }
  return found;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || errorCode(error) === 'UND_ERR_ABORTED');
}

/** Go's rules (which Trivy follows): HTTPS_PROXY for https, HTTP_PROXY for http, NO_PROXY wins, loopback never proxied. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv): string | undefined {
  const https = url.protocol === 'https:';
  const proxy = https ? (env.HTTPS_PROXY ?? env.https_proxy) : (env.HTTP_PROXY ?? env.http_proxy);
  if (proxy === undefined || proxy === '') return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || isLoopback(host)) return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '').trim();
  if (noProxy === '*') return undefined;
  const port = url.port === '' ? (https ? '443' : '80') : url.port;
  for (const rawEntry of noProxy.split(/[\s,]+/)) {
    let entry = rawEntry.toLowerCase();
    if (entry === '') continue;
    let entryPort: string | undefined;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(entry);
    if (portMatch !== null && isIP(entry) === 0) {
      entry = portMatch[1] ?? entry;
      entryPort = portMatch[2];
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, '.').replace(/^\[|\]$/g, '');
    if (entry.startsWith('.')) {
      if (host.endsWith(entry) || host === entry.slice(1)) return undefined;
    } else if (host === entry || host.endsWith(`.${entry}`)) {
      return undefined;
    }
  }
  return proxy.includes('://') ? proxy : `http://${proxy}`;
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** Waits before a retry; an abort while waiting is an ABORTED OciError like any other abort. */
export async function backoff(
  delayMs: number,
  url: string | URL,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await sleep(delayMs, undefined, { signal });
  } catch (cause) {
    throw new OciError('ABORTED', `request to ${redactUrl(url)} was aborted`, { cause, url: redactUrl(url) });
  }
}

export function retryDelayMs(attempt: number, retry: RetryOptions | undefined): number {
  const base = retry?.baseDelayMs ?? 500;
  const max = retry?.maxDelayMs ?? 30_000;
  const exponential = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  // Full jitter in the upper half keeps clients from retrying in lockstep without retrying instantly.
  return Math.round(exponential * (0.5 + Math.random() * 0.5));
}

/** Retry-After as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Stops reading a response body; the abort error undici then emits has no one to report to. */
export function abandonBody(body: Readable): void {
  body.on('error', () => undefined);
  if (!body.destroyed) body.destroy();
}

/** Reads a stream to the end into memory, refusing more than `limit` bytes. */
export async function readBounded(
  body: Readable,
  limit: number,
  what: string,
  tooLarge: OciErrorCode = 'SIZE_MISMATCH',
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > limit) {
      abandonBody(body);
      throw new OciError(tooLarge, `${what} is larger than ${limit} bytes`, {
        expected: `<= ${limit} bytes`,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function flattenHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined || name === 'set-cookie') continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

class TransportHttpClient implements HttpClient {
  private readonly direct: Agent;
  private readonly proxies = new Map<string, ProxyAgent>();
  private readonly env: NodeJS.ProcessEnv;
  private readonly tls: { ca?: string[]; rejectUnauthorized: boolean };

  constructor(private readonly options: HttpClientOptions) {
    this.env = options.env ?? process.env;
    this.tls = {
      rejectUnauthorized: options.insecure !== true,
      // `ca` replaces the default roots in Node; keep them and add the user's CA.
      ...(options.caCertPem === undefined ? {} : { ca: [...rootCertificates, options.caCertPem] }),
    };
    this.direct = new AgentDispatcher(this.agentOptions());
  }

  private agentOptions(): Agent.Options {
    const idle = this.options.idleTimeoutMs ?? 60_000;
    return {
      connect: { ...this.tls, timeout: this.options.connectTimeoutMs ?? 30_000 },
      headersTimeout: idle,
      bodyTimeout: idle,
      keepAliveTimeout: 4_000,
    };
  }

  private dispatcherFor(url: URL): Dispatcher {
    const proxy = proxyFor(url, this.env);
    if (proxy === undefined) return this.direct;
    let agent = this.proxies.get(proxy);
    if (agent === undefined) {
      agent = new ProxyAgentDispatcher({
        ...this.agentOptions(),
        uri: proxy,
        // Plain-HTTP targets go as absolute-URI requests, as Go (and so Trivy) sends them; many proxies refuse CONNECT to ports other than 443.
        proxyTunnel: false,
        requestTls: this.tls,
        proxyTls: this.tls,
      });
      this.proxies.set(proxy, agent);
    }
    return agent;
  }

  private emit(event: OciEvent): void {
    this.options.onEvent?.(event);
  }

  async request(input: string | URL, options: HttpRequestOptions = {}): Promise<HttpResponse> {
    let url = new URL(input);
    let method = (options.method ?? 'GET').toUpperCase();
    let headers: Record<string, string> = { 'user-agent': this.options.userAgent };
    for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
    let body = options.body;
    const retry = this.options.retry;
    const maxAttempts = options.retry === false ? 1 : Math.max(1, retry?.maxAttempts ?? 5);
    const deadline = Date.now() + (retry?.maxTotalMs ?? 120_000);
    const maxRedirects = options.maxRedirects ?? 5;
    let redirects = 0;
    let attempt = 0;
    for (;;) {
      attempt++;
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new OciError('REDIRECT', `refusing a non-HTTP URL ${redactUrl(url)}`, { url: redactUrl(url) });
      }
      let response: Dispatcher.ResponseData;
      // Failures of the body's source (verification, a missing file) are not network problems: never retry them.
      let bodyFailure: Error | undefined;
      const requestBody = typeof body === 'function' ? body() : (body ?? null);
      if (requestBody !== null && typeof requestBody === 'object' && 'once' in requestBody) {
        requestBody.once('error', (error: Error) => {
          bodyFailure = error;
        });
      }
      try {
        response = await this.dispatcherFor(url).request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method,
          headers,
          body: requestBody,
          signal: options.signal ?? null,
        });
      } catch (cause) {
        if (cause instanceof OciError) throw cause;
        if (bodyFailure !== undefined) throw bodyFailure;
        const error = networkError(cause, url, proxyFor(url, this.env));
        if (error.code === 'ABORTED' || error.code === 'TLS' || options.signal?.aborted === true) throw error;
        const brief = BRIEF_RETRY_CODES.has(error.code);
        const delay = brief
          ? Math.min(BRIEF_RETRY_DELAY_MS, retryDelayMs(attempt, retry))
          : retryDelayMs(attempt, retry);
        const attempts = brief ? Math.min(maxAttempts, BRIEF_RETRY_ATTEMPTS) : maxAttempts;
        if (attempt >= attempts || Date.now() + delay > deadline) throw error;
        this.emit({ type: 'retry', url: redactUrl(url), attempt, delayMs: delay, reason: error.code });
        await backoff(delay, url, options.signal);
        continue;
      }
      const status = response.statusCode;
      const responseHeaders = flattenHeaders(response.headers);
      if (RETRY_STATUSES.has(status) && attempt < maxAttempts) {
        const retryAfter = parseRetryAfter(responseHeaders['retry-after']);
        const cap = retry?.maxDelayMs ?? 30_000;
        const delay = retryAfter === undefined ? retryDelayMs(attempt, retry) : retryAfter;
        if (delay <= cap && Date.now() + delay <= deadline) {
          await response.body.dump().catch(() => undefined);
          this.emit({
            type: 'retry',
            url: redactUrl(url),
            attempt,
            delayMs: delay,
            reason: `HTTP ${status}`,
          });
          await backoff(delay, url, options.signal);
          continue;
        }
      }
      if (REDIRECT_STATUSES.has(status) && options.redirect !== 'manual') {
        const location = responseHeaders.location;
        await response.body.dump().catch(() => undefined);
        if (location === undefined) {
          throw new OciError('REDIRECT', `redirect without Location from ${redactUrl(url)}`, {
            status,
            url: redactUrl(url),
          });
        }
        if (++redirects > maxRedirects) {
          throw new OciError('REDIRECT', `more than ${maxRedirects} redirects from ${redactUrl(input)}`, {
            status,
          });
        }
        const next = new URL(location, url);
        if (next.origin !== url.origin) {
          // Credentials are for the registry; a blob store on another host (ghcr.io → its CDN) must not see them.
          headers = Object.fromEntries(
            Object.entries(headers).filter(([name]) => name !== 'authorization' && name !== 'cookie'),
          );
        }
        if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
          method = method === 'HEAD' ? 'HEAD' : 'GET';
          body = undefined;
          delete headers['content-length'];
          delete headers['content-type'];
        }
        this.emit({ type: 'redirect', from: redactUrl(url), to: redactUrl(next) });
        url = next;
        attempt = 0;
        continue;
      }
      return wrapResponse(status, url.toString(), responseHeaders, response.body);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.direct.close(), ...[...this.proxies.values()].map((agent) => agent.close())]);
  }
}

function wrapResponse(
  status: number,
  url: string,
  headers: Record<string, string>,
  body: Readable,
): HttpResponse {
  return {
    status,
    url,
    headers,
    body,
    bytes: async (limit, tooLarge) => {
      const declared = headers['content-length'];
      if (declared !== undefined && Number(declared) > limit) {
        abandonBody(body);
        throw new OciError(
          tooLarge ?? 'SIZE_MISMATCH',
          `response from ${redactUrl(url)} is larger than ${limit} bytes`,
          {
            status,
            url: redactUrl(url),
            found: `${declared} bytes`,
          },
        );
      }
      try {
        return await readBounded(body, limit, `response from ${redactUrl(url)}`, tooLarge);
      } catch (cause) {
        if (cause instanceof OciError) throw cause;
        throw networkError(cause, url);
      }
    },
    text: async (limit) => {
      const bytes = await readBounded(body, limit, `response from ${redactUrl(url)}`).catch(
        (cause: unknown) => {
          if (cause instanceof OciError) throw cause;
          throw networkError(cause, url);
        },
      );
      return bytes.toString('utf8');
    },
    discard: async () => {
      await (body as Readable & { dump?: () => Promise<void> }).dump?.().catch(() => undefined);
      abandonBody(body);
    },
  };
}

/** An HTTP client with our transport rules, for registries and plain HTTPS downloads (VEX repositories). */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  return new TransportHttpClient(options);
}

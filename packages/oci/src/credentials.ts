import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciError } from './errors.js';
import type { CredentialSource } from './events.js';
import { DOCKER_HUB_REGISTRY } from './reference.js';

/** What we can authenticate with. `bearer` is a registry token sent as is (Trivy's `--registry-token`). */
export type Credentials =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'bearer'; readonly token: string };

/** How to find credentials, in Trivy's order: explicit, registry token, Docker config, GITHUB_TOKEN for ghcr.io. */
export interface CredentialOptions {
  /** `--username`/`--password`: used for every registry. */
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** `--registry-token`: a Bearer token used for every registry. */
  readonly registryToken?: string | undefined;
  /** Directory holding config.json; default `$DOCKER_CONFIG` or `~/.docker`. */
  readonly dockerConfigDir?: string | undefined;
  /** Set false to ignore Docker's config.json and credential helpers. */
  readonly useDockerConfig?: boolean | undefined;
  /** Read for DOCKER_CONFIG, HOME, GITHUB_TOKEN and PATH (helpers); default `process.env`. */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Time limit for a `docker-credential-*` helper; default 15 s. */
  readonly helperTimeoutMs?: number | undefined;
}

export interface ResolvedCredentials {
  readonly credentials: Credentials | undefined;
  readonly source: CredentialSource;
}

const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const MAX_HELPER_OUTPUT = 64 * 1024;

/** Finds the credentials for one registry host (as in ImageReference.registry). Never throws for "none found". */
export async function resolveCredentials(
  registry: string,
  options: CredentialOptions = {},
): Promise<ResolvedCredentials> {
  if (options.username !== undefined && options.username !== '') {
    return {
      credentials: { kind: 'basic', username: options.username, password: options.password ?? '' },
      source: 'explicit',
    };
  }
  if (options.registryToken !== undefined && options.registryToken !== '') {
    return { credentials: { kind: 'bearer', token: options.registryToken }, source: 'registry-token' };
  }
  const env = options.env ?? process.env;
  if (options.useDockerConfig !== false) {
    const fromDocker = await fromDockerConfig(registry, options, env);
    if (fromDocker !== undefined) return fromDocker;
  }
  const githubToken = env.GITHUB_TOKEN;
  if (registry === 'ghcr.io' && githubToken !== undefined && githubToken !== '') {
    // ghcr.io accepts any user name with a token as the password.
    return {
      credentials: { kind: 'basic', username: 'token', password: githubToken },
      source: 'github-token',
    };
  }
  return { credentials: undefined, source: 'anonymous' };
}

interface DockerConfigFile {
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; registrytoken?: string; identitytoken?: string }
  >;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function configKeysFor(registry: string): string[] {
  if (registry === DOCKER_HUB_REGISTRY) {
    return [
      DOCKER_HUB_CONFIG_KEY,
      'index.docker.io',
      'docker.io',
      'registry-1.docker.io',
      'https://index.docker.io',
    ];
  }
  return [registry];
}

/** Docker writes auth keys as bare hosts or as URLs (`https://host/v1/`); compare hosts. */
function keyHost(key: string): string {
  const withoutScheme = key.replace(/^[a-z]+:\/\//i, '');
  return (withoutScheme.split('/')[0] ?? '').toLowerCase();
}

async function fromDockerConfig(
  registry: string,
  options: CredentialOptions,
  env: NodeJS.ProcessEnv,
): Promise<ResolvedCredentials | undefined> {
  const dir = options.dockerConfigDir ?? env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker');
  const path = join(dir, 'config.json');
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > MAX_CONFIG_BYTES) {
      throw new OciError('CREDENTIALS', `Docker config ${path} is larger than ${MAX_CONFIG_BYTES} bytes`);
    }
    text = bytes.toString('utf8');
  } catch (cause) {
    if (cause instanceof OciError) throw cause;
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OciError('CREDENTIALS', `cannot read Docker config ${path}`, { cause });
  }
  let config: DockerConfigFile;
  try {
    config = JSON.parse(text) as DockerConfigFile;
  } catch {
    // The parser's message could quote a secret from the file: do not keep it as the cause.
    throw new OciError('CREDENTIALS', `Docker config ${path} is not valid JSON`);
  }
  if (typeof config !== 'object' || (config as unknown) === null) {
    throw new OciError('CREDENTIALS', `Docker config ${path} is not a JSON object`);
  }
  const keys = configKeysFor(registry);
  const hosts = new Set(keys.map(keyHost));
  const helper = keys.map((k) => config.credHelpers?.[k]).find((h) => typeof h === 'string' && h !== '');
  const serverUrl = registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_CONFIG_KEY : registry;
  if (helper !== undefined) {
    const found = await runCredentialHelper(helper, serverUrl, env, options.helperTimeoutMs);
    if (found !== undefined) return { credentials: found, source: 'credential-helper' };
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hosts.has(keyHost(key)))?.[1];
  const fromEntry = entry === undefined ? undefined : authEntryCredentials(entry, path);
  if (fromEntry !== undefined) return { credentials: fromEntry, source: 'docker-config' };
  if (helper === undefined && typeof config.credsStore === 'string' && config.credsStore !== '') {
    const found = await runCredentialHelper(config.credsStore, serverUrl, env, options.helperTimeoutMs);
    if (found !== undefined) return { credentials: found, source: 'credential-helper' };
  }
  return undefined;
}

function authEntryCredentials(
  entry: NonNullable<DockerConfigFile['auths']>[string],
  path: string,
): Credentials | undefined {
  if (typeof entry !== 'object') return undefined;
  if (typeof entry.registrytoken === 'string' && entry.registrytoken !== '') {
    return { kind: 'bearer', token: entry.registrytoken };
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0)
      throw new OciError('CREDENTIALS', `an "auth" entry in ${path} is not base64 of user:password`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '') {
    return { kind: 'basic', username: entry.username, password: entry.password ?? '' };
  }
  return undefined;
}

/**
 * The docker-credential-helpers protocol: `docker-credential-<name> get`, server URL on stdin,
 * `{"Username","Secret"}` on stdout. "not found" is not an error: the registry may allow anonymous pulls.
 */
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 15_000,
): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new OciError('CREDENTIALS', `invalid credential helper name ${JSON.stringify(name)}`);
  }
  const program = `docker-credential-${name}`;
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'], timeout: timeoutMs });
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > MAX_HELPER_OUTPUT) child.kill();
      else chunks.push(chunk);
    });
    child.on('error', (cause) =>
      reject(
        new OciError('CREDENTIALS', `cannot run credential helper ${program}`, {
          cause,
          hint: `install ${program} or remove it from Docker's config.json`,
        }),
      ),
    );
    child.on('close', (exitCode) =>
      resolve({ code: exitCode, stdout: Buffer.concat(chunks).toString('utf8') }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(serverUrl);
  });
  if (code !== 0) {
    if (/credentials not found/i.test(stdout)) return undefined;
    // The helper's output on failure is an error text, but keep it out of the message anyway.
    throw new OciError('CREDENTIALS', `credential helper ${program} failed (exit ${String(code)})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new OciError('CREDENTIALS', `credential helper ${program} printed something that is not JSON`);
  }
  const { Username: username, Secret: secret } = (parsed ?? {}) as { Username?: unknown; Secret?: unknown };
  if (typeof username !== 'string' || typeof secret !== 'string') {
    throw new OciError('CREDENTIALS', `credential helper ${program} returned no Username/Secret`);
  }
  if (secret === '') return undefined;
  // "<token>" marks an OAuth2 identity token; we send it as Basic (no refresh-token exchange), which some registries refuse.
  return { kind: 'basic', username, password: secret };
}

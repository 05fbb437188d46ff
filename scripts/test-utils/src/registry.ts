import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTestCa, type TestCa } from './test-ca.js';
import { startTokenServer, type TokenServer } from './token-server.js';

const run = promisify(execFile);

/**
 * Debian's `docker-registry` (CNCF distribution 2.8) as a child process on 127.0.0.1 with a
 * random port, in the three setups sites run: plain HTTP, htpasswd + TLS, token auth.
 */
export type RegistryMode = 'plain' | 'htpasswd-tls' | 'token';

export interface TestRegistryOptions {
  readonly mode: RegistryMode;
  /** user name → password, for htpasswd and token modes; default { pusher: 'pusher-secret' }. */
  readonly users?: Readonly<Record<string, string>>;
  /** Reuse a CA (saves ~100 ms of openssl per registry); one is made otherwise. */
  readonly ca?: TestCa;
}

export interface TestRegistry {
  readonly mode: RegistryMode;
  /** `127.0.0.1:PORT`, to use as the registry part of references. */
  readonly host: string;
  readonly port: number;
  /** `http://…` or `https://…` origin. */
  readonly url: string;
  readonly users: Readonly<Record<string, string>>;
  /** Present for htpasswd-tls (server cert) and token (token signing) modes. */
  readonly ca: TestCa | undefined;
  readonly tokenServer: TokenServer | undefined;
  /** Everything the registry wrote to stderr so far (for failure diagnostics). */
  readonly log: () => string;
  stop(): Promise<void>;
}

export const DEFAULT_TEST_USERS: Readonly<Record<string, string>> = { pusher: 'pusher-secret' };
const START_TIMEOUT_MS = 10_000;
const MAX_LOG = 256 * 1024;

export async function startRegistry(options: TestRegistryOptions): Promise<TestRegistry> {
  const users = options.users ?? DEFAULT_TEST_USERS;
  const dir = await mkdtemp(join(tmpdir(), `airgap-registry-${options.mode}-`));
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    await mkdir(join(dir, 'storage'));
    let ca: TestCa | undefined = options.ca;
    if (ca === undefined && options.mode !== 'plain') {
      await mkdir(join(dir, 'ca'));
      ca = await makeTestCa(join(dir, 'ca'));
    }
    const lines = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(join(dir, 'storage'))}`,
      '  delete:',
      '    enabled: true',
      'http:',
      '  addr: 127.0.0.1:0',
      '  secret: trivy-airgap-test-secret',
    ];
    if (options.mode === 'htpasswd-tls') {
      // A missing htpasswd file makes the registry invent a user: always write it first.
      const entries: string[] = [];
      for (const [user, password] of Object.entries(users)) {
        const { stdout } = await run('htpasswd', ['-Bbn', '-C', '4', user, password]);
        entries.push(stdout.trim());
      }
      await writeFile(join(dir, 'htpasswd'), `${entries.join('\n')}\n`);
      lines.push(
        '  tls:',
        `    certificate: ${JSON.stringify(ca!.serverCertPath)}`,
        `    key: ${JSON.stringify(ca!.serverKeyPath)}`,
        'auth:',
        '  htpasswd:',
        '    realm: trivy-airgap-test',
        `    path: ${JSON.stringify(join(dir, 'htpasswd'))}`,
      );
    }
    if (options.mode === 'token') {
      const service = 'trivy-airgap-test-registry';
      const issuer = 'trivy-airgap-test-issuer';
      tokenServer = await startTokenServer({
        issuer,
        service,
        signingKeyPem: ca!.tokenKeyPem,
        signingCertPem: ca!.tokenCertPem,
        users,
      });
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${JSON.stringify(tokenServer.realm)}`,
        `    service: ${service}`,
        `    issuer: ${issuer}`,
        `    rootcertbundle: ${JSON.stringify(ca!.caCertPath)}`,
      );
    }
    await writeFile(join(dir, 'config.yml'), `${lines.join('\n')}\n`);
    // A clean environment: REGISTRY_* variables from the caller would override the config.
    const spawned = spawn('docker-registry', ['serve', join(dir, 'config.yml')], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = spawned;
    let log = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`docker-registry did not start in ${START_TIMEOUT_MS} ms:\n${log}`)),
        START_TIMEOUT_MS,
      );
      spawned.stderr.on('data', (chunk: Buffer) => {
        log = (log + chunk.toString('utf8')).slice(-MAX_LOG);
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (match !== null) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      spawned.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      spawned.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`docker-registry exited with ${String(code)} before listening:\n${log}`));
      });
    });
    const scheme = options.mode === 'htpasswd-tls' ? 'https' : 'http';
    const host = `127.0.0.1:${port}`;
    return {
      mode: options.mode,
      host,
      port,
      url: `${scheme}://${host}`,
      users,
      ca,
      tokenServer,
      log: () => log,
      stop: async () => {
        await stopChild(spawned);
        await tokenServer?.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (child !== undefined) await stopChild(child);
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

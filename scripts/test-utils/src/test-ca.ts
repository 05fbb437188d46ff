import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway CA plus certificates made with the openssl CLI, for TLS registries and token signing. */
export interface TestCa {
  readonly dir: string;
  readonly caCertPath: string;
  readonly caCertPem: string;
  /** Server certificate for 127.0.0.1, localhost and registry.test (the name tests reach through a proxy). */
  readonly serverCertPath: string;
  readonly serverKeyPath: string;
  /** ES256 token-signing certificate and key (P-256), issued by the same CA. */
  readonly tokenCertPath: string;
  readonly tokenCertPem: string;
  readonly tokenKeyPem: string;
}

/** Host names the server certificate covers; `registry.test` only resolves through the test proxy. */
export const TEST_SERVER_NAMES = ['127.0.0.1', 'localhost', 'registry.test'];

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function issue(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.ec.key`]);
  // PKCS#8, which both Go (the registry) and Node read.
  await openssl(dir, ['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.ec.key`, '-out', `${name}.key`]);
  await openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
}

/** Makes the CA and certificates in `dir` (which must exist). */
export async function makeTestCa(dir: string): Promise<TestCa> {
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.ec.key']);
  await openssl(dir, ['pkcs8', '-topk8', '-nocrypt', '-in', 'ca.ec.key', '-out', 'ca.key']);
  await openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=trivy-airgap test CA',
    '-days',
    '2',
    '-sha256',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    'ca.crt',
  ]);
  const san = TEST_SERVER_NAMES.map((name) => (/^\d/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  await issue(
    dir,
    'server',
    '/CN=127.0.0.1',
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  await issue(
    dir,
    'token',
    '/CN=trivy-airgap test token issuer',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n',
  );
  return {
    dir,
    caCertPath: join(dir, 'ca.crt'),
    caCertPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
    serverCertPath: join(dir, 'server.crt'),
    serverKeyPath: join(dir, 'server.key'),
    tokenCertPath: join(dir, 'token.crt'),
    tokenCertPem: await readFile(join(dir, 'token.crt'), 'utf8'),
    tokenKeyPem: await readFile(join(dir, 'token.key'), 'utf8'),
  };
}

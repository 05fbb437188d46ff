import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestRegistry } from './registry.js';
import {
  vexRepositoryManifest,
  writeOciLayout,
  type FixtureArtifact,
  type VexRepositoryFixture,
} from './trivy-fixtures.js';

const run = promisify(execFile);

/**
 * Pushes fixture artifacts into a test registry with skopeo — an independent OCI client, so a
 * round trip through our own code is checked against someone else's idea of the protocol.
 * `targets` maps a repository:tag (without host) to the artifact.
 */
export async function seedRegistryWithSkopeo(
  registry: TestRegistry,
  targets: Readonly<Record<string, FixtureArtifact>>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'airgap-seed-'));
  try {
    const entries = Object.entries(targets);
    writeOciLayout(
      join(dir, 'layout'),
      entries.map(([, artifact], index) => ({ ref: `a${index}`, artifact })),
    );
    const auth: string[] = [];
    const [user, password] = Object.entries(registry.users)[0] ?? [];
    if (registry.mode !== 'plain' && user !== undefined && password !== undefined) {
      auth.push('--dest-creds', `${user}:${password}`);
    }
    if (registry.url.startsWith('https:') && registry.ca !== undefined) {
      await writeFile(join(dir, 'ca.crt'), registry.ca.caCertPem);
      auth.push('--dest-cert-dir', dir);
    } else {
      auth.push('--dest-tls-verify=false');
    }
    for (const [index, [target]] of entries.entries()) {
      await run('skopeo', [
        'copy',
        '--quiet',
        ...auth,
        `oci:${join(dir, 'layout')}:a${index}`,
        `docker://${registry.host}/${target}`,
      ]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface VexRepositoryServer {
  /** Repository URL to configure (`http://127.0.0.1:PORT`): the manifest is at `/.well-known/vex-repository.json`. */
  readonly url: string;
  /** Request paths seen, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * Serves one VEX repository the way a self-hosted one is laid out: `/.well-known/vex-repository.json`
 * whose location points at `/archive/main.<type>` with the fixture's `//subdir`, and an ETag.
 */
export async function startVexRepositoryServer(fixture: VexRepositoryFixture): Promise<VexRepositoryServer> {
  const requests: string[] = [];
  const type = fixture.archive[0] === 0x1f ? 'tar.gz' : 'zip';
  const server: Server = createServer((request, response) => {
    requests.push(request.url ?? '');
    const { port } = server.address() as AddressInfo;
    const subdir = fixture.subdir === '' ? '' : `//${fixture.subdir}`;
    if (request.url === '/.well-known/vex-repository.json') {
      response.setHeader('content-type', 'application/json');
      response.end(vexRepositoryManifest(`http://127.0.0.1:${port}/archive/main.${type}${subdir}`));
    } else if (request.url === `/archive/main.${type}`) {
      response.setHeader('etag', '"fixture-etag-1"');
      response.end(fixture.archive);
    } else {
      response.statusCode = 404;
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

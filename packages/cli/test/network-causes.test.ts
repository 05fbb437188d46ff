import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startRegistry, type TestRegistry } from '@trivy-airgap/test-utils';
import { cli, userEnv } from './process.js';

// Issue 12: without network, or with the wrong scheme, export names the real cause (DNS, a
// refused connection, TLS vs plain HTTP) and its fix, and does not retry a DNS failure for long.

const work = mkdtempSync(join(tmpdir(), 'airgap-network-causes-'));
const NO_DNS = pathToFileURL(fileURLToPath(new URL('./no-dns.js', import.meta.url))).href;
let tlsRegistry: TestRegistry;
let plainRegistry: TestRegistry;
before(async () => {
  [tlsRegistry, plainRegistry] = await Promise.all([
    startRegistry({ mode: 'htpasswd-tls' }),
    startRegistry({ mode: 'plain' }),
  ]);
});
after(async () => {
  await Promise.all([tlsRegistry.stop(), plainRegistry.stop()]);
  rmSync(work, { recursive: true, force: true });
});

interface Failure {
  code: number | null;
  error: { code: string; message: string; hint?: string };
  stderr: string;
}

async function exportFails(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Failure> {
  const run = await cli(
    ['export', '--db', '--unsigned', '-o', 'b.tgz', '--work-dir', 'work', '--json', ...args],
    {
      cwd: work,
      env: { ...userEnv(work), ...env },
    },
  );
  return {
    code: run.code,
    error: (JSON.parse(run.stdout) as { error: Failure['error'] }).error,
    stderr: run.stderr,
  };
}

describe('network failures are named with their cause and fix', () => {
  it('no DNS at all (the default mirror.gcr.io and ghcr.io): DNS named, the fix is the network, one brief retry', async () => {
    const run = await exportFails([], { NODE_OPTIONS: `--import ${NO_DNS}` });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.error.message, /cannot resolve mirror\.gcr\.io/);
    assert.match(run.error.message, /ENOTFOUND/);
    assert.doesNotMatch(run.error.hint ?? '', /repository name/);
    assert.doesNotMatch(run.error.message, /not trying the next repository/);
    const retries = run.stderr.split('\n').filter((line) => line.includes('retrying'));
    assert.ok(retries.length <= 1, run.stderr);
  });

  it('a port nobody listens on: the refused connection is named', async () => {
    const run = await exportFails(['--plain-http', '--db-repository', '127.0.0.1:1/aquasec/trivy-db:2']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.error.message, /127\.0\.0\.1:1 refused the connection \(ECONNREFUSED\)/);
    assert.match(run.error.hint ?? '', /listens/);
  });

  it('--plain-http against a TLS registry: says it serves HTTPS and to drop --plain-http (not "HTTP 400")', async () => {
    const run = await exportFails([
      '--plain-http',
      '--db-repository',
      `${tlsRegistry.host}/aquasec/trivy-db:2`,
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.error.message, /serves HTTPS/);
    assert.match(run.error.hint ?? '', /leave out --plain-http/);
  });

  it('TLS against a plain-HTTP registry: says it does not speak TLS and to pass --plain-http', async () => {
    const run = await exportFails(['--db-repository', `${plainRegistry.host}/aquasec/trivy-db:2`]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.error.message, /does not speak TLS/);
    assert.match(run.error.hint ?? '', /--plain-http/);
  });
});

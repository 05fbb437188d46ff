import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@trivy-airgap/format';
import {
  makeTestCa,
  startRegistry,
  startRouteServer,
  trivyArtifact,
  vexRepositoryArchive,
  vexRepositoryManifest,
  type RouteServer,
  type TestCa,
  type TestRegistry,
} from '@trivy-airgap/test-utils';
import { pushArtifact, startFrontend, type Frontend } from './helpers.js';

// The built CLI as a process, against real servers on loopback (run after `pnpm build`).
const CLI = fileURLToPath(new URL('../../../cli/dist/src/main.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'airgap-export-cli-'));
const keys = generateKeyPair('ecdsa-p256');
writeFileSync(join(work, 'signing.key'), keys.privateKeyPem);
writeFileSync(join(work, 'signing.pub'), keys.publicKeyPem);

const db = trivyArtifact('db', { dbContents: 3_000_000 }); // incompressible filler: a ~3 MB layer
const checks = trivyArtifact('checks');
const vex = vexRepositoryArchive({ type: 'zip', topDir: 'repo-main' });

let ca: TestCa;
let tokenRegistry: TestRegistry;
let plainRegistry: TestRegistry;
let tlsFront: Frontend;
let vexServer: RouteServer;

before(async () => {
  ca = await makeTestCa(mkdtempSync(join(work, 'ca-')));
  [tokenRegistry, plainRegistry] = await Promise.all([
    startRegistry({ mode: 'token', ca }),
    startRegistry({ mode: 'plain' }),
  ]);
  tlsFront = await startFrontend(tokenRegistry.url, {
    tls: { key: readFileSync(ca.serverKeyPath, 'utf8'), cert: readFileSync(ca.serverCertPath, 'utf8') },
  });
  for (const registry of [tokenRegistry, plainRegistry]) {
    await pushArtifact(registry, `${registry.host}/aquasec/trivy-db:2`, db);
    await pushArtifact(registry, `${registry.host}/aquasec/trivy-checks:2`, checks);
  }
  vexServer = await startRouteServer([
    {
      name: 'manifest',
      method: 'GET',
      path: '/vex/.well-known/vex-repository.json',
      handle: (_req, res) => {
        const body = vexRepositoryManifest(`${vexServer.origin}/vex/main.zip//repo-main`);
        res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      },
    },
    {
      name: 'zip',
      method: 'GET',
      path: '/vex/main.zip',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-length': String(vex.archive.length), etag: 'W/"v1"' }).end(vex.archive);
      },
    },
  ]);
});

after(async () => {
  await Promise.all([tokenRegistry.stop(), plainRegistry.stop(), tlsFront.close(), vexServer.close()]);
  rmSync(work, { recursive: true, force: true });
});

const baseEnv = { PATH: process.env.PATH, HOME: work, NO_COLOR: '1' };

/** The CLI as a child process. Never spawnSync: the servers it talks to live in this event loop. */
async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { ...baseEnv, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status)));
  return { code, stdout, stderr };
}

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { cwd: work, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Summary {
  bundle: { path: string; size: number; sha256: string; parts: { path: string }[]; checksumFile: string };
  components: {
    kind: string;
    servedBy: string;
    digest: string;
    layerDigest?: string;
    size: number;
    updatedAt?: string;
  }[];
  manifest: { signer: { keyId: string } | null; trivyVersions: string };
}

describe('trivy-airgap export (built CLI as a process)', () => {
  it('--db --checks --vex from the token-auth registry over TLS with --ca-cert: --json summary, stock tools verify', async () => {
    writeFileSync(join(work, 'ca.pem'), ca.caCertPem);
    const exported = await cli([
      'export',
      '--db',
      '--checks',
      '--vex',
      '--json',
      '--key',
      'signing.key',
      '-o',
      'cli.tgz',
      '--work-dir',
      'work-cli',
      '--db-repository',
      `${tlsFront.host}/aquasec/trivy-db`,
      '--checks-bundle-repository',
      `${tlsFront.host}/aquasec/trivy-checks:2`,
      '--vex-repository',
      `hub=${vexServer.origin}/vex`,
      '--ca-cert',
      'ca.pem',
      '--username',
      'pusher',
      '--password',
      'pusher-secret',
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    const summary = JSON.parse(exported.stdout) as Summary;
    assert.deepEqual(
      summary.components.map((c) => [c.kind, c.servedBy]),
      [
        ['db', `${tlsFront.host}/aquasec/trivy-db:2`],
        ['checks', `${tlsFront.host}/aquasec/trivy-checks:2`],
        ['vex', `${vexServer.origin}/vex/main.zip`],
      ],
    );
    assert.equal(summary.components[0]?.layerDigest, db.layerDigest);
    assert.equal(summary.components[0].updatedAt, '2026-11-25T06:12:01.123Z');
    assert.equal(summary.bundle.size, statSync(join(work, 'cli.tgz')).size);
    assert.equal(summary.manifest.trivyVersions, '>=0.69.0');

    assert.deepEqual(run('tar', ['-tzf', 'cli.tgz']).stdout.split('\n').slice(0, 2), [
      'manifest.json',
      'manifest.json.sig',
    ]);
    const sums = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      'signing.pub',
      '-signature',
      'cli.tgz.sha256.sig',
      'cli.tgz.sha256',
    ]);
    assert.equal(sums.code, 0, sums.stderr);
    assert.equal(run('sha256sum', ['-c', 'cli.tgz.sha256']).code, 0);
    mkdirSync(join(work, 'cli-extract'));
    run('tar', ['-xzf', 'cli.tgz', '-C', 'cli-extract']);
    const manifestCheck = run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      'signing.pub',
      '-signature',
      'cli-extract/manifest.json.sig',
      'cli-extract/manifest.json',
    ]);
    assert.equal(manifestCheck.code, 0, manifestCheck.stderr);
    // And the importer side of this project reads it as docs/bundle-format.md says.
    const verified = await cli(['verify', 'cli.tgz', '--trust', 'signing.pub']);
    assert.equal(verified.code, 0, verified.stderr);
  });

  it('--split: the parts rejoined with cat equal the unsplit bundle (two signed exports, same SOURCE_DATE_EPOCH)', async () => {
    const common = [
      '--db',
      '--checks',
      '--key',
      'signing.key',
      '--work-dir',
      'work-split',
      '--plain-http',
      '--db-repository',
      `${plainRegistry.host}/aquasec/trivy-db:2`,
      '--checks-bundle-repository',
      `${plainRegistry.host}/aquasec/trivy-checks:2`,
    ];
    const env = { SOURCE_DATE_EPOCH: '1764000000' };
    assert.equal((await cli(['export', ...common, '-o', 'whole.tgz'], env)).code, 0);
    const split = await cli(['export', ...common, '--split', '1M', '-o', 'split.tgz', '--json'], env);
    assert.equal(split.code, 0, split.stderr);
    const summary = JSON.parse(split.stdout) as Summary;
    assert.ok(summary.bundle.parts.length >= 3, `parts: ${summary.bundle.parts.length}`);
    assert.equal(existsSync(join(work, 'split.tgz')), false);
    assert.equal(run('sh', ['-c', 'cat split.tgz.part-* > rejoined.tgz']).code, 0);
    assert.deepEqual(readFileSync(join(work, 'rejoined.tgz')), readFileSync(join(work, 'whole.tgz')));
    const check = run('sha256sum', ['-c', 'split.tgz.sha256']);
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stdout.trim().split('\n').length, summary.bundle.parts.length);
  });

  it('--with-tool writes the single-file CLI beside the bundle, listed in the signed checksum file', async (t) => {
    const tool = fileURLToPath(new URL('../../../cli/dist/trivy-airgap.mjs', import.meta.url));
    if (!existsSync(tool)) {
      t.skip('the single-file build is missing (pnpm build makes it)');
      return;
    }
    mkdirSync(join(work, 'carry'));
    const exported = await cli([
      'export',
      '--checks',
      '--key',
      'signing.key',
      '--plain-http',
      '--with-tool',
      '--json',
      '--checks-bundle-repository',
      `${plainRegistry.host}/aquasec/trivy-checks:2`,
      '--work-dir',
      'work-tool',
      '-o',
      'carry/tool.tgz',
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(readFileSync(join(work, 'carry', 'trivy-airgap.mjs')), readFileSync(tool));
    const sums = spawnSync('sha256sum', ['-c', 'tool.tgz.sha256'], {
      cwd: join(work, 'carry'),
      encoding: 'utf8',
    });
    assert.equal(sums.status, 0, sums.stderr);
    assert.match(sums.stdout, /trivy-airgap\.mjs: OK/);
  });

  it('Ctrl-C (SIGINT) cancels cleanly: exit 130 (as every cancelled command), one error line, no output or temp file left', async () => {
    let stalled: () => void = () => undefined;
    const stalledOnce = new Promise<void>((resolve) => (stalled = resolve));
    const front = await startFrontend(plainRegistry.url, {
      stallBlobAfter: 500_000,
      onStall: () => stalled(),
    });
    try {
      const child = spawn(
        process.execPath,
        [
          CLI,
          'export',
          '--db',
          '--unsigned',
          '--plain-http',
          '--work-dir',
          'work-sigint',
          '-o',
          'cancelled.tgz',
          '--db-repository',
          `${front.host}/aquasec/trivy-db:2`,
        ],
        { cwd: work, env: baseEnv },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      await stalledOnce;
      child.kill('SIGINT');
      assert.equal(await exited, 130, stderr);
      assert.match(stderr, /^error: .*cancelled/m);
      assert.doesNotMatch(stderr, /^\s+at /m);
      assert.deepEqual(
        readdirSync(work).filter((name) => name.startsWith('cancelled.tgz')),
        [],
      );
    } finally {
      await front.close();
    }
  });

  it('killed midway through a large blob, the next run resumes: the registry serves only the missing bytes', async () => {
    const layerSize = db.layer.length;
    let stalled: () => void = () => undefined;
    const stalledOnce = new Promise<void>((resolve) => (stalled = resolve));
    const first = await startFrontend(plainRegistry.url, {
      stallBlobAfter: 1_200_000,
      onStall: () => stalled(),
    });
    const args = [
      'export',
      '--db',
      '--unsigned',
      '--plain-http',
      '--work-dir',
      'work-resume',
      '-o',
      'resumed.tgz',
      '--db-repository',
    ];
    try {
      const child = spawn(process.execPath, [CLI, ...args, `${first.host}/aquasec/trivy-db:2`], {
        cwd: work,
        env: baseEnv,
        stdio: 'ignore',
      });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      await stalledOnce;
      // Kill it hard (no cleanup code runs) once bytes it received are on disk in its partial file.
      await partialFileGrows(join(work, 'work-resume', 'oci', '.partial'), db.layerDigest.slice(7));
      child.kill('SIGKILL');
      await exited;
    } finally {
      await first.close();
    }
    const partialDir = join(work, 'work-resume', 'oci', '.partial');
    const partial = readdirSync(partialDir).find((name) => name.endsWith(db.layerDigest.slice(7)));
    assert.ok(partial !== undefined, 'the interrupted download left its partial file');
    const kept = statSync(join(partialDir, partial)).size;
    assert.ok(kept > 0 && kept < layerSize, `partial ${kept} of ${layerSize}`);
    assert.equal(existsSync(join(work, 'resumed.tgz')), false);

    const second = await startFrontend(plainRegistry.url);
    try {
      const resumed = await cli([...args, `${second.host}/aquasec/trivy-db:2`]);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.ok(second.ranges.includes(`bytes=${kept}-`), `ranges asked: ${second.ranges.join(', ')}`);
      // Only the missing layer bytes (plus at most the 2-byte config, if it was not stored yet).
      const served = second.blobBytes();
      assert.ok(
        served <= layerSize - kept + db.config.length,
        `served ${served}, missing ${layerSize - kept}`,
      );
      assert.ok(served >= layerSize - kept);
    } finally {
      await second.close();
    }
    mkdirSync(join(work, 'resume-extract'));
    run('tar', ['-xzf', 'resumed.tgz', '-C', 'resume-extract']);
    assert.deepEqual(
      readFileSync(join(work, 'resume-extract/oci/blobs/sha256', db.layerDigest.slice(7))),
      db.layer,
    );
  });
});

/** Resolves when a file ending in `suffix` in `dir` holds at least one byte (the download wrote to disk). */
async function partialFileGrows(dir: string, suffix: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const name = existsSync(dir) ? readdirSync(dir).find((entry) => entry.endsWith(suffix)) : undefined;
    if (name !== undefined && statSync(join(dir, name)).size > 0) return;
    assert.ok(Date.now() < deadline, `no bytes of ${suffix} reached ${dir}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

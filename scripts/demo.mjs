#!/usr/bin/env node
// The end-to-end demo behind scripts/demo. Everything runs on 127.0.0.1 and in a temp directory.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  seedRegistryWithSkopeo,
  startRegistry,
  startVexRepositoryServer,
  trivyArtifact,
  vexRepositoryArchive,
} from './test-utils/dist/src/index.js';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'packages/cli/dist/src/main.js');
// The isolated side uses the single-file build: it needs nothing but node.
const singleFile = join(root, 'packages/cli/dist/trivy-airgap.mjs');
const keep = process.argv.includes('--keep');
const work = mkdtempSync(join(tmpdir(), 'trivy-airgap-demo-'));
const cleanups = [];

function step(title) {
  console.log(`\n\u2500\u2500 ${title}`);
}

const execFileAsync = promisify(execFile);

/** Runs a command as a user would type it, asynchronously: the VEX server lives in this process. */
async function show(command, args, options = {}) {
  const shown = command === process.execPath ? 'trivy-airgap' : command;
  const printable = args.filter((a) => a !== cli && a !== singleFile).map((a) => a.replaceAll(work, '$DEMO'));
  console.log(`$ ${[shown, ...printable].join(' ')}`);
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { encoding: 'utf8', ...options });
    if (stderr.trim() !== '') console.log(stderr.trimEnd().replaceAll(work, '$DEMO'));
    if (stdout.trim() !== '') console.log(stdout.trimEnd().replaceAll(work, '$DEMO'));
    return stdout;
  } catch (error) {
    console.log(`${error.stderr ?? ''}${error.stdout ?? ''}`.trimEnd());
    throw new Error(`demo step failed: ${shown} ${printable[0] ?? ''} exited with ${error.code}`, {
      cause: error,
    });
  }
}

try {
  step('1. a local registry and VEX server with Trivy-shaped sample content');
  const registry = await startRegistry({ mode: 'plain' });
  cleanups.push(() => registry.stop());
  const artifacts = {
    db: trivyArtifact('db', { updatedAt: new Date(Date.now() - 3 * 3600_000), dbContents: 256 * 1024 }),
    'java-db': trivyArtifact('java-db', {
      updatedAt: new Date(Date.now() - 20 * 3600_000),
      dbContents: 128 * 1024,
    }),
    checks: trivyArtifact('checks'),
  };
  const repositories = {
    db: 'aquasec/trivy-db:2',
    'java-db': 'aquasec/trivy-java-db:1',
    checks: 'aquasec/trivy-checks:2',
  };
  await seedRegistryWithSkopeo(
    registry,
    Object.fromEntries(
      Object.entries(repositories).map(([kind, repository]) => [repository, artifacts[kind]]),
    ),
  );
  console.log(
    `registry  ${registry.url} (docker-registry, plain HTTP) holds ${Object.values(repositories).join(', ')}`,
  );
  const vexServer = await startVexRepositoryServer(
    vexRepositoryArchive({ type: 'tar.gz', topDir: 'vexhub-main' }),
  );
  cleanups.push(() => vexServer.close());
  const vexUrl = vexServer.url;
  console.log(`VEX repo  ${vexUrl} (/.well-known/vex-repository.json → archive with //vexhub-main)`);

  step('2. connected side: a signing key and the export');
  const keys = join(work, 'keys');
  await show(process.execPath, [cli, 'keygen', '--out-dir', keys]);
  mkdirSync(join(work, 'transfer'));
  const bundle = join(work, 'transfer', 'trivy-bundle.tgz');
  await show(process.execPath, [
    cli,
    'export',
    '--all',
    '--db-repository',
    `${registry.host}/${repositories.db}`,
    '--java-db-repository',
    `${registry.host}/${repositories['java-db']}`,
    '--checks-bundle-repository',
    `${registry.host}/${repositories.checks}`,
    '--vex-repository',
    `default=${vexUrl}`,
    '--plain-http',
    '--work-dir',
    join(work, 'export-work'),
    '--key',
    join(keys, 'signing.key'),
    '-o',
    bundle,
  ]);

  step('3. before the air gap: check the transfer with stock tools only');
  const transfer = join(work, 'transfer');
  await show('sha256sum', ['-c', 'trivy-bundle.tgz.sha256'], { cwd: transfer });
  await show(
    'openssl',
    [
      'dgst',
      '-sha256',
      '-verify',
      join(keys, 'signing.pub'),
      '-signature',
      'trivy-bundle.tgz.sha256.sig',
      'trivy-bundle.tgz.sha256',
    ],
    { cwd: transfer },
  );
  await show('tar', ['-tzf', bundle]);

  step('4. isolated side: verify and import with the single-file CLI (node only, no network)');
  const cache = join(work, 'isolated', 'trivy-cache');
  const vexConfig = join(work, 'isolated', 'vex', 'repository.yaml');
  await show(process.execPath, [singleFile, 'verify', bundle, '--trust', join(keys, 'signing.pub')]);
  await show(process.execPath, [
    singleFile,
    'import',
    bundle,
    '--trust',
    join(keys, 'signing.pub'),
    '--cache-dir',
    cache,
    '--vex-config',
    vexConfig,
  ]);

  step('5. what Trivy will find');
  await show(process.execPath, [singleFile, 'status', '--cache-dir', cache, '--vex-config', vexConfig]);
  await show('find', [cache, '-not', '-path', '*/.trivy-airgap/*', '-printf', '%y %P\n']);
  console.log(
    `$ cat ${join(cache, 'db', 'metadata.json')}\n${readFileSync(join(cache, 'db', 'metadata.json'), 'utf8')}`,
  );
  console.log(`$ cat ${vexConfig}\n${readFileSync(vexConfig, 'utf8')}`);
  writeFileSync(join(work, 'DONE'), 'ok\n');
  console.log('\ndemo finished: export → stock-tool checks → verified, atomic import.');
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
  if (keep) console.log(`\nkept $DEMO = ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

#!/usr/bin/env node
// The benchmark behind scripts/bench. Every number is a ratio against a stock tool measured in the
// same run on the same machine, so the verdicts do not depend on how fast this machine is.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { startRegistry } from './test-utils/dist/src/index.js';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'packages/cli/dist/src/main.js');
const { values: args } = parseArgs({
  options: {
    'db-mib': { type: 'string', default: '1024' },
    'java-mib': { type: 'string', default: '256' },
    'small-mib': { type: 'string', default: '200' },
    'large-mib': { type: 'string', default: '2048' },
    quick: { type: 'boolean', default: false },
    'skip-scaling': { type: 'boolean', default: false },
    runs: { type: 'string', default: '2' },
  },
});
const quick = args.quick;
const dbMiB = quick ? 64 : Number(args['db-mib']);
const javaMiB = quick ? 32 : Number(args['java-mib']);
const smallMiB = quick ? 20 : Number(args['small-mib']);
const largeMiB = quick ? 200 : Number(args['large-mib']);
const runs = Number(args.runs);
const MiB = 1024 * 1024;

const bench = join(root, '.bench');
const data = join(bench, 'data');
const scratch = join(bench, 'scratch');
mkdirSync(data, { recursive: true });
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });

function log(line) {
  process.stderr.write(`${line}\n`);
}

/** Runs a command under GNU time; returns wall seconds and peak RSS (MiB). */
function measure(label, command, commandArgs, options = {}) {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...commandArgs], {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
    ...options,
  });
  if (result.status !== 0) {
    throw new Error(`${label} failed (${result.status}):\n${result.stderr.slice(-3000)}`);
  }
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const [seconds, kib] = last.split(' ').map(Number);
  return { seconds, rssMiB: kib / 1024 };
}

function shell(label, script) {
  return measure(label, 'bash', ['-c', script]);
}

/** Runs `fn` `runs` times: the fastest wall time, and the highest peak RSS of any run. */
function best(label, fn) {
  const all = [];
  for (let i = 0; i < runs; i++) {
    const run = fn(i);
    log(`  ${label} #${i + 1}: ${run.seconds.toFixed(2)} s, ${run.rssMiB.toFixed(0)} MiB`);
    all.push(run);
  }
  return {
    seconds: Math.min(...all.map((run) => run.seconds)),
    rssMiB: Math.max(...all.map((run) => run.rssMiB)),
  };
}

// ── data ────────────────────────────────────────────────────────────────────────────────────────

/** Deterministic DB-like text: JSON vulnerability records from a fixed vocabulary (~10-20x with gzip). */
async function writeDbLike(path, bytes) {
  const words = [];
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  for (let i = 0; i < 4000; i++)
    words.push(
      next()
        .toString(36)
        .slice(0, 3 + (i % 7)),
    );
  const severities = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL', 'UNKNOWN'];
  const out = createWriteStream(path);
  let written = 0;
  let id = 0;
  while (written < bytes) {
    let chunk = '';
    while (chunk.length < MiB) {
      const n = next();
      let description = '';
      for (let w = 0; w < 12 + (n % 30); w++) description += `${words[next() % words.length]} `;
      chunk += `{"VulnerabilityID":"CVE-20${20 + (n % 7)}-${10000 + (id++ % 90000)}","PkgName":"${words[n % 4000]}","FixedVersion":"${n % 9}.${n % 13}.${n % 7}","Severity":"${severities[n % 5]}","Title":"${words[(n >>> 3) % 4000]} ${words[(n >>> 5) % 4000]}","Description":"${description}","References":["https://example.com/${words[(n >>> 7) % 4000]}/${id}"]}\n`;
    }
    const buffer = Buffer.from(chunk.slice(0, Math.min(chunk.length, bytes - written)));
    written += buffer.length;
    if (!out.write(buffer)) await new Promise((resolve) => out.once('drain', resolve));
  }
  out.end();
  await once(out, 'close'); // the file is complete and closed before tar reads it
}

/** Incompressible bytes (like a real compressed DB); random, since only their size matters here. */
async function writeRandom(path, bytes) {
  const out = createWriteStream(path);
  for (let written = 0; written < bytes;) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, bytes - written)));
    written += chunk.length;
    if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
  }
  out.end();
  await once(out, 'close');
}

async function sha256File(path) {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

function metadataJson(kind) {
  const updated = new Date(Date.now() - 3600_000);
  const next = new Date(updated.getTime() + (kind === 'db' ? 24 : 72) * 3600_000);
  return JSON.stringify({
    Version: kind === 'db' ? 2 : 1,
    NextUpdate: next.toISOString(),
    UpdatedAt: updated.toISOString(),
    DownloadedAt: '0001-01-01T00:00:00Z',
  });
}

/** A layer as upstream publishes it: tar of <db file> + metadata.json, gzip (level 6, or 1 for random data). */
async function makeLayer(kind, mib, generate) {
  const dir = join(data, `${kind}-${mib}`);
  const layer = join(dir, 'layer.tar.gz');
  if (existsSync(join(dir, 'done'))) return layer;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'content'), { recursive: true });
  const dbName = kind === 'db' ? 'trivy.db' : 'trivy-java.db';
  log(`generating ${kind} layer (${mib} MiB unpacked)…`);
  await generate(join(dir, 'content', dbName), mib * MiB);
  writeFileSync(join(dir, 'content', 'metadata.json'), metadataJson(kind));
  if (generate === writeRandom) {
    // Random data does not compress: a stored (level 0) gzip is what gzip -9 would give, ~50x faster.
    const tar = spawn('tar', ['-C', join(dir, 'content'), '-cf', '-', dbName, 'metadata.json']);
    const closed = once(tar, 'close'); // listen before it can happen
    await pipeline(tar.stdout, createGzip({ level: 0, chunkSize: 256 * 1024 }), createWriteStream(layer));
    const [code] = await closed;
    if (code !== 0) throw new Error(`tar failed with ${code}`);
  } else {
    execFileSync('bash', [
      '-c',
      `set -o pipefail; tar -C '${dir}/content' -cf - ${dbName} metadata.json | gzip -6 > '${layer}'`,
    ]);
  }
  rmSync(join(dir, 'content'), { recursive: true, force: true });
  writeFileSync(join(dir, 'done'), '');
  return layer;
}

const LAYER_TYPES = {
  db: ['application/vnd.aquasec.trivy.db.layer.v1.tar+gzip', 'db.tar.gz'],
  'java-db': ['application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip', 'javadb.tar.gz'],
  checks: ['application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip', 'bundle.tar.gz'],
};

/** An OCI layout holding one artifact (blobs hard-linked from the data cache). */
async function layoutFor(kind, layerPath) {
  const dir = join(scratch, `layout-${kind}-${statSync(layerPath).size}`);
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerDigest = await sha256File(layerPath);
  execFileSync('ln', ['-f', layerPath, join(blobs, layerDigest.slice(7))]);
  const config = Buffer.from('{}');
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  writeFileSync(join(blobs, configDigest.slice(7)), config);
  const [mediaType, title] = LAYER_TYPES[kind];
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: `application/vnd.aquasec.trivy.${kind}.v1`,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: 2 },
      layers: [
        {
          mediaType,
          digest: layerDigest,
          size: statSync(layerPath).size,
          annotations: { 'org.opencontainers.image.title': title },
        },
      ],
      annotations: {
        'org.opencontainers.image.created': new Date().toISOString(),
        ...(kind === 'checks' ? { 'org.opencontainers.image.version': '2.2.0' } : {}),
      },
    }),
  );
  const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  writeFileSync(join(blobs, manifestDigest.slice(7)), manifest);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': kind },
        },
      ],
    }),
  );
  return { dir, layerDigest };
}

async function checksLayerFile() {
  const dir = join(data, 'checks');
  const layer = join(dir, 'layer.tar.gz');
  if (!existsSync(layer)) {
    mkdirSync(join(dir, 'content', 'policies', 'docker'), { recursive: true });
    writeFileSync(
      join(dir, 'content', 'policies', 'docker', 'root.rego'),
      'package builtin.dockerfile.DS002\n',
    );
    execFileSync('bash', ['-c', `tar -C '${dir}/content' -czf '${layer}' policies`]);
  }
  return layer;
}

async function seed(registry, kind, repository, layerPath) {
  const { dir, layerDigest } = await layoutFor(kind, layerPath);
  execFileSync('skopeo', [
    'copy',
    '--quiet',
    '--dest-tls-verify=false',
    `oci:${dir}:${kind}`,
    `docker://${registry.host}/${repository}`,
  ]);
  rmSync(dir, { recursive: true, force: true });
  return layerDigest;
}

// ── runs ────────────────────────────────────────────────────────────────────────────────────────

function exportArgs(registry, repositories, output, workDir) {
  const flags = [];
  for (const [kind, repository] of Object.entries(repositories)) {
    flags.push(`--${kind}`);
    const repoFlag = {
      db: '--db-repository',
      'java-db': '--java-db-repository',
      checks: '--checks-bundle-repository',
    }[kind];
    flags.push(repoFlag, `${registry.host}/${repository}`);
  }
  return [
    cli,
    'export',
    ...flags,
    '--plain-http',
    '--work-dir',
    workDir,
    '--key',
    join(scratch, 'keys', 'signing.key'),
    '-o',
    output,
    '--quiet',
    '--force',
  ];
}

function importArgs(bundle, cacheDir) {
  return [
    cli,
    'import',
    bundle,
    '--trust',
    join(scratch, 'keys', 'signing.pub'),
    '--cache-dir',
    cacheDir,
    '--vex-config',
    join(cacheDir, '..', 'repository.yaml'),
    '--quiet',
  ];
}

const results = [];
function verdict(name, value, limit, unit, detail) {
  const pass = value <= limit;
  results.push({ name, value: Number(value.toFixed(3)), limit, unit, pass, detail });
  return pass;
}

const registry = await startRegistry({ mode: 'plain' });
try {
  execFileSync(process.execPath, [cli, 'keygen', '--out-dir', join(scratch, 'keys'), '--quiet']);
  const dbLayer = await makeLayer('db', dbMiB, writeDbLike);
  const javaLayer = await makeLayer('java-db', javaMiB, writeRandom);
  const checksLayer = await checksLayerFile();
  log('seeding the loopback registry with skopeo…');
  const dbDigest = await seed(registry, 'db', 'aquasec/trivy-db:2', dbLayer);
  await seed(registry, 'java-db', 'aquasec/trivy-java-db:1', javaLayer);
  await seed(registry, 'checks', 'aquasec/trivy-checks:2', checksLayer);
  const all = {
    db: 'aquasec/trivy-db:2',
    'java-db': 'aquasec/trivy-java-db:1',
    checks: 'aquasec/trivy-checks:2',
  };

  // Export: skopeo copy of the three artifacts into an OCI layout vs our export (cold work dir each run).
  log(`\nexport of db (${dbMiB} MiB unpacked) + java-db (${javaMiB} MiB) + checks`);
  const skopeo = best('skopeo copy ×3', (i) => {
    const out = join(scratch, `skopeo-${i}`);
    const script = Object.entries(all)
      .map(
        ([kind, repository]) =>
          `skopeo copy --quiet --src-tls-verify=false docker://${registry.host}/${repository} oci:${out}:${kind}`,
      )
      .join(' && ');
    const run = shell('skopeo', script);
    rmSync(out, { recursive: true, force: true });
    return run;
  });
  const exported = best('trivy-airgap export', (i) => {
    const work = join(scratch, `export-work-${i}`);
    const run = measure(
      'export',
      process.execPath,
      exportArgs(registry, all, join(scratch, 'all.tgz'), work),
    );
    rmSync(work, { recursive: true, force: true });
    return run;
  });
  verdict(
    'export wall time vs skopeo copy',
    exported.seconds / skopeo.seconds,
    1.3,
    'ratio',
    `${exported.seconds.toFixed(2)} s vs ${skopeo.seconds.toFixed(2)} s`,
  );
  verdict('export peak RSS', exported.rssMiB, 200, 'MiB', '');

  // Import: a DB-only bundle; GNU tar unpacking without verification vs our verified, fsynced import.
  log(`\nimport of a bundle holding a ${dbMiB} MiB (unpacked) DB`);
  const dbBundle = join(scratch, 'db.tgz');
  execFileSync(
    process.execPath,
    exportArgs(registry, { db: all.db }, dbBundle, join(scratch, 'export-work-db')),
  );
  const tar = best('tar -xzf ×2', (i) => {
    const out = join(scratch, `tar-${i}`);
    const run = shell(
      'tar',
      `mkdir -p ${out}/bundle ${out}/db && tar -xzf ${dbBundle} -C ${out}/bundle && tar -xzf ${out}/bundle/oci/blobs/sha256/${dbDigest.slice(7)} -C ${out}/db`,
    );
    rmSync(out, { recursive: true, force: true });
    return run;
  });
  const imported = best('trivy-airgap import', (i) => {
    const cache = join(scratch, `cache-${i}`, 'trivy');
    mkdirSync(cache, { recursive: true });
    const run = measure('import', process.execPath, importArgs(dbBundle, cache));
    rmSync(join(scratch, `cache-${i}`), { recursive: true, force: true });
    return run;
  });
  verdict(
    'import wall time vs GNU tar (no verification)',
    imported.seconds / tar.seconds,
    0.8,
    'ratio',
    `${imported.seconds.toFixed(2)} s vs ${tar.seconds.toFixed(2)} s`,
  );
  verdict('import peak RSS', imported.rssMiB, 200, 'MiB', '');

  if (!args['skip-scaling']) {
    // Memory must not grow with the bundle: a small and a large Java DB through export and import.
    log(`\npeak RSS scaling: ${smallMiB} MiB vs ${largeMiB} MiB bundles`);
    const rss = {};
    for (const mib of [smallMiB, largeMiB]) {
      const layer = await makeLayer('java-db', mib, writeRandom);
      const repository = `aquasec/trivy-java-db-${mib}:1`;
      await seed(registry, 'java-db', repository, layer);
      const bundle = join(scratch, `scale-${mib}.tgz`);
      const work = join(scratch, `scale-work-${mib}`);
      const exportRun = measure(
        'export',
        process.execPath,
        exportArgs(registry, { 'java-db': repository }, bundle, work),
      );
      rmSync(work, { recursive: true, force: true });
      const cache = join(scratch, `scale-cache-${mib}`, 'trivy');
      mkdirSync(cache, { recursive: true });
      const importRun = measure('import', process.execPath, importArgs(bundle, cache));
      rmSync(join(scratch, `scale-cache-${mib}`), { recursive: true, force: true });
      rmSync(bundle, { force: true });
      rss[mib] = { export: exportRun.rssMiB, import: importRun.rssMiB };
      log(
        `  ${mib} MiB: export ${exportRun.rssMiB.toFixed(0)} MiB RSS, import ${importRun.rssMiB.toFixed(0)} MiB RSS`,
      );
    }
    for (const side of ['export', 'import']) {
      verdict(
        `${side} peak RSS ${largeMiB} MiB vs ${smallMiB} MiB bundle`,
        rss[largeMiB][side] / rss[smallMiB][side],
        1.2,
        'ratio',
        `${rss[largeMiB][side].toFixed(0)} vs ${rss[smallMiB][side].toFixed(0)} MiB`,
      );
      verdict(`${side} peak RSS (${largeMiB} MiB bundle)`, rss[largeMiB][side], 200, 'MiB', '');
    }
  }
} finally {
  await registry.stop();
  rmSync(scratch, { recursive: true, force: true });
}

console.log('\nbenchmark                                              value     limit   verdict');
for (const result of results) {
  console.log(
    `${result.name.padEnd(52)} ${String(result.value).padStart(8)} ${`≤ ${result.limit} ${result.unit === 'ratio' ? '×' : result.unit}`.padStart(10)}   ${result.pass ? 'PASS' : 'FAIL'}  ${result.detail}`,
  );
}
writeFileSync(
  join(bench, 'results.json'),
  `${JSON.stringify({ date: new Date().toISOString(), quick, results }, null, 2)}\n`,
);
const failed = results.filter((result) => !result.pass).length;
console.log(`\nbench: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

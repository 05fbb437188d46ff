#!/usr/bin/env node
// The benchmark behind scripts/bench. Every number is a ratio against a stock tool measured in the
// same run on the same machine (runs interleaved: ours, stock, ours, stock, …; medians compared),
// so the verdicts do not depend on how fast or how busy this machine is. Targets: design.md.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { startPacedLink, startRegistry } from './test-utils/dist/src/index.js';

const root = new URL('..', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    cli: { type: 'string' },
    'db-mib': { type: 'string', default: '600' },
    'java-mib': { type: 'string', default: '300' },
    'small-mib': { type: 'string', default: '200' },
    'large-mib': { type: 'string', default: '2048' },
    links: { type: 'string', default: '50,200' },
    runs: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    random: { type: 'boolean', default: false },
    'skip-scaling': { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    serve: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`Usage: scripts/bench [options]
  --quick             small data, one paced link, fewer runs (CI: ~40 s)
  --random            incompressible layers (stored gzip) instead of Trivy-shaped DBs
  --db-mib N          unpacked size of the vulnerability DB (default 600)
  --java-mib N        unpacked size of the Java DB (default 300)
  --links A,B         paced link speeds in MiB/s for export (default 50,200; 0 = none)
  --runs N            repetitions of each measurement, interleaved (default 3, quick 2)
  --only LIST         any of export,import,verify,scaling
  --small-mib/--large-mib N   bundle sizes of the RSS scaling check (default 200 / 2048)
  --skip-scaling      no RSS scaling check
  --strict            exit 1 when a target is missed (default: print the verdicts, exit 0)
  --cli PATH          the CLI to measure (default: this tree's single file packages/cli/dist/trivy-airgap.mjs,
                      what users run; packages/cli/dist/src/main.js is the unbundled build the tests run)
  --serve             seed the registry, start the links, print their hosts and wait (for profiling)
`);
  process.exit(0);
}
// What users run: the published single file (one module to load, not ~100; it starts ~0.1 s
// sooner). --cli: measure another build (e.g. main's) for a before/after table.
const cli = args.cli ?? join(root, 'packages/cli/dist/trivy-airgap.mjs');
const quick = args.quick;
const randomData = args.random;
const dbMiB = quick ? 48 : Number(args['db-mib']);
const javaMiB = quick ? 24 : Number(args['java-mib']);
const smallMiB = quick ? 16 : Number(args['small-mib']);
const largeMiB = quick ? 160 : Number(args['large-mib']);
const links = (quick ? '50' : args.links)
  .split(',')
  .map(Number)
  .filter((mib) => mib > 0);
const runs = Number(args.runs ?? (quick ? 2 : 3));
const only = new Set((args.only ?? 'export,import,verify,scaling').split(','));
if (args['skip-scaling']) only.delete('scaling');
const MiB = 1024 * 1024;

const bench = join(root, '.bench');
const data = join(bench, 'data');
// Per process: a second bench (or --serve) must not remove the files of one already running.
const scratch = join(bench, `scratch-${process.pid}`);
mkdirSync(data, { recursive: true });
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });

function log(line) {
  process.stderr.write(`${line}\n`);
}

// ── measuring ───────────────────────────────────────────────────────────────────────────────────

/**
 * Runs a command under GNU time; resolves with wall seconds and peak RSS (MiB). Asynchronous on
 * purpose: the paced link runs in this process and must keep relaying while the command runs.
 */
function measure(label, command, commandArgs, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', command, ...commandArgs], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...options,
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-64 * 1024);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${label} failed (${code}):\n${stderr.slice(-3000)}`));
        return;
      }
      const last = stderr.trim().split('\n').pop() ?? '';
      const [seconds, kib, user, system] = last.split(' ').map(Number);
      resolve({ seconds, rssMiB: kib / 1024, cpu: user + system });
    });
  });
}

function shell(label, script) {
  return measure(label, 'bash', ['-o', 'pipefail', '-e', '-c', script]);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Measures ours against a stock tool: `runs` rounds, each running both (the order alternates, so
 * neither side always meets the other's dirty page cache). Returns medians and the highest RSS.
 */
async function compare(label, oursLabel, ours, stockLabel, stock) {
  const times = { ours: [], stock: [] };
  let oursRss = 0;
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? ['ours', 'stock'] : ['stock', 'ours'];
    const line = [];
    for (const side of order) {
      const run = side === 'ours' ? await ours(i) : await stock(i);
      times[side].push(run.seconds);
      if (side === 'ours') oursRss = Math.max(oursRss, run.rssMiB);
      line.push(
        `${side === 'ours' ? oursLabel : stockLabel} ${run.seconds.toFixed(2)} s (cpu ${run.cpu.toFixed(2)} s)`,
      );
    }
    log(`  ${label} #${i + 1}: ${line.join(', ')}`);
  }
  return { ours: median(times.ours), stock: median(times.stock), oursRss, times };
}

const results = [];
const rssSeen = [];
function verdict(name, value, limit, unit, detail) {
  const met = value <= limit;
  results.push({ name, value: Number(value.toFixed(3)), limit, unit, met, detail });
}

// ── data ────────────────────────────────────────────────────────────────────────────────────────

/** xorshift32: fast, deterministic (the same data every run and on every machine). */
function prng(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

/**
 * Text with the statistics of Trivy's DBs: a skewed vocabulary, descriptions built from recurring
 * phrases (NVD prose repeats itself), sorted CVE ids, versions, dates, CVSS vectors and now and
 * then a commit hash (real entropy). Tuned so the pages below compress 6-7x with gzip -6, like
 * the published trivy.db (a few hundred MB per ~50-100 MB of gzip).
 */
function recordSource(seed) {
  const next = prng(seed);
  const unit = () => next() / 4294967296;
  const syllables =
    'ab ac al an ar at be ce co de di el en er es ex fi ge in ic io is it la le li lo ma me mi mo ne no on or ou pa pe pi po pr ra re ri ro se si so st ta te ti to tr un ur us va ve vi'.split(
      ' ',
    );
  const vocabulary = [];
  for (let i = 0; i < 3000; i++) {
    let word = '';
    for (let n = 1 + (next() % 4); n > 0; n--) word += syllables[next() % syllables.length];
    vocabulary.push(word);
  }
  const word = () => vocabulary[Math.floor(vocabulary.length * unit() ** 4)];
  const phrases = [];
  for (let i = 0; i < 500; i++) {
    let phrase = '';
    for (let n = 3 + (next() % 5); n > 0; n--) phrase += `${word()} `;
    phrases.push(phrase);
  }
  const phrase = () => phrases[Math.floor(phrases.length * unit() ** 3)];
  const hex = (length) => {
    let text = '';
    while (text.length < length) text += next().toString(16).padStart(8, '0');
    return text.slice(0, length);
  };
  const two = (n) => String(n).padStart(2, '0');
  const date = () =>
    `20${10 + (next() % 15)}-${two(1 + (next() % 12))}-${two(1 + (next() % 28))}T${two(next() % 24)}:${two(next() % 60)}:00Z`;
  const severities = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL', 'UNKNOWN'];
  let cve = 1000;
  const vulnerability = () => {
    const id = `CVE-20${10 + (next() % 15)}-${1000 + (next() % 60000)}`;
    let description = '';
    for (let n = 4 + (next() % 10); n > 0; n--)
      description += phrase() + (next() % 4 === 0 ? `${word()} ` : '');
    const references = [];
    for (let n = 1 + (next() % 4); n > 0; n--) {
      const kind = next() % 16;
      references.push(
        kind === 0
          ? `https://github.com/${word()}/${word()}/commit/${hex(40)}`
          : kind < 6
            ? `https://nvd.nist.gov/vuln/detail/${id}`
            : `https://security.${word()}.org/${word()}/${next() % 100000}`,
      );
    }
    return [
      id,
      JSON.stringify({
        Title: `${word()} ${word()} ${word()}`,
        Description: description.trim(),
        Severity: severities[next() % 5],
        CweIDs: [`CWE-${next() % 1000}`],
        VendorSeverity: { nvd: next() % 5, redhat: next() % 5 },
        CVSS: {
          nvd: {
            V3Vector: `CVSS:3.1/AV:N/AC:${next() % 2 ? 'L' : 'H'}/PR:N/UI:${next() % 2 ? 'N' : 'R'}/S:U/C:H/I:H/A:H`,
            V3Score: (next() % 100) / 10,
          },
        },
        References: references,
        PublishedDate: date(),
        LastModifiedDate: date(),
      }),
    ];
  };
  const advisory = () => {
    cve += 1 + (next() % 7);
    return [
      `CVE-2023-${cve}`,
      JSON.stringify({ FixedVersion: `${next() % 10}.${next() % 30}.${next() % 50}-r${next() % 9}` }),
    ];
  };
  // Java DB rows: sorted by group and artifact, many versions each, and a sha1 now and then.
  let group = '';
  let artifactId = '';
  let version = 0;
  const artifact = () => {
    if (next() % 40 === 0) group = `org.${word()}.${word()}`;
    if (next() % 16 === 0) artifactId = `${word()}-${word()}`;
    version += 1;
    return [
      next() % 24 === 0 ? hex(40) : String(version),
      `${group}\u0000${artifactId}\u0000${version % 10}.${(version >>> 3) % 30}.${next() % 20}\u0000jar`,
    ];
  };
  return { next, vulnerability, advisory, artifact };
}

/**
 * One 4 KiB page laid out like a bbolt leaf (DB) or an SQLite table leaf (Java DB): a binary
 * header, element headers with offsets and lengths, keys and values, and the unused rest zero
 * (pages are 40-100 % full).
 */
function fillPage(page, pageId, source, java) {
  page.fill(0);
  page.writeBigUInt64LE(BigInt(pageId), 0);
  page.writeUInt16LE(java ? 0x0d : 0x02, 8);
  const limit = 4096 - (source.next() % 2400);
  const elements = [];
  let used = 16;
  for (;;) {
    const [key, value] = java
      ? source.artifact()
      : source.next() % 9 === 0
        ? source.vulnerability()
        : source.advisory();
    const keyBytes = Buffer.from(key);
    const valueBytes = Buffer.from(value);
    const need = 16 + keyBytes.length + valueBytes.length;
    if (used + need > limit) break;
    elements.push([keyBytes, valueBytes]);
    used += need;
  }
  page.writeUInt16LE(elements.length, 10);
  let offset = 16 + 16 * elements.length;
  elements.forEach(([keyBytes, valueBytes], index) => {
    const header = 16 + 16 * index;
    page.writeUInt32LE(offset - header, header + 4);
    page.writeUInt32LE(keyBytes.length, header + 8);
    page.writeUInt32LE(valueBytes.length, header + 12);
    offset += keyBytes.copy(page, offset);
    offset += valueBytes.copy(page, offset);
  });
}

async function writeTrivyShaped(path, bytes, kind) {
  const source = recordSource(kind === 'db' ? 0x2545f491 : 0x9e3779b9);
  const out = createWriteStream(path);
  const chunk = Buffer.alloc(MiB);
  let pageId = 2;
  for (let written = 0; written < bytes;) {
    for (let at = 0; at < MiB; at += 4096)
      fillPage(chunk.subarray(at, at + 4096), pageId++, source, kind !== 'db');
    const piece = Buffer.from(chunk.subarray(0, Math.min(MiB, bytes - written)));
    written += piece.length;
    if (!out.write(piece)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close'); // complete and closed before tar reads it
}

/** Incompressible bytes (`--random` and the RSS scaling check). */
async function writeRandom(path, bytes) {
  const out = createWriteStream(path);
  for (let written = 0; written < bytes;) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, bytes - written)));
    written += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
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

/**
 * A layer as upstream publishes it: tar of <db file> THEN metadata.json (trivy-db's order), gzip -6.
 * Random data gets a stored gzip instead (gzip -6 would give the same size, ~50x slower).
 * Cached in .bench/data; returns the layer path and its unpacked/compressed ratio.
 */
async function makeLayer(kind, mib, shape) {
  const dir = join(data, `${kind}-${shape}-${mib}`);
  const layer = join(dir, 'layer.tar.gz');
  const done = join(dir, 'done');
  if (!existsSync(done)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'content'), { recursive: true });
    const dbName = kind === 'db' ? 'trivy.db' : 'trivy-java.db';
    log(`generating the ${kind} layer (${mib} MiB unpacked, ${shape})…`);
    const dbPath = join(dir, 'content', dbName);
    if (shape === 'random') await writeRandom(dbPath, mib * MiB);
    else await writeTrivyShaped(dbPath, mib * MiB, kind);
    writeFileSync(join(dir, 'content', 'metadata.json'), metadataJson(kind));
    const tar = spawn('tar', ['-C', join(dir, 'content'), '-cf', '-', dbName, 'metadata.json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const closed = once(tar, 'close'); // listen before it can happen
    if (shape === 'random') {
      await pipeline(tar.stdout, createGzip({ level: 0, chunkSize: 256 * 1024 }), createWriteStream(layer));
    } else {
      const gzip = spawn('gzip', ['-6'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const gzipClosed = once(gzip, 'close');
      await Promise.all([pipeline(tar.stdout, gzip.stdin), pipeline(gzip.stdout, createWriteStream(layer))]);
      const [gzipCode] = await gzipClosed;
      if (gzipCode !== 0) throw new Error(`gzip failed with ${gzipCode}`);
    }
    const [code] = await closed;
    if (code !== 0) throw new Error(`tar failed with ${code}`);
    rmSync(join(dir, 'content'), { recursive: true, force: true });
    writeFileSync(done, JSON.stringify({ unpacked: mib * MiB, compressed: statSync(layer).size }));
  }
  const { unpacked, compressed } = JSON.parse(readFileSync(done, 'utf8'));
  return { path: layer, size: compressed, ratio: unpacked / compressed };
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

function checksLayerFile() {
  const dir = join(data, 'checks');
  const layer = join(dir, 'layer.tar.gz');
  if (!existsSync(layer)) {
    mkdirSync(join(dir, 'content', 'policies', 'docker'), { recursive: true });
    writeFileSync(
      join(dir, 'content', 'policies', 'docker', 'root.rego'),
      'package builtin.dockerfile.DS002\n',
    );
    execFileSync('bash', ['-c', `tar -C '${dir}/content' -czf '${layer}' policies`]);
    rmSync(join(dir, 'content'), { recursive: true, force: true });
    rmSync(join(dir, 'content'), { recursive: true, force: true });
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

// ── commands ────────────────────────────────────────────────────────────────────────────────────

const REPOSITORY_FLAGS = {
  db: '--db-repository',
  'java-db': '--java-db-repository',
  checks: '--checks-bundle-repository',
};

function exportArgs(host, repositories, output, workDir) {
  const flags = [];
  for (const [kind, repository] of Object.entries(repositories)) {
    flags.push(`--${kind}`, REPOSITORY_FLAGS[kind], `${host}/${repository}`);
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

/**
 * Our export with a cold work dir (removed afterwards). `keep: false` removes the bundle too, after
 * the measurement, as skopeo's copies are: replacing the previous run's bundle would make each run
 * pay for freeing ~135 MB (measured: a 33 ms rename), which skopeo, writing fresh dirs, never does.
 */
async function runExport(host, repositories, output, tag, { keep = true } = {}) {
  const work = join(scratch, `export-work-${tag}`);
  const run = await measure('export', process.execPath, exportArgs(host, repositories, output, work));
  rmSync(work, { recursive: true, force: true });
  if (!keep)
    for (const file of [output, `${output}.sha256`, `${output}.sha256.sig`]) rmSync(file, { force: true });
  rssSeen.push({ what: `export ${tag}`, rssMiB: run.rssMiB });
  return run;
}

/** `skopeo copy` of the same artifacts, all at once (each into its own OCI layout), as a user could script it. */
async function runSkopeo(host, repositories, tag) {
  const out = join(scratch, `skopeo-${tag}`);
  const copies = Object.entries(repositories).map(
    ([kind, repository]) =>
      `skopeo copy --quiet --src-tls-verify=false docker://${host}/${repository} oci:${out}-${kind}:${kind} &`,
  );
  const run = await shell('skopeo', `${copies.join('\n')}\nfor job in $(jobs -p); do wait $job; done`);
  for (const kind of Object.keys(repositories)) rmSync(`${out}-${kind}`, { recursive: true, force: true });
  return run;
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

async function runImport(bundle, tag) {
  const cache = join(scratch, `cache-${tag}`, 'trivy');
  mkdirSync(cache, { recursive: true });
  const run = await measure('import', process.execPath, importArgs(bundle, cache));
  rmSync(join(scratch, `cache-${tag}`), { recursive: true, force: true });
  rssSeen.push({ what: `import ${tag}`, rssMiB: run.rssMiB });
  return run;
}

async function runVerify(bundle, tag) {
  const run = await measure('verify', process.execPath, [
    cli,
    'verify',
    bundle,
    '--trust',
    join(scratch, 'keys', 'signing.pub'),
    '--quiet',
  ]);
  rssSeen.push({ what: `verify ${tag}`, rssMiB: run.rssMiB });
  return run;
}

/** The layer blobs of a bundle (OCI components), read from its manifest.json. */
function bundleLayers(bundle) {
  const manifest = JSON.parse(
    execFileSync('tar', ['-xzOf', bundle, 'manifest.json'], { maxBuffer: 8 * MiB }),
  );
  return manifest.components.filter((c) => c.layer !== undefined).map((c) => c.layer.digest.slice(7));
}

function describeLayer(name, layer) {
  return `${name} ${(layer.size / MiB).toFixed(1)} MiB (${layer.ratio.toFixed(1)}x)`;
}

// ── the run ─────────────────────────────────────────────────────────────────────────────────────

const shape = randomData ? 'random' : 'trivy';
const startedLoad = loadavg()[0];
log(
  `bench: ${cpus().length} cores, Node ${process.version}, load ${loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')}; ${runs} interleaved runs per measurement, medians compared`,
);
const registry = await startRegistry({ mode: 'plain' });
const pacedLinks = [];
const dataShape = {};
try {
  execFileSync(process.execPath, [cli, 'keygen', '--out-dir', join(scratch, 'keys'), '--quiet']);
  const [dbLayer, javaLayer] = await Promise.all([
    makeLayer('db', dbMiB, shape),
    makeLayer('java-db', javaMiB, shape),
  ]);
  const checksLayer = checksLayerFile();
  dataShape.db = { unpackedMiB: dbMiB, layerMiB: dbLayer.size / MiB, ratio: dbLayer.ratio };
  dataShape['java-db'] = { unpackedMiB: javaMiB, layerMiB: javaLayer.size / MiB, ratio: javaLayer.ratio };
  log(
    `data (${shape}): ${describeLayer(`DB ${dbMiB} MiB unpacked →`, dbLayer)}, ${describeLayer(`Java DB ${javaMiB} MiB unpacked →`, javaLayer)}; metadata.json after the DB; gzip ${randomData ? '(stored)' : '-6'}`,
  );
  log('seeding the loopback registry with skopeo…');
  await seed(registry, 'db', 'aquasec/trivy-db:2', dbLayer.path);
  await seed(registry, 'java-db', 'aquasec/trivy-java-db:1', javaLayer.path);
  await seed(registry, 'checks', 'aquasec/trivy-checks:2', checksLayer);
  const all = {
    db: 'aquasec/trivy-db:2',
    'java-db': 'aquasec/trivy-java-db:1',
    checks: 'aquasec/trivy-checks:2',
  };
  const bundle = join(scratch, 'all.tgz');

  if (args.serve) {
    // For profiling by hand: e.g. node --cpu-prof packages/cli/dist/trivy-airgap.mjs export --db
    // --db-repository HOST/aquasec/trivy-db:2 … --plain-http. Ctrl-C stops it.
    const served = [`registry ${registry.host}`];
    for (const mib of links) {
      const link = await startPacedLink({ target: registry.host, mibPerSecond: mib });
      pacedLinks.push(link);
      served.push(`${mib} MiB/s link ${link.host}`);
    }
    console.log(`${served.join('\n')}\nrepositories: ${Object.values(all).join(' ')}`);
    await new Promise((resolve) => process.once('SIGINT', resolve));
    only.clear();
  }

  if (only.has('export')) {
    const paths = [{ name: 'raw loopback', host: registry.host, limit: 1.8 }];
    for (const mib of links) {
      const link = await startPacedLink({ target: registry.host, mibPerSecond: mib });
      pacedLinks.push(link);
      paths.push({ name: `${mib} MiB/s link`, host: link.host, limit: mib <= 50 ? 1.1 : undefined });
    }
    for (const path of paths) {
      log(`\nexport (DB + Java DB + checks) through ${path.name}`);
      const result = await compare(
        'export',
        'ours',
        (i) =>
          runExport(path.host, all, bundle, `${path.name}-${i}`.replace(/[^a-z0-9-]/gi, '_'), {
            keep: false,
          }),
        'skopeo',
        (i) => runSkopeo(path.host, all, i),
      );
      const ratio = result.ours / result.stock;
      const detail = `${result.ours.toFixed(2)} s vs ${result.stock.toFixed(2)} s`;
      if (path.limit !== undefined)
        verdict(`export vs skopeo copy, ${path.name}`, ratio, path.limit, 'ratio', detail);
      else
        results.push({
          name: `export vs skopeo copy, ${path.name}`,
          value: Number(ratio.toFixed(3)),
          unit: 'ratio',
          detail,
        });
    }
  }

  if (only.has('import') || only.has('verify')) {
    // The bundle of the measurements below (made once, not timed).
    if (!existsSync(bundle)) await runExport(registry.host, all, bundle, 'for-import');
    const extracted = join(scratch, 'extracted');
    mkdirSync(extracted, { recursive: true });
    execFileSync('tar', ['-xzf', bundle, '-C', extracted]);
    const layers = bundleLayers(bundle);
    const layerFiles = layers.map((hex) => join(extracted, 'oci', 'blobs', 'sha256', hex));

    if (only.has('import')) {
      log(
        `\nimport of the bundle (${(statSync(bundle).size / MiB).toFixed(0)} MiB) vs GNU tar without verification`,
      );
      const result = await compare(
        'import',
        'ours',
        (i) => runImport(bundle, i),
        'tar',
        async (i) => {
          const out = join(scratch, `tar-${i}`);
          const unpackLayers = layers
            .map(
              (hex, n) =>
                `mkdir -p ${out}/layer-${n} && tar -xzf ${out}/bundle/oci/blobs/sha256/${hex} -C ${out}/layer-${n}`,
            )
            .join(' && ');
          const run = await shell(
            'tar',
            `mkdir -p ${out}/bundle && tar -xzf ${bundle} -C ${out}/bundle && ${unpackLayers}`,
          );
          rmSync(out, { recursive: true, force: true });
          return run;
        },
      );
      verdict(
        'import vs GNU tar (no verification)',
        result.ours / result.stock,
        0.5,
        'ratio',
        `${result.ours.toFixed(2)} s vs ${result.stock.toFixed(2)} s`,
      );
    }

    if (only.has('verify')) {
      log('\nverify vs sha256sum -c + openssl dgst -verify + gzip -dc of each layer');
      const sums = join(extracted, 'bundle.sha256');
      writeFileSync(sums, readFileSync(`${bundle}.sha256`, 'utf8').replace(/ {2}.*$/gm, `  ${bundle}`));
      const stock = [
        `sha256sum --quiet -c ${sums}`,
        `openssl dgst -sha256 -verify ${join(scratch, 'keys', 'signing.pub')} -signature ${extracted}/manifest.json.sig ${extracted}/manifest.json >/dev/null`,
        ...layerFiles.map((file) => `gzip -dc < ${file} >/dev/null`),
      ].join(' && ');
      const result = await compare(
        'verify',
        'ours',
        (i) => runVerify(bundle, i),
        'stock',
        () => shell('stock verify', stock),
      );
      verdict(
        'verify vs sha256sum -c + gzip -dc of the layers',
        result.ours / result.stock,
        1.0,
        'ratio',
        `${result.ours.toFixed(2)} s vs ${result.stock.toFixed(2)} s`,
      );
    }
    rmSync(extracted, { recursive: true, force: true });
  }

  if (only.has('scaling')) {
    // Memory must not grow with the bundle. Random data: a 2 GiB bundle of Trivy-shaped gzip
    // would be ~14 GiB unpacked (minutes of gzip -6 and of disk writes for one number).
    log(`\npeak RSS scaling: ${smallMiB} MiB vs ${largeMiB} MiB bundles (random Java DB layers)`);
    const rss = {};
    for (const mib of [smallMiB, largeMiB]) {
      const layer = await makeLayer('java-db', mib, 'random');
      const repository = `aquasec/trivy-java-db-${mib}:1`;
      await seed(registry, 'java-db', repository, layer.path);
      const scaled = join(scratch, `scale-${mib}.tgz`);
      // Peak RSS moves by ±20 MiB from run to run (when the GC runs): medians of `runs` runs.
      const seen = { export: [], verify: [], import: [] };
      for (let i = 0; i < runs; i++) {
        seen.export.push(
          (await runExport(registry.host, { 'java-db': repository }, scaled, `scale-${mib}`)).rssMiB,
        );
        seen.verify.push((await runVerify(scaled, `scale-${mib}`)).rssMiB);
        seen.import.push((await runImport(scaled, `scale-${mib}`)).rssMiB);
      }
      rmSync(scaled, { force: true });
      rss[mib] = { export: median(seen.export), verify: median(seen.verify), import: median(seen.import) };
      log(
        `  ${mib} MiB: peak RSS export ${seen.export.map((v) => v.toFixed(0)).join('/')} MiB, verify ${seen.verify.map((v) => v.toFixed(0)).join('/')}, import ${seen.import.map((v) => v.toFixed(0)).join('/')}`,
      );
    }
    for (const side of ['export', 'verify', 'import']) {
      verdict(
        `${side} peak RSS (median), ${largeMiB} vs ${smallMiB} MiB bundle`,
        rss[largeMiB][side] / rss[smallMiB][side],
        1.2,
        'ratio',
        `${rss[largeMiB][side].toFixed(0)} vs ${rss[smallMiB][side].toFixed(0)} MiB`,
      );
    }
  }
  if (rssSeen.length > 0) {
    const worst = rssSeen.reduce((a, b) => (b.rssMiB > a.rssMiB ? b : a));
    verdict('peak RSS of any run of ours', worst.rssMiB, 200, 'MiB', worst.what);
  }
} finally {
  for (const link of pacedLinks) await link.close();
  await registry.stop();
  rmSync(scratch, { recursive: true, force: true });
}

const endedLoad = loadavg()[0];
console.log(`\nbenchmark (${shape} data)                                     value     target   verdict`);
for (const result of results) {
  const target =
    result.limit === undefined ? '' : `≤ ${result.limit}${result.unit === 'ratio' ? '×' : ` ${result.unit}`}`;
  const verdictText = result.met === undefined ? 'info' : result.met ? 'met' : 'MISSED';
  console.log(
    `${result.name.padEnd(58)} ${String(result.value).padStart(8)} ${target.padStart(10)}   ${verdictText.padEnd(7)} ${result.detail}`,
  );
}
if (quick) {
  console.log(
    '\n--quick: a few MiB of data, so process start-up dominates every ratio; it shows the bench runs, not where the targets stand.',
  );
}
const missed = results.filter((result) => result.met === false).length;
const judged = results.filter((result) => result.met !== undefined).length;
console.log(
  `\n${cpus().length} cores, Node ${process.version}, 1-min load ${startedLoad.toFixed(2)} at start, ${endedLoad.toFixed(2)} at end; ${judged - missed} of ${judged} targets met (ratios of this run; never asserted as times unless --strict)`,
);
writeFileSync(
  join(bench, 'results.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      quick,
      shape,
      runs,
      cores: cpus().length,
      node: process.version,
      load: [startedLoad, endedLoad],
      data: dataShape,
      results,
    },
    null,
    2,
  )}\n`,
);
process.exit(args.strict && missed > 0 ? 1 : 0);

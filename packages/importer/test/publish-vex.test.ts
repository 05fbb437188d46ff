import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout, createHttpClient, type HttpClient } from '@trivy-airgap/oci';
import { checkVexArchive, extractVexArchive, parseVexRepositoryManifest } from '@trivy-airgap/trivy';
import {
  flipTarByte,
  vexRepositoryArchive,
  type BuiltBundle,
  type VexComponentSpec,
} from '@trivy-airgap/test-utils';
import {
  PublishError,
  publishBundle,
  type PublishBundleResult,
  type ServedVexRepository,
} from '../src/index.js';
import {
  VexServeDirBuilder,
  parseVexBaseUrl,
  servedRepositoryManifest,
} from '../src/publish/vex-serve-dir.js';
import * as exporter from '@trivy-airgap/exporter';
import { bundleFile, treeDigest, trustFile, writeBytes } from './helpers.js';

// `import --vex-serve-dir DIR --vex-base-url URL`: the tree is served by a plain static file
// server on loopback and fetched back by the exporter's VEX fetcher, which acts as Trivy does
// (.well-known manifest → location → archive → only the //subdir kept).

const work = await mkdtemp(join(tmpdir(), 'airgap-publish-vex-'));
const www = join(work, 'www');
const serveDir = join(www, 'vex');
let server: Server;
let origin: string;
let baseUrl: string;
let http: HttpClient;
let trust: string;
const served: { path: string; status: number }[] = [];

/** A static file server like any site runs: files under `www`, symbolic links followed, nothing else. */
async function startStaticServer(root: string): Promise<Server> {
  const files = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const target = resolve(root, `.${path}`);
    const fail = (status: number): void => {
      served.push({ path, status });
      res.writeHead(status).end();
    };
    if (req.method !== 'GET' || (target !== root && !target.startsWith(root + sep))) {
      fail(404);
      return;
    }
    stat(target).then(
      (info) => {
        if (!info.isFile()) {
          fail(404);
          return;
        }
        served.push({ path, status: 200 });
        res.writeHead(200, {
          'content-length': String(info.size),
          etag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
        });
        createReadStream(target).pipe(res);
      },
      () => fail(404),
    );
  });
  await new Promise<void>((done) => files.listen(0, '127.0.0.1', done));
  return files;
}

before(async () => {
  await mkdir(www);
  server = await startStaticServer(www);
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  baseUrl = `${origin}/vex/`;
  http = createHttpClient({ userAgent: 'trivy-test', env: {} });
  trust = trustFile(work);
});

after(async () => {
  await http.close();
  await new Promise<void>((done) => server.close(() => done()));
  await rm(work, { recursive: true, force: true });
});

const internal = vexRepositoryArchive({
  type: 'zip',
  topDir: '',
  packages: 2,
  updatedAt: '2026-11-24T00:00:00Z',
});

function vexBundle(updatedAt = '2026-11-25T01:00:00Z'): { path: string; bundle: BuiltBundle } {
  const components: VexComponentSpec[] = [
    { kind: 'vex', name: 'default', repository: vexRepositoryArchive({ updatedAt, packages: 4 }) },
    {
      kind: 'vex',
      name: 'internal',
      type: 'zip',
      repository: internal,
      url: 'https://vex.example.com/internal',
    },
  ];
  return bundleFile(work, { components });
}

function publishVex(bundle: string): Promise<PublishBundleResult> {
  return publishBundle({ bundle, trustFiles: [trust], vexServe: { dir: serveDir, baseUrl } });
}

/** Every file under `root` (relative, `/`-separated) with its bytes. */
async function filesUnder(root: string, rel = ''): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
    const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) for (const [p, b] of await filesUnder(root, path)) found.set(p, b);
    else found.set(path, await readFile(join(root, path)));
  }
  return found;
}

async function fetchLikeTrivy(
  name: string,
  into: string,
): Promise<{ fetched: exporter.FetchedVexRepository; tree: Map<string, Buffer> }> {
  const layout = await OciLayout.open(await mkdtemp(join(work, 'fetch-')), { create: true });
  const fetched = await exporter.fetchVexRepository(
    { http, layout, env: {}, onProgress: () => undefined },
    { name, url: `${origin}/vex/${name}` },
  );
  const { archiveType, subdir } = fetched.component;
  await extractVexArchive(fetched.archive.file, archiveType, subdir, into);
  return { fetched, tree: await filesUnder(into) };
}

describe('VEX serve dir', () => {
  it('serves each repository under its own path; fetched as Trivy does, it unpacks to the original content', async () => {
    const { path, bundle } = vexBundle();
    const result = await publishVex(path);
    const vex = result.vex;
    assert.ok(vex);
    assert.equal(vex.baseUrl, `${origin}/vex`);
    assert.deepEqual(
      vex.repositories.map((r) => [r.name, r.url, r.location]),
      [
        ['default', `${origin}/vex/default`, `${origin}/vex/default/archive.tar.gz//vexhub-main`],
        ['internal', `${origin}/vex/internal`, `${origin}/vex/internal/archive.zip`],
      ],
    );
    assert.equal(
      vex.repositoryYaml,
      [
        '# Written by trivy-airgap: VEX repositories served inside the air gap.',
        'repositories:',
        '  - name: "default"',
        `    url: "${origin}/vex/default"`,
        '    enabled: true',
        '  - name: "internal"',
        `    url: "${origin}/vex/internal"`,
        '    enabled: true',
        '',
      ].join('\n'),
    );
    assert.equal(await readFile(join(serveDir, 'repository.yaml'), 'utf8'), vex.repositoryYaml);
    assert.ok((await lstat(serveDir)).isSymbolicLink());

    for (const name of ['default', 'internal']) {
      const original = bundle.vex.get(name)!;
      const { fetched, tree } = await fetchLikeTrivy(name, join(work, `unpacked-${name}`));
      // The archive bytes are the bundle's, the manifest is the bundle's with the location replaced.
      assert.deepEqual(await readFile(fetched.archive.file), original.repository.archive);
      const servedRepo: ServedVexRepository | undefined = vex.repositories.find((r) => r.name === name);
      assert.ok(servedRepo, name);
      assert.equal(fetched.component.location, servedRepo.location);
      assert.equal(fetched.component.subdir, original.repository.subdir);
      const manifest = parseVexRepositoryManifest(fetched.manifestBytes);
      assert.deepEqual(manifest.version.locations, [servedRepo.location]);
      assert.equal(manifest.version.updateInterval, '24h');
      assert.equal(manifest.name, 'VEX Hub');
      // What Trivy keeps in vex/repositories/<name>/0.1/ is exactly the repository.
      assert.deepEqual(
        [...tree.keys()].sort(),
        [...original.repository.files.keys()].sort(),
        `${name}: unpacked files`,
      );
      for (const [file, bytes] of original.repository.files) assert.deepEqual(tree.get(file), bytes, file);
    }
    assert.ok(
      served.every((request) => request.status === 200),
      JSON.stringify(served),
    );
  });

  it('regenerates atomically: readers during re-publishing never miss a file; old generations are cleaned', async () => {
    const first = await publishVex(vexBundle('2026-11-25T02:00:00Z').path);
    const parent = dirname(serveDir);
    const stray = join(parent, '.vex.gen-19990101T000000Z-deadbeef');
    await mkdir(join(stray, 'default'), { recursive: true });
    await writeFile(join(stray, 'default', 'half'), 'left by a crash');
    const strayLink = join(parent, '.vex.link-0badc0de');
    await symlink('.vex.gen-19990101T000000Z-deadbeef', strayLink);
    // Names that only look alike belong to someone else (another serve dir, a person) and stay.
    const lookalikes = [
      '.vex.gen-mine',
      '.vex.gen-foo.gen-20260101T000000Z-0123abcd',
      '.vexx.gen-20260101T000000Z-0123abcd',
    ];
    for (const name of lookalikes) await mkdir(join(parent, name));

    let reading = true;
    let reads = 0;
    const failures: string[] = [];
    const reader = (async () => {
      while (reading) {
        for (const path of ['/vex/default/.well-known/vex-repository.json', '/vex/default/archive.tar.gz']) {
          const response = await http.request(`${origin}${path}`);
          if (response.status !== 200) failures.push(`${path}: ${response.status}`);
          await response.discard();
          reads++;
        }
      }
    })();
    const bundles = ['03', '04', '05'].map((hour) => vexBundle(`2026-11-25T${hour}:00:00Z`).path);
    let last: PublishBundleResult | undefined;
    try {
      for (const bundle of bundles) last = await publishVex(bundle);
    } finally {
      reading = false;
      await reader;
    }
    assert.deepEqual(failures, []);
    assert.ok(reads > 0);
    assert.ok(last?.vex);
    assert.equal(await readlink(serveDir), basename(last.vex.generation));
    // The current and the previous generation remain; the first one and the stray one are gone.
    for (const name of lookalikes) assert.ok((await stat(join(parent, name))).isDirectory(), name);
    const generations = (await readdir(parent)).filter(
      (name) => name.startsWith('.vex.') && !lookalikes.includes(name),
    );
    assert.equal(generations.length, 2, generations.join(', '));
    assert.ok(!generations.includes(basename(first.vex!.generation)));
    assert.ok(!generations.includes(basename(stray)));
    assert.ok(!generations.includes(basename(strayLink)));
    const summary = await checkVexArchive(
      join(serveDir, 'default', 'archive.tar.gz'),
      'tar.gz',
      'vexhub-main',
    );
    assert.equal(summary.index.updatedAt, '2026-11-25T05:00:00Z');
  });

  it('a bundle that fails verification leaves the served tree as it was, and no generation behind', async () => {
    await publishVex(vexBundle('2026-11-25T06:00:00Z').path);
    const before = treeDigest(serveDir);
    const link = await readlink(serveDir);
    const entriesBefore = await readdir(dirname(serveDir));
    const { bundle } = vexBundle('2026-11-25T07:00:00Z');
    const archive = bundle.offsets.get('vex/default/archive.tar.gz')!;
    const tampered = writeBytes(work, flipTarByte(bundle, archive.body + 3));
    await assert.rejects(
      publishVex(tampered),
      (error: unknown) => (error as { code?: string }).code === 'BUNDLE_DIGEST_MISMATCH',
    );
    assert.equal(await readlink(serveDir), link);
    assert.equal(treeDigest(serveDir), before);
    assert.deepEqual((await readdir(dirname(serveDir))).sort(), entriesBefore.sort());
  });

  it('anti-rollback: an older repository is not served unless allowDowngrade', async () => {
    await publishVex(vexBundle('2026-11-25T08:00:00Z').path);
    const link = await readlink(serveDir);
    const older = vexBundle('2026-11-25T00:30:00Z').path;
    await assert.rejects(
      publishVex(older),
      (error: unknown) => error instanceof PublishError && error.code === 'DOWNGRADE_REFUSED',
    );
    assert.equal(await readlink(serveDir), link);
    const forced = await publishBundle({
      bundle: older,
      trustFiles: [trust],
      allowDowngrade: true,
      vexServe: { dir: serveDir, baseUrl },
    });
    assert.equal(await readlink(serveDir), basename(forced.vex!.generation));
    const summary = await checkVexArchive(
      join(serveDir, 'default', 'archive.tar.gz'),
      'tar.gz',
      'vexhub-main',
    );
    assert.equal(summary.index.updatedAt, '2026-11-25T00:30:00Z');
  });

  it('never takes over a directory it did not make; an empty one becomes the served link', async () => {
    const foreign = join(work, 'site', 'vex');
    await mkdir(foreign, { recursive: true });
    await writeFile(join(foreign, 'index.html'), 'hello');
    const { path } = vexBundle();
    await assert.rejects(
      publishBundle({ bundle: path, trustFiles: [trust], vexServe: { dir: foreign, baseUrl } }),
      (error: unknown) => error instanceof PublishError && error.code === 'SERVE_DIR_INVALID',
    );
    assert.equal(await readFile(join(foreign, 'index.html'), 'utf8'), 'hello');
    assert.deepEqual(await readdir(join(work, 'site')), ['vex']);

    const empty = join(work, 'site2', 'vex');
    await mkdir(empty, { recursive: true });
    await publishBundle({ bundle: path, trustFiles: [trust], vexServe: { dir: empty, baseUrl } });
    assert.ok((await lstat(empty)).isSymbolicLink());
    assert.ok((await stat(join(empty, 'default', '.well-known', 'vex-repository.json'))).isFile());
  });

  it('a bundle without VEX repositories: NOTHING_TO_PUBLISH, nothing left behind', async () => {
    const dir = join(work, 'novex', 'vex');
    const { path } = bundleFile(work, { components: [{ kind: 'checks' }] });
    await assert.rejects(
      publishBundle({ bundle: path, trustFiles: [trust], vexServe: { dir, baseUrl } }),
      (error: unknown) => error instanceof PublishError && error.code === 'NOTHING_TO_PUBLISH',
    );
    assert.deepEqual(await readdir(join(work, 'novex')), []);
  });

  for (const bad of [
    'ftp://host/vex',
    'https://host/vex?x=1',
    'https://user:pw@host/vex',
    'https://github.com/org/vex',
    'vex',
  ]) {
    it(`--vex-base-url ${bad}: BASE_URL_INVALID`, () => {
      assert.throws(
        () => parseVexBaseUrl(bad),
        (error: unknown) => error instanceof PublishError && error.code === 'BASE_URL_INVALID',
      );
    });
  }

  it('the served manifest keeps name, description and interval, and only the 0.1 entry', () => {
    const original = Buffer.from(
      JSON.stringify({
        name: 'VEX Hub',
        description: 'd',
        versions: [
          {
            spec_version: '0.2',
            locations: [{ url: 'https://example.com/next.tar.gz' }],
            update_interval: '1h',
          },
          { spec_version: '0.1', locations: [{ url: 'https://github.com/a.zip' }], update_interval: '12h' },
        ],
      }),
    );
    const rewritten = JSON.parse(
      servedRepositoryManifest(original, 'http://h/vex/x/archive.zip').toString(),
    ) as unknown;
    assert.deepEqual(rewritten, {
      name: 'VEX Hub',
      description: 'd',
      versions: [
        { spec_version: '0.1', locations: [{ url: 'http://h/vex/x/archive.zip' }], update_interval: '12h' },
      ],
    });
  });

  it('one run per serve dir: a second run while one builds is refused (SERVE_DIR_BUSY) instead of pruning its generation', async () => {
    const dir = join(work, 'busy', 'vex');
    const first = await VexServeDirBuilder.start(dir);
    await assert.rejects(
      VexServeDirBuilder.start(dir),
      (error: PublishError) => error.code === 'SERVE_DIR_BUSY',
    );
    assert.ok(existsSync(first.generation), "the first run's generation is still there");
    await first.discard();
    const again = await VexServeDirBuilder.start(dir);
    await again.discard();
  });
});

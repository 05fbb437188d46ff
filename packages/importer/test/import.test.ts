import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AirgapError, digestOfBytes } from '@trivy-airgap/format';
import {
  buildBundle,
  checksFiles,
  flipTarByte,
  makeTarGz,
  makeTestKey,
  trivyArtifact,
  upstreamMetadata,
  vexRepositoryArchive,
  type BuildBundleOptions,
  type BuiltBundle,
} from '@trivy-airgap/test-utils';
import { diagnoseCache, readRepositoryYaml } from '@trivy-airgap/trivy';
import { cacheStatus, importBundle, repairCache, rollback, type ImportBundleOptions } from '../src/index.js';
import { bundleFile, treeDigest, treeList, trustFile, workDir, writeBytes } from './helpers.js';

const work = workDir('import');
const pub = trustFile(work);
const NOW = new Date('2026-11-25T12:00:00.5Z');
const NEW_DATE = new Date('2026-11-25T06:12:01.123Z');
const OLD_DATE = new Date('2026-11-20T06:12:01.123Z');

let dirCount = 0;
function freshDir(name: string): string {
  return join(work, `${name}-${++dirCount}`);
}

function datedBundle(date: Date, extra: Partial<BuildBundleOptions> = {}): BuildBundleOptions {
  return {
    components: [
      { kind: 'db', options: { updatedAt: date } },
      { kind: 'java-db', options: { updatedAt: date } },
      { kind: 'checks' },
      { kind: 'vex', updatedAt: date.toISOString() },
    ],
    ...extra,
  };
}

function options(
  bundle: string,
  cacheDir: string,
  extra: Partial<ImportBundleOptions> = {},
): ImportBundleOptions {
  return {
    bundle,
    trustFiles: [pub],
    cacheDir,
    vexConfigPath: join(dirname(cacheDir), `${cacheDir.split('/').pop() ?? 'x'}-vex`, 'repository.yaml'),
    clock: () => NOW,
    ...extra,
  };
}

function json(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

describe('import round trip into an empty cache: every rule of trivy-facts.md "Cache directory"', () => {
  const cache = freshDir('roundtrip');
  const vexConfig = join(work, 'roundtrip-vex', 'repository.yaml');
  let built: BuiltBundle;

  before(async () => {
    const made = bundleFile(work, {
      components: [
        { kind: 'db', options: { extraMetadata: { Future: 'kept' } } },
        { kind: 'java-db' },
        { kind: 'checks' },
        { kind: 'vex', etag: '"abc123"' },
      ],
    });
    built = made.bundle;
    mkdirSync(join(cache, 'fanal'), { recursive: true });
    writeFileSync(join(cache, 'fanal', 'fanal.db'), 'scan cache');
    await importBundle({ ...options(made.path, cache), vexConfigPath: vexConfig });
  });

  it('db/trivy.db is the layer file byte for byte (cache path db/trivy.db)', () => {
    const layerDb = readFileSync(join(cache, 'db', 'trivy.db'));
    assert.match(layerDb.toString(), /^trivy\.db fixture/);
  });

  it('db/metadata.json: compact JSON, Trivy keys in order, every upstream field kept, a real DownloadedAt ("an installer MUST write a real DownloadedAt")', () => {
    const text = readFileSync(join(cache, 'db', 'metadata.json'), 'utf8');
    const upstream = JSON.parse(
      upstreamMetadata('db', { extraMetadata: { Future: 'kept' } }).toString(),
    ) as Record<string, unknown>;
    assert.equal(
      text,
      JSON.stringify({
        Version: 2,
        NextUpdate: upstream.NextUpdate,
        UpdatedAt: upstream.UpdatedAt,
        DownloadedAt: '2026-11-25T12:00:00.5Z',
        Future: 'kept',
      }) + '\n', // Go's json.Encoder, as Trivy writes it
    );
  });

  it('db Version is exactly 2 ("--skip-db-update needs Version exactly 2")', () => {
    assert.equal(json(join(cache, 'db', 'metadata.json')).Version, 2);
  });

  it('java-db/trivy-java.db + java-db/metadata.json with a real DownloadedAt ("--skip-java-db-update only checks that java-db/metadata.json exists")', () => {
    assert.ok(statSync(join(cache, 'java-db', 'trivy-java.db')).isFile());
    const meta = json(join(cache, 'java-db', 'metadata.json'));
    assert.equal(meta.Version, 1);
    assert.equal(meta.DownloadedAt, '2026-11-25T12:00:00.5Z');
    assert.notEqual(meta.DownloadedAt, '0001-01-01T00:00:00Z');
  });

  it('policy/content/ holds policies/, commands/, specs/compliance/ ("never leave an empty or partial content/")', () => {
    for (const file of checksFiles()) {
      assert.equal(readFileSync(join(cache, 'policy', 'content', file.name), 'utf8'), file.body);
    }
  });

  it('policy/metadata.json: Digest = MANIFEST digest, DownloadedAt, MajorVersion 2, no CustomBuild', () => {
    const checks = built.artifacts.get('checks')!;
    assert.equal(
      readFileSync(join(cache, 'policy', 'metadata.json'), 'utf8'),
      JSON.stringify({
        Digest: checks.manifestDigest,
        DownloadedAt: '2026-11-25T12:00:00.5Z',
        MajorVersion: 2,
      }) + '\n',
    );
    assert.notEqual(checks.manifestDigest, checks.layerDigest);
  });

  it('vex/repositories/<name>/vex-repository.json is the manifest bytes as fetched', () => {
    const vex = built.vex.get('default')!;
    assert.deepEqual(
      readFileSync(join(cache, 'vex', 'repositories', 'default', 'vex-repository.json')),
      vex.manifestBytes,
    );
  });

  it('vex cache.json = {"UpdatedAt":…,"ETags":{"<location incl. //subdir>":"<etag>"}}', () => {
    const vex = built.vex.get('default')!;
    assert.equal(
      readFileSync(join(cache, 'vex', 'repositories', 'default', 'cache.json'), 'utf8'),
      JSON.stringify({ UpdatedAt: '2026-11-25T12:00:00.5Z', ETags: { [vex.location]: '"abc123"' } }) + '\n',
    );
    assert.match(vex.location, /\/\/vexhub-main$/);
  });

  it('vex 0.1/ is the repository with the vexhub-main/ subdir stripped, index.json at its root, dotfiles copied', () => {
    const vex = built.vex.get('default')!;
    const root = join(cache, 'vex', 'repositories', 'default', '0.1');
    for (const [path, body] of vex.repository.files)
      assert.deepEqual(readFileSync(join(root, path)), body, path);
    assert.ok(!existsSync(join(root, 'vexhub-main')));
    assert.ok(existsSync(join(root, '.github', 'workflows', 'update.yaml')));
  });

  it("repository.yaml is created when missing (Trivy's default entry, enabled) in a 0700 directory", () => {
    const entries = readRepositoryYaml(readFileSync(vexConfig, 'utf8'));
    assert.deepEqual(entries, [
      { name: 'default', url: 'https://github.com/aquasecurity/vexhub', enabled: true },
    ]);
    assert.equal(statSync(dirname(vexConfig)).mode & 0o777, 0o700);
  });

  it('fanal/ (the scan cache) is never touched', () => {
    assert.equal(readFileSync(join(cache, 'fanal', 'fanal.db'), 'utf8'), 'scan cache');
  });

  it("the doctor replaying Trivy's offline rules says every component will work", async () => {
    const diagnosis = await diagnoseCache(cache, { now: NOW, vexConfigPath: vexConfig });
    assert.equal(diagnosis.verdict, 'ok', JSON.stringify(diagnosis, null, 2));
  });

  it('components are links to complete generation directories; state.json records the bundle and key', () => {
    for (const path of ['db', 'java-db', 'policy', join('vex', 'repositories', 'default')]) {
      assert.ok(lstatSync(join(cache, path)).isSymbolicLink(), path);
      assert.ok(realpathSync(join(cache, path)).includes(join('.trivy-airgap', 'generations')));
    }
    const state = json(join(cache, '.trivy-airgap', 'state.json')) as {
      components: Record<string, { current: { bundleId: string; keyId: string } }>;
    };
    assert.equal(state.components.db?.current.bundleId, built.bundleId);
    assert.equal(state.components.db.current.keyId, makeKeyId());
    assert.deepEqual(readdirSync(join(cache, '.trivy-airgap', 'staging')), []);
  });
});

function makeKeyId(): string {
  return (buildBundle({ components: [] }).manifest.signer as { keyId: string }).keyId;
}

describe('import: only what the bundle holds is touched; user settings are kept', () => {
  it("a user's repository.yaml with two custom repositories keeps them, their order and settings", async () => {
    const cache = freshDir('userrepos');
    const vexConfig = join(work, 'userrepos-vex', 'repository.yaml');
    mkdirSync(dirname(vexConfig), { recursive: true });
    const original = [
      '# my VEX repositories',
      'repositories:',
      '  - name: internal',
      '    url: https://vex.internal.example/repo',
      '    enabled: true',
      '    token: "secret-token"',
      '  - name: partner',
      '    url: https://partner.example/vex',
      '    enabled: false',
      '',
    ].join('\n');
    writeFileSync(vexConfig, original);
    const { path } = bundleFile(work, { components: [{ kind: 'vex' }] });
    await importBundle({ ...options(path, cache), vexConfigPath: vexConfig });
    const text = readFileSync(vexConfig, 'utf8');
    assert.deepEqual(readRepositoryYaml(text), [
      { name: 'internal', url: 'https://vex.internal.example/repo', enabled: true },
      { name: 'partner', url: 'https://partner.example/vex', enabled: false },
      { name: 'default', url: 'https://github.com/aquasecurity/vexhub', enabled: true },
    ]);
    assert.match(text, /# my VEX repositories/);
    assert.match(text, /secret-token/);
  });

  it('a db-only bundle leaves java-db, policy and VEX alone', async () => {
    const cache = freshDir('onlydb');
    mkdirSync(join(cache, 'java-db'), { recursive: true });
    writeFileSync(join(cache, 'java-db', 'metadata.json'), '{"mine":true}');
    const before = treeDigest(join(cache, 'java-db'));
    const { path } = bundleFile(work, { components: [{ kind: 'db' }] });
    const result = await importBundle(options(path, cache));
    assert.deepEqual(
      result.installed.map((c) => c.key),
      ['db'],
    );
    assert.equal(treeDigest(join(cache, 'java-db')), before);
    assert.ok(lstatSync(join(cache, 'java-db')).isDirectory());
    assert.ok(!existsSync(join(cache, 'policy')));
  });

  it('a DB directory Trivy made earlier becomes the previous generation; rollback restores it byte for byte', async () => {
    const cache = freshDir('preexisting');
    mkdirSync(join(cache, 'db'), { recursive: true });
    writeFileSync(join(cache, 'db', 'trivy.db'), 'downloaded by trivy');
    writeFileSync(
      join(cache, 'db', 'metadata.json'),
      '{"Version":2,"NextUpdate":"2026-11-02T00:00:00Z","UpdatedAt":"2026-11-01T00:00:00Z","DownloadedAt":"2026-11-01T01:00:00Z"}',
    );
    const before = treeDigest(join(cache, 'db'));
    const { path } = bundleFile(work, { components: [{ kind: 'db' }] });
    const result = await importBundle(options(path, cache));
    assert.equal(result.installed[0]?.previous?.bundleId, null);
    assert.match(readFileSync(join(cache, 'db', 'trivy.db'), 'utf8'), /fixture/);
    await rollback({ cacheDir: cache });
    assert.equal(readFileSync(join(cache, 'db', 'trivy.db'), 'utf8'), 'downloaded by trivy');
    assert.equal(treeDigest(realpathSync(join(cache, 'db'))), before);
  });

  it('a checks bundle without a version annotation gets MajorVersion 0 + CustomBuild true', async () => {
    const cache = freshDir('custom');
    const { path } = bundleFile(work, { components: [{ kind: 'checks', options: { checksVersion: null } }] });
    await importBundle(options(path, cache));
    const meta = json(join(cache, 'policy', 'metadata.json'));
    assert.equal(meta.MajorVersion, 0);
    assert.equal(meta.CustomBuild, true);
  });

  it('a zip VEX archive without a top folder installs the same layout', async () => {
    const cache = freshDir('zip');
    const repository = vexRepositoryArchive({ type: 'zip', topDir: '' });
    const { path } = bundleFile(work, {
      components: [{ kind: 'vex', type: 'zip', name: 'internal', repository }],
    });
    const result = await importBundle(options(path, cache));
    assert.deepEqual(
      result.installed.map((c) => c.key),
      ['vex/internal'],
    );
    // Every file of the repository at its place under 0.1/, byte for byte, and nothing else.
    const root = join(cache, 'vex', 'repositories', 'internal', '0.1');
    const installed = treeList(root).filter((entry) => !entry.endsWith('/'));
    assert.deepEqual(installed.sort(), [...repository.files.keys()].sort());
    for (const [name, body] of repository.files) assert.deepEqual(readFileSync(join(root, name)), body, name);
  });
});

describe('refused bundles leave the cache byte-for-byte unchanged', () => {
  const cache = freshDir('unchanged');
  const vexDir = join(work, 'unchanged-vex');
  const good = buildBundle(datedBundle(NEW_DATE));
  let cacheBefore = '';
  let vexBefore = '';

  before(async () => {
    mkdirSync(join(cache, 'fanal'), { recursive: true });
    writeFileSync(join(cache, 'fanal', 'x'), 'x');
    await importBundle({
      ...options(writeBytes(work, good.bytes), cache),
      vexConfigPath: join(vexDir, 'repository.yaml'),
    });
    cacheBefore = treeDigest(cache);
    vexBefore = treeDigest(vexDir);
  });

  async function assertRefusedUnchanged(
    bytes: Buffer,
    label: string,
    extra: Partial<ImportBundleOptions> = {},
  ) {
    await assert.rejects(
      importBundle({
        ...options(writeBytes(work, bytes), cache),
        vexConfigPath: join(vexDir, 'repository.yaml'),
        ...extra,
      }),
      (error: unknown) => error instanceof AirgapError,
      label,
    );
    assert.equal(treeDigest(cache), cacheBefore, `${label}: cache changed\n${treeList(cache).join('\n')}`);
    assert.equal(treeDigest(vexDir), vexBefore, `${label}: VEX config changed`);
  }

  it('any single flipped byte (manifest, signature, each content entry: header and body samples)', async () => {
    const next = buildBundle(datedBundle(new Date(NEW_DATE.getTime() + 3600_000)));
    for (const [path, at] of next.offsets) {
      const positions = [
        at.header + 1,
        ...(at.size === 0 ? [] : [at.body, at.body + Math.floor(at.size / 2), at.body + at.size - 1]),
      ];
      for (const position of positions)
        await assertRefusedUnchanged(flipTarByte(next, position), `${path} @${position}`);
    }
  });

  it('a truncated bundle', async () => {
    for (const fraction of [0.05, 0.5, 0.95]) {
      await assertRefusedUnchanged(
        good.bytes.subarray(0, Math.floor(good.bytes.length * fraction)),
        `cut at ${fraction}`,
      );
    }
  });

  it('a wrong key, an unsigned bundle, an expired bundle', async () => {
    await assertRefusedUnchanged(
      buildBundle({ ...datedBundle(NEW_DATE), key: makeTestKey() }).bytes,
      'wrong key',
    );
    await assertRefusedUnchanged(buildBundle({ ...datedBundle(NEW_DATE), key: null }).bytes, 'unsigned');
    const created = new Date(Date.now() - 60 * 86_400_000);
    await assertRefusedUnchanged(
      buildBundle({ ...datedBundle(NEW_DATE), created, expires: new Date(Date.now() - 86_400_000) }).bytes,
      'expired',
    );
  });

  it('hostile entries: path traversal, symlink, device, unlisted, duplicate, gzip bomb', async () => {
    const edits: [string, BuildBundleOptions['editEntries']][] = [
      ['path traversal', (e) => [...e, { name: '../../escape', body: 'x' }]],
      ['symlink', (e) => [...e, { name: 'zz', type: 'symlink', linkname: '/etc/passwd' }]],
      ['device', (e) => [...e, { name: 'zz', type: 'chardev' }]],
      ['unlisted', (e) => [...e, { name: 'zz', body: 'x' }]],
      ['duplicate', (e) => [...e, e[e.length - 1]!]],
    ];
    for (const [label, editEntries] of edits) {
      await assertRefusedUnchanged(buildBundle({ ...datedBundle(NEW_DATE), editEntries }).bytes, label);
    }
  });

  it('a VEX archive that escapes its directory (signed, digests fine) — BUNDLE_ENTRY_UNSAFE, nothing installed', async () => {
    const repository = {
      archive: makeTarGz([
        {
          name: 'vexhub-main/index.json',
          body: JSON.stringify({ updated_at: '2026-11-26T00:00:00Z', packages: [] }),
        },
        { name: 'vexhub-main/../../../escaped', body: 'x' },
      ]),
      files: new Map([['index.json', Buffer.from('{}')]]),
      subdir: 'vexhub-main',
    };
    const bytes = buildBundle({
      ...datedBundle(new Date(NEW_DATE.getTime() + 3600_000)),
      components: [{ kind: 'vex', repository, updatedAt: '2026-11-26T00:00:00Z' }],
    }).bytes;
    await assertRefusedUnchanged(bytes, 'escaping VEX archive');
    await assert.rejects(
      importBundle({
        ...options(writeBytes(work, bytes), cache),
        vexConfigPath: join(vexDir, 'repository.yaml'),
      }),
      {
        code: 'BUNDLE_ENTRY_UNSAFE',
      },
    );
    assert.ok(!existsSync(join(work, 'escaped')));
  });

  it('a replayed older bundle (anti-rollback) — DOWNGRADE_REFUSED', async () => {
    const old = buildBundle(datedBundle(OLD_DATE));
    await assertRefusedUnchanged(old.bytes, 'older');
    await assert.rejects(importBundle({ ...options(writeBytes(work, old.bytes), cache) }), {
      code: 'DOWNGRADE_REFUSED',
    });
  });

  it('a failed import into a cache dir that did not exist leaves no trace', async () => {
    const missing = freshDir('never');
    const bytes = flipTarByte(good, good.offsets.get(good.entries[good.entries.length - 1]!.name)!.body);
    await assert.rejects(importBundle(options(writeBytes(work, bytes), missing)));
    assert.ok(!existsSync(missing), treeList(missing).join('\n'));
  });
});

describe('import: a DB file large enough to start its flush to disk while the next layers unpack', () => {
  // 9 MiB of trivy.db: over the size from which the unpacker starts fdatasync as soon as the file
  // is written (layer.ts); zeros, so the bundle stays a few KB.
  const big = Buffer.alloc(9 * 1024 * 1024);
  const built = buildBundle({
    components: [
      { kind: 'db', options: { dbContents: big } },
      { kind: 'java-db' },
      { kind: 'checks' },
      { kind: 'vex' },
    ],
  });

  it('lands byte for byte', async () => {
    const cache = freshDir('flush-early');
    await importBundle(options(writeBytes(work, built.bytes), cache));
    assert.ok(readFileSync(join(cache, 'db', 'trivy.db')).equals(big));
  });

  it('a bundle refused after that file was written leaves no trace (no file still being written or flushed)', async () => {
    const cache = freshDir('flush-early-refused');
    const last = built.entries[built.entries.length - 1]!.name;
    assert.ok(last.startsWith('vex/'), 'the damaged entry comes after every layer');
    const bytes = flipTarByte(built, built.offsets.get(last)!.body);
    await assert.rejects(importBundle(options(writeBytes(work, bytes), cache)), {
      code: 'BUNDLE_DIGEST_MISMATCH',
    });
    assert.ok(!existsSync(cache), treeList(cache).join('\n'));
  });
});

describe('import: errors say what went wrong', () => {
  it('a layer whose entries collide (a file over a directory) is refused as bundle content', async () => {
    const layer = makeTarGz([
      { name: 'trivy.db', type: 'directory' },
      { name: 'trivy.db', body: 'db' },
      { name: 'metadata.json', body: upstreamMetadata('db') },
    ]);
    const metadata = JSON.parse(upstreamMetadata('db').toString()) as Record<string, unknown>;
    const { path } = bundleFile(work, {
      components: [{ kind: 'db', artifact: trivyArtifact('db', { layer }), metadata }],
    });
    const cache = freshDir('collide');
    await assert.rejects(importBundle(options(path, cache)), { code: 'BUNDLE_CONTENT_INVALID' });
    assert.ok(!existsSync(cache));
  });
});

describe('anti-rollback, --allow-downgrade and rollback', () => {
  it('an older DB is refused; with --allow-downgrade it installs; rollback brings the newer one back; again goes forward', async () => {
    const cache = freshDir('downgrade');
    const updatedAt = () => json(join(cache, 'db', 'metadata.json')).UpdatedAt;
    const newer = bundleFile(work, datedBundle(NEW_DATE));
    const older = bundleFile(work, datedBundle(OLD_DATE));
    await importBundle(options(newer.path, cache));
    assert.equal(updatedAt(), NEW_DATE.toISOString());
    await assert.rejects(importBundle(options(older.path, cache)), { code: 'DOWNGRADE_REFUSED' });
    const result = await importBundle(options(older.path, cache, { allowDowngrade: true }));
    assert.ok(result.installed.find((c) => c.key === 'db')?.downgrade);
    assert.equal(updatedAt(), OLD_DATE.toISOString());
    const back = await rollback({ cacheDir: cache });
    assert.deepEqual(back.rolledBack.map((c) => c.key).sort(), ['db', 'java-db', 'policy', 'vex/default']);
    assert.equal(updatedAt(), NEW_DATE.toISOString());
    assert.match(readFileSync(join(cache, 'db', 'trivy.db'), 'utf8'), new RegExp(NEW_DATE.toISOString()));
    await rollback({ cacheDir: cache, components: ['db'] });
    assert.equal(updatedAt(), OLD_DATE.toISOString());
  });

  it('a bundle of an earlier exporter (its manifest records metadata.json) imports, and anti-rollback compares it with a newer-style one', async () => {
    const cache = freshDir('old-style');
    const oldStyle = (date: Date) =>
      bundleFile(work, {
        components: [{ kind: 'db', options: { updatedAt: date }, metadata: 'from-layer' }],
      });
    const newer = oldStyle(NEW_DATE);
    assert.ok((newer.bundle.manifest.components as { metadata?: unknown }[])[0]?.metadata !== undefined);
    const result = await importBundle(options(newer.path, cache));
    assert.equal(result.installed.find((c) => c.key === 'db')?.updatedAt, NEW_DATE.toISOString());
    assert.equal(json(join(cache, 'db', 'metadata.json')).UpdatedAt, NEW_DATE.toISOString());
    const older = bundleFile(work, { components: [{ kind: 'db', options: { updatedAt: OLD_DATE } }] });
    await assert.rejects(importBundle(options(older.path, cache)), { code: 'DOWNGRADE_REFUSED' });
    assert.equal(json(join(cache, 'db', 'metadata.json')).UpdatedAt, NEW_DATE.toISOString());
    await importBundle(options(oldStyle(NEW_DATE).path, cache));
  });

  it('the same DB build pushed to another mirror at another time is not a downgrade', async () => {
    const cache = freshDir('mirrors');
    const build = (created: string) =>
      bundleFile(work, { components: [{ kind: 'db', options: { updatedAt: NEW_DATE, created } }] }).path;
    await importBundle(options(build('2026-11-25T08:00:00Z'), cache));
    const second = await importBundle(options(build('2026-11-25T07:00:00Z'), cache));
    const db = second.installed.find((c) => c.key === 'db');
    assert.equal(db?.downgrade, false);
    assert.equal(db.updatedAt, NEW_DATE.toISOString());
    assert.equal(json(join(cache, 'db', 'metadata.json')).UpdatedAt, NEW_DATE.toISOString());
    const state = json(join(cache, '.trivy-airgap', 'state.json')) as {
      components: Record<string, { current: { bundleId: string } }>;
    };
    assert.equal(state.components.db?.current.bundleId, second.bundleId, 'the second bundle is installed');
  });

  it('an older checks bundle version is refused; the installed checks stay', async () => {
    const cache = freshDir('checksdown');
    await importBundle(
      options(
        bundleFile(work, { components: [{ kind: 'checks', options: { checksVersion: '2.2.0' } }] }).path,
        cache,
      ),
    );
    const before = treeDigest(cache);
    await assert.rejects(
      importBundle(
        options(
          bundleFile(work, { components: [{ kind: 'checks', options: { checksVersion: '2.1.9' } }] }).path,
          cache,
        ),
      ),
      { code: 'DOWNGRADE_REFUSED' },
    );
    assert.equal(treeDigest(cache), before, treeList(cache).join('\n'));
  });

  it('rollback never brings back a generation changed in place since it was installed (Trivy updating through our link)', async () => {
    const cache = freshDir('changed-in-place');
    const newer = bundleFile(work, datedBundle(NEW_DATE));
    const older = bundleFile(work, datedBundle(OLD_DATE));
    await importBundle(options(older.path, cache));
    // What Trivy's online checks update does through the `policy` link: content emptied, metadata rewritten.
    rmSync(join(cache, 'policy', 'content'), { recursive: true });
    writeFileSync(join(cache, 'policy', 'metadata.json'), '{"Digest":"sha256:0","MajorVersion":2}\n');
    const changed = await cacheStatus({ cacheDir: cache });
    assert.deepEqual(
      changed.changedSinceImport.map((c) => `${c.key} ${c.change}`),
      ['policy modified'],
    );
    await importBundle(options(newer.path, cache));
    const links = readlinkSync(join(cache, 'policy'));
    await assert.rejects(rollback({ cacheDir: cache }), { code: 'CACHE_STATE_INVALID' });
    assert.equal(readlinkSync(join(cache, 'policy')), links, 'nothing was changed');
    const some = await rollback({ cacheDir: cache, components: ['db'] });
    assert.deepEqual(
      some.rolledBack.map((c) => c.key),
      ['db'],
    );
  });

  it('rollback with nothing to go back to says so', async () => {
    const cache = freshDir('norollback');
    await assert.rejects(rollback({ cacheDir: cache }), { code: 'NOTHING_TO_ROLL_BACK' });
    await importBundle(options(bundleFile(work, { components: [{ kind: 'db' }] }).path, cache));
    await assert.rejects(rollback({ cacheDir: cache }), { code: 'NOTHING_TO_ROLL_BACK' });
  });

  it('keeps two generations per component (current and previous) and prunes older ones', async () => {
    const cache = freshDir('prune');
    for (let day = 1; day <= 4; day++) {
      const date = new Date(Date.UTC(2026, 10, day, 6));
      await importBundle(
        options(bundleFile(work, { components: [{ kind: 'db', options: { updatedAt: date } }] }).path, cache),
      );
    }
    assert.equal(readdirSync(join(cache, '.trivy-airgap', 'generations', 'db')).length, 2);
  });
});

describe('one import at a time', () => {
  it('a concurrent import is blocked by the lock, with a message naming the holder pid', async () => {
    const cache = freshDir('lock');
    const big = buildBundle({ components: [{ kind: 'db', options: { dbContents: 400_000 } }] });
    const pipe = new PassThrough();
    const first = importBundle(options('-', cache, { stdin: pipe }));
    pipe.write(big.bytes.subarray(0, Math.floor(big.bytes.length / 2)));
    const lockFile = join(cache, '.trivy-airgap', 'lock');
    for (let i = 0; i < 200 && !existsSync(lockFile); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(existsSync(lockFile), 'the first import took the lock');
    const second = bundleFile(work, { components: [{ kind: 'db' }] });
    await assert.rejects(importBundle(options(second.path, cache)), (error: unknown) => {
      assert.ok(error instanceof AirgapError);
      assert.equal(error.code, 'LOCKED');
      assert.match(error.message, new RegExp(`pid ${process.pid}`));
      return true;
    });
    pipe.end(big.bytes.subarray(Math.floor(big.bytes.length / 2)));
    await first;
    assert.ok(!existsSync(lockFile), 'released');
  });

  it('a lock left by a dead process is taken over', async () => {
    const cache = freshDir('stale');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    mkdirSync(join(cache, '.trivy-airgap'), { recursive: true });
    writeFileSync(
      join(cache, '.trivy-airgap', 'lock'),
      JSON.stringify({ pid: dead, host: (await import('node:os')).hostname() }),
    );
    const result = await importBundle(
      options(bundleFile(work, { components: [{ kind: 'db' }] }).path, cache),
    );
    assert.deepEqual(
      result.installed.map((c) => c.key),
      ['db'],
    );
    assert.ok(existsSync(join(cache, 'db', 'trivy.db')));
    assert.ok(!existsSync(join(cache, '.trivy-airgap', 'lock')), 'the taken-over lock is released');
  });
});

/** Which generation each component shows, checked for consistency (files of one generation only). */
function snapshot(cache: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of ['db', 'java-db']) {
    const meta = json(join(cache, kind, 'metadata.json'));
    const dbFile = readFileSync(join(cache, kind, kind === 'db' ? 'trivy.db' : 'trivy-java.db'), 'utf8');
    assert.ok(
      dbFile.includes(String(meta.UpdatedAt)),
      `${kind}: metadata and database from different generations`,
    );
    out[kind] = String(meta.UpdatedAt);
  }
  const index = json(join(cache, 'vex', 'repositories', 'default', '0.1', 'index.json'));
  out.vex = String(index.updated_at);
  out.policy = digestOfBytes(readFileSync(join(cache, 'policy', 'metadata.json'))).slice(0, 12);
  return out;
}

function assertClean(cache: string): void {
  const state = join(cache, '.trivy-airgap');
  assert.ok(!existsSync(join(state, 'journal.json')), 'journal left');
  assert.ok(!existsSync(join(state, 'lock')), 'lock left');
  assert.deepEqual(readdirSync(join(state, 'staging')).length, 0, 'staging left');
  assert.ok(!readdirSync(cache).some((name) => name.endsWith('.trivy-airgap-new')));
  const stateJson = json(join(state, 'state.json')) as {
    components: Record<string, { current: { target: string } }>;
  };
  for (const [key, component] of Object.entries(stateJson.components)) {
    const link = key.startsWith('vex/') ? join(cache, 'vex', 'repositories', key.slice(4)) : join(cache, key);
    assert.equal(readlinkSync(link), component.current.target, `${key}: state.json and link disagree`);
  }
}

describe('crash safety: each component old or new, never mixed; the next run cleans up', () => {
  const STEPS = [
    'verified',
    'staged',
    'generations ready',
    'journal committed',
    'switched db',
    'switched java-db',
    'switched policy',
    'switched vex/default',
    'state written',
    'repository.yaml written',
  ];

  it('a failure injected after each install step', async () => {
    const older = bundleFile(work, datedBundle(OLD_DATE));
    const newer = bundleFile(work, datedBundle(NEW_DATE));
    // Each step in its own cache, all at once: an import waits mostly on fsync, not on the CPU.
    const injectAt = async (step: string): Promise<void> => {
      const cache = freshDir('crash');
      await importBundle(options(older.path, cache));
      const old = snapshot(cache);
      await assert.rejects(
        importBundle(
          options(newer.path, cache, {
            stepHook: (at) => {
              if (at === step) throw new Error(`injected crash at ${step}`);
            },
          }),
        ),
        /injected crash/,
      );
      const during = snapshot(cache);
      for (const kind of Object.keys(old)) assert.ok(during[kind] !== undefined, `${step}: ${kind} missing`);
      const committed = STEPS.indexOf(step) >= STEPS.indexOf('journal committed');
      const cleaned = await repairCache(cache);
      assertClean(cache);
      const after = snapshot(cache);
      if (committed) {
        assert.notDeepEqual(after, old, `${step}: committed import must be finished`);
        assert.match(cleaned.join('\n'), /finished an interrupted import/);
      } else {
        assert.deepEqual(after, old, `${step}: uncommitted import must leave the old content`);
      }
      await importBundle(options(newer.path, cache));
      assertClean(cache);
      assert.equal(snapshot(cache).db, NEW_DATE.toISOString());
    };
    await Promise.all(STEPS.map(injectAt));
  });

  it('the process killed (SIGKILL) between steps: the next run finishes or discards, and takes over the lock', async () => {
    const child = join(work, 'crash-child.mjs');
    const importer = fileURLToPath(new URL('../src/index.js', import.meta.url));
    writeFileSync(
      child,
      `import { importBundle } from ${JSON.stringify(importer)};
const [bundle, cacheDir, trust, step] = process.argv.slice(2);
await importBundle({ bundle, cacheDir, trustFiles: [trust], vexConfigPath: cacheDir + '-vex/repository.yaml',
  stepHook: (at) => { if (at === step) process.kill(process.pid, 'SIGKILL'); } });
`,
    );
    const older = bundleFile(work, datedBundle(OLD_DATE));
    const newer = bundleFile(work, datedBundle(NEW_DATE));
    for (const step of ['staged', 'switched java-db']) {
      const cache = freshDir('kill');
      await importBundle({ ...options(older.path, cache), vexConfigPath: `${cache}-vex/repository.yaml` });
      const old = snapshot(cache);
      const code = await new Promise<string | null>((resolve) => {
        const proc = spawn(process.execPath, [child, newer.path, cache, pub, step], { stdio: 'inherit' });
        proc.on('exit', (_code, signal) => resolve(signal));
      });
      assert.equal(code, 'SIGKILL');
      assert.ok(existsSync(join(cache, '.trivy-airgap', 'lock')), 'the killed process left its lock');
      const mid = snapshot(cache);
      if (step === 'switched java-db') {
        assert.equal(mid.db, NEW_DATE.toISOString());
        assert.equal(mid.vex, old.vex);
      }
      await repairCache(cache);
      assertClean(cache);
      const after = snapshot(cache);
      if (step === 'staged') assert.deepEqual(after, old);
      else assert.equal(after.vex, NEW_DATE.toISOString());
    }
  });
});

describe('status', () => {
  it('reports per component and flags content older than --max-age', async () => {
    const cache = freshDir('status');
    await importBundle(options(bundleFile(work, datedBundle(NEW_DATE)).path, cache));
    const fresh = await cacheStatus({
      cacheDir: cache,
      now: new Date(NEW_DATE.getTime() + 3600_000),
      maxAgeMs: 86_400_000,
    });
    assert.equal(fresh.healthy, true, JSON.stringify(fresh.diagnosis, null, 2));
    assert.equal(fresh.state.components.db?.current.updatedAt, NEW_DATE.toISOString());
    const stale = await cacheStatus({
      cacheDir: cache,
      now: new Date(NEW_DATE.getTime() + 3 * 86_400_000),
      maxAgeMs: 86_400_000,
    });
    assert.equal(stale.healthy, false);
    assert.ok(stale.stale.some((c) => c.kind === 'db'));
  });
});

describe('a Trivy reading the cache during imports', () => {
  it('never sees a half-written file: every read of db/trivy.db and db/metadata.json is one complete generation', async () => {
    const cache = freshDir('concurrent');
    const dates = [OLD_DATE, NEW_DATE];
    const contents = dates.map((date, i) => Buffer.alloc(300_000, `${i}${date.toISOString()}`));
    const whole = new Set(contents.map((bytes) => digestOfBytes(bytes)));
    const bundles = dates.map((date, i) =>
      bundleFile(work, {
        components: [{ kind: 'db', options: { updatedAt: date, dbContents: contents[i]! } }],
      }),
    );
    await importBundle(options(bundles[0]!.path, cache));
    const seen = new Set<string>();
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const meta = json(join(cache, 'db', 'metadata.json'));
        assert.ok(
          dates.some((date) => date.toISOString() === meta.UpdatedAt),
          String(meta.UpdatedAt),
        );
        const db = digestOfBytes(readFileSync(join(cache, 'db', 'trivy.db')));
        assert.ok(whole.has(db), 'trivy.db is one complete generation');
        seen.add(db);
        reads++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let round = 1; round <= 4; round++) {
      await importBundle(options(bundles[round % 2]!.path, cache, { allowDowngrade: true }));
    }
    stop = true;
    await reader;
    assert.ok(reads > 4, `${reads} reads`);
    assert.equal(seen.size, 2, 'the reader saw both generations');
  });
});

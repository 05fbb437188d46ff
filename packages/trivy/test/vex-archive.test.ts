import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  makeTar,
  makeTarGz,
  makeZip,
  seededInt,
  seededRandom,
  testSeed,
  vexRepositoryArchive,
  type ArchiveEntry,
} from '@trivy-airgap/test-utils';
import { TrivyError, checkVexArchive, extractVexArchive, unpackVexArchive } from '../src/index.js';
import { type VexArchiveType } from '../src/vex-archive.js';
import { rejectsWithCode } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'trivy-vex-archive-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A fresh sandbox: the archive file and an empty dest parent, so escapes are visible as extra files. */
function sandbox(archive: Buffer, type: VexArchiveType): { archivePath: string; box: string; dest: string } {
  counter += 1;
  const box = join(root, `case-${counter}`);
  mkdirSync(join(box, 'repo'), { recursive: true });
  const archivePath = join(box, type === 'zip' ? 'archive.zip' : 'archive.tar.gz');
  writeFileSync(archivePath, archive);
  return { archivePath, box, dest: join(box, 'repo', '0.1') };
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(dir, path).split('\\').join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

const INDEX = JSON.stringify({
  updated_at: '2026-11-25T01:00:00Z',
  packages: [{ id: 'pkg:golang/a', location: 'pkg/a.openvex.json' }],
});
const DOC = '{"statements":[]}';

/** A minimal valid repository under `top/` plus the hostile entries. */
function withRepo(top: string, hostile: ArchiveEntry[]): ArchiveEntry[] {
  return [
    { name: `${top}/index.json`, body: INDEX },
    { name: `${top}/pkg/a.openvex.json`, body: DOC },
    ...hostile,
  ];
}

describe('checkVexArchive / extractVexArchive: well-formed repositories (trivy-facts: 0.1/ with the subdir stripped)', () => {
  for (const type of ['tar.gz', 'zip'] as const) {
    it(`${type} with a vexhub-main/ top folder and //vexhub-main: check, then extract exactly the subdir's files`, async () => {
      const fixture = vexRepositoryArchive({ type, topDir: 'vexhub-main' });
      const { archivePath, box, dest } = sandbox(fixture.archive, type);
      const checked = await checkVexArchive(archivePath, type, 'vexhub-main');
      assert.equal(checked.index.packages.length, 3);
      assert.deepEqual(checked.files, [...fixture.files.keys()].sort());
      const extracted = await extractVexArchive(archivePath, type, 'vexhub-main', dest);
      assert.deepEqual(extracted.files, checked.files);
      assert.deepEqual(listFiles(dest), [...fixture.files.keys()].sort());
      for (const [path, bytes] of fixture.files) assert.deepEqual(readFileSync(join(dest, path)), bytes);
      // Nothing else appeared next to 0.1/.
      assert.deepEqual(
        listFiles(join(box, 'repo')),
        listFiles(dest).map((path) => `0.1/${path}`),
      );
      assert.ok(extracted.files.includes('.github/workflows/update.yaml'), 'dotfiles are copied too');
    });
  }

  it('zip without a top folder and no subdir (trivy-facts: self-hosted main.zip)', async () => {
    const fixture = vexRepositoryArchive({ type: 'zip', topDir: '' });
    const { archivePath, dest } = sandbox(fixture.archive, 'zip');
    const summary = await extractVexArchive(archivePath, 'zip', '', dest);
    assert.equal(summary.index.updatedAt, '2026-11-25T01:00:00Z');
    assert.deepEqual(listFiles(dest), [...fixture.files.keys()].sort());
  });

  it('ignores owner and mode bits: setuid/world-writable entries land as 0644 files', async () => {
    const archive = makeTarGz(withRepo('top', [{ name: 'top/tool.sh', body: '#!/bin/sh\n', mode: 0o4777 }]));
    const { archivePath, dest } = sandbox(archive, 'tar.gz');
    await extractVexArchive(archivePath, 'tar.gz', 'top', dest);
    const mode = statSync(join(dest, 'tool.sh')).mode & 0o7777;
    assert.equal(mode & 0o7133, 0, `no setuid/sticky, exec or group/other write bits: ${mode.toString(8)}`);
    assert.equal(mode & 0o600, 0o600);
  });

  it('entries outside the subdir are not extracted', async () => {
    const archive = makeTarGz(withRepo('top', [{ name: 'other/secret.txt', body: 'x' }]));
    const { archivePath, box, dest } = sandbox(archive, 'tar.gz');
    await extractVexArchive(archivePath, 'tar.gz', 'top', dest);
    assert.deepEqual(listFiles(join(box, 'repo')), ['0.1/index.json', '0.1/pkg/a.openvex.json']);
  });

  it('VEX_ARCHIVE_INVALID when the subdir is wrong (index.json one level too deep)', async () => {
    const fixture = vexRepositoryArchive({ type: 'zip', topDir: 'vexhub-main' });
    const { archivePath, dest } = sandbox(fixture.archive, 'zip');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'zip', ''), 'VEX_ARCHIVE_INVALID');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'zip', 'main'), 'VEX_ARCHIVE_INVALID');
    await rejectsWithCode(() => extractVexArchive(archivePath, 'zip', '', dest), 'VEX_ARCHIVE_INVALID');
  });

  it('VEX_ARCHIVE_INVALID when index.json lists a document that is not in the subdir', async () => {
    const archive = makeTarGz([
      { name: 'top/index.json', body: INDEX },
      { name: 'elsewhere/pkg/a.openvex.json', body: DOC },
    ]);
    const { archivePath } = sandbox(archive, 'tar.gz');
    const error = await rejectsWithCode(
      () => checkVexArchive(archivePath, 'tar.gz', 'top'),
      'VEX_ARCHIVE_INVALID',
    );
    assert.match(error.message, /pkg\/a\.openvex\.json/);
  });

  it('VEX_ARCHIVE_INVALID for bytes that are not an archive of the given type', async () => {
    const fixture = vexRepositoryArchive({ type: 'zip' });
    const { archivePath } = sandbox(fixture.archive, 'zip');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'tar.gz', 'vexhub-main'), 'VEX_ARCHIVE_INVALID');
    const tgz = sandbox(vexRepositoryArchive({ type: 'tar.gz' }).archive, 'tar.gz');
    await rejectsWithCode(
      () => checkVexArchive(tgz.archivePath, 'zip', 'vexhub-main'),
      'VEX_ARCHIVE_INVALID',
    );
  });

  it('VEX_ARCHIVE_INVALID for a truncated tar.gz', async () => {
    const archive = vexRepositoryArchive({ type: 'tar.gz' }).archive;
    const { archivePath } = sandbox(archive.subarray(0, Math.floor(archive.length / 2)), 'tar.gz');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'tar.gz', 'vexhub-main'), 'VEX_ARCHIVE_INVALID');
  });

  it('a failed extraction leaves destDir as it was found: absent, or empty when it existed', async () => {
    const archive = makeTarGz(withRepo('top', [{ name: 'top/zz/../../evil.json', body: 'x' }]));
    const absent = sandbox(archive, 'tar.gz');
    await rejectsWithCode(
      () => extractVexArchive(absent.archivePath, 'tar.gz', 'top', absent.dest),
      'VEX_ARCHIVE_UNSAFE',
    );
    assert.equal(existsSync(absent.dest), false);
    const empty = sandbox(archive, 'tar.gz');
    mkdirSync(empty.dest);
    await rejectsWithCode(
      () => extractVexArchive(empty.archivePath, 'tar.gz', 'top', empty.dest),
      'VEX_ARCHIVE_UNSAFE',
    );
    assert.deepEqual(readdirSync(empty.dest), []);
  });

  it('refuses to extract into a directory that is not empty', async () => {
    const { archivePath, dest } = sandbox(vexRepositoryArchive({ type: 'tar.gz' }).archive, 'tar.gz');
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(dest, 'old.json'), '{}');
    await rejectsWithCode(
      () => extractVexArchive(archivePath, 'tar.gz', 'vexhub-main', dest),
      'VEX_ARCHIVE_UNSAFE',
    );
  });
});

describe('hostile VEX archives are refused and nothing escapes (security regressions)', () => {
  const tarCases: [string, ArchiveEntry[]][] = [
    ['tar slip: ../ out of the archive', withRepo('top', [{ name: '../evil.json', body: 'x' }])],
    ['tar slip: ../ out of the subdir', withRepo('top', [{ name: 'top/../../evil.json', body: 'x' }])],
    [
      'tar slip: ../ hidden in the middle',
      withRepo('top', [{ name: 'top/pkg/../../../evil.json', body: 'x' }]),
    ],
    ['absolute path', withRepo('top', [{ name: '/tmp/trivy-airgap-evil.json', body: 'x' }])],
    ['symlink to /etc', withRepo('top', [{ name: 'top/etc', type: 'symlink', linkname: '/etc' }])],
    [
      'symlink outside the subdir',
      withRepo('top', [{ name: 'other/link', type: 'symlink', linkname: '../..' }]),
    ],
    [
      'hardlink to /etc/passwd',
      withRepo('top', [{ name: 'top/passwd', type: 'hardlink', linkname: '/etc/passwd' }]),
    ],
    [
      'an entry escaping via a symlinked dir',
      withRepo('top', [
        { name: 'top/sub', type: 'symlink', linkname: '../../..' },
        { name: 'top/sub/evil.json', body: 'x' },
      ]),
    ],
    [
      'tar slip hidden in a long (PAX) name',
      withRepo('top', [{ name: `top/${'a'.repeat(120)}/../../../evil.json`, body: 'x' }]),
    ],
    ['character device', withRepo('top', [{ name: 'top/null', type: 'chardev' }])],
    ['fifo', withRepo('top', [{ name: 'top/pipe', type: 'fifo' }])],
    ['backslash path', withRepo('top', [{ name: 'top\\..\\..\\evil.json', body: 'x' }])],
    [
      'duplicate entry (later one would overwrite)',
      withRepo('top', [{ name: 'top/index.json', body: '{}' }]),
    ],
    ['a file where a directory was', withRepo('top', [{ name: 'top/pkg', body: 'x' }])],
  ];
  for (const [what, entries] of tarCases) {
    it(`tar.gz: ${what} → VEX_ARCHIVE_UNSAFE`, async () => {
      const { archivePath, box, dest } = sandbox(makeTarGz(entries), 'tar.gz');
      await rejectsWithCode(() => checkVexArchive(archivePath, 'tar.gz', 'top'), 'VEX_ARCHIVE_UNSAFE');
      await rejectsWithCode(
        () => extractVexArchive(archivePath, 'tar.gz', 'top', dest),
        'VEX_ARCHIVE_UNSAFE',
      );
      const escaped = listFiles(box).filter(
        (path) => !path.startsWith('repo/0.1/') && path !== 'archive.tar.gz',
      );
      assert.deepEqual(escaped, []);
    });
  }

  const zipCases: [string, ArchiveEntry[]][] = [
    ['zip slip: ../../', withRepo('top', [{ name: '../../evil.json', body: 'x' }])],
    ['zip slip: inside the subdir', withRepo('top', [{ name: 'top/../../evil.json', body: 'x' }])],
    ['absolute path', withRepo('top', [{ name: '/tmp/trivy-airgap-evil.json', body: 'x' }])],
    ['backslash traversal', withRepo('top', [{ name: 'top\\..\\..\\evil.json', body: 'x' }])],
    ['drive letter', withRepo('top', [{ name: 'C:/evil.json', body: 'x' }])],
    ['symlink entry', withRepo('top', [{ name: 'top/link', type: 'symlink', linkname: '/etc/passwd' }])],
    [
      'an entry escaping via a symlinked dir',
      withRepo('top', [
        { name: 'top/sub', type: 'symlink', linkname: '../../..' },
        { name: 'top/sub/evil.json', body: 'x' },
      ]),
    ],
    ['duplicate entry', withRepo('top', [{ name: 'top/pkg/a.openvex.json', body: '{}' }])],
  ];
  for (const [what, entries] of zipCases) {
    it(`zip: ${what} → VEX_ARCHIVE_UNSAFE`, async () => {
      const { archivePath, box, dest } = sandbox(makeZip(entries), 'zip');
      await rejectsWithCode(() => checkVexArchive(archivePath, 'zip', 'top'), 'VEX_ARCHIVE_UNSAFE');
      await rejectsWithCode(() => extractVexArchive(archivePath, 'zip', 'top', dest), 'VEX_ARCHIVE_UNSAFE');
      const escaped = listFiles(box).filter(
        (path) => !path.startsWith('repo/0.1/') && path !== 'archive.zip',
      );
      assert.deepEqual(escaped, []);
    });
  }

  // Issue 10 #6: a name that is a file and a directory at once must be a clear archive error,
  // never a raw EEXIST from mkdir/open, whichever comes first and whether checked or extracted.
  const file = (name: string): ArchiveEntry => ({ name, body: '{}' });
  const directory = (name: string): ArchiveEntry => ({ name, type: 'directory' });
  const collisions: [string, ArchiveEntry[]][] = [
    ['a file x, then a directory x/', [file('top/x'), directory('top/x/')]],
    ['a directory x/, then a file x', [directory('top/x/'), file('top/x')]],
    ['a file x, then a file x/y', [file('top/x'), file('top/x/y.json')]],
    ['a file x/y, then a file x', [file('top/x/y.json'), file('top/x')]],
  ];
  for (const type of ['tar.gz', 'zip'] as const) {
    for (const [what, entries] of collisions) {
      it(`${type}: ${what} → VEX_ARCHIVE_UNSAFE, never EEXIST`, async () => {
        const all = withRepo('top', entries);
        const { archivePath, dest } = sandbox(type === 'zip' ? makeZip(all) : makeTarGz(all), type);
        await rejectsWithCode(() => checkVexArchive(archivePath, type, 'top'), 'VEX_ARCHIVE_UNSAFE');
        await rejectsWithCode(() => extractVexArchive(archivePath, type, 'top', dest), 'VEX_ARCHIVE_UNSAFE');
        assert.ok(!existsSync(dest), 'destDir is left absent as it was found');
      });
    }
  }

  it('gzip bomb: a highly compressed file beyond maxTotalBytes → VEX_ARCHIVE_TOO_LARGE', async () => {
    const archive = makeTarGz(
      withRepo('top', [{ name: 'top/bomb.json', body: Buffer.alloc(8 * 1024 * 1024) }]),
      9,
    );
    assert.ok(archive.length < 64 * 1024, 'the bomb is small on disk');
    const { archivePath, dest } = sandbox(archive, 'tar.gz');
    const limits = { maxTotalBytes: 1024 * 1024 };
    await rejectsWithCode(
      () => checkVexArchive(archivePath, 'tar.gz', 'top', limits),
      'VEX_ARCHIVE_TOO_LARGE',
    );
    await rejectsWithCode(
      () => extractVexArchive(archivePath, 'tar.gz', 'top', dest, limits),
      'VEX_ARCHIVE_TOO_LARGE',
    );
    assert.ok(!existsSync(dest), 'destDir is left absent as it was found');
  });

  it('gzip bomb: a decompressed stream of padding beyond maxTotalBytes → VEX_ARCHIVE_TOO_LARGE', async () => {
    // Valid tar followed by megabytes of zero blocks: no file is large, the stream is.
    const tar = Buffer.concat([makeTar(withRepo('top', [])), Buffer.alloc(4 * 1024 * 1024)]);
    const { archivePath } = sandbox(gzipSync(tar, { level: 9 }), 'tar.gz');
    await rejectsWithCode(
      () => checkVexArchive(archivePath, 'tar.gz', 'top', { maxTotalBytes: 1024 * 1024 }),
      'VEX_ARCHIVE_TOO_LARGE',
    );
  });

  it('one file beyond maxFileBytes → VEX_ARCHIVE_TOO_LARGE', async () => {
    const archive = makeZip(withRepo('top', [{ name: 'top/big.json', body: Buffer.alloc(300_000) }]));
    const { archivePath } = sandbox(archive, 'zip');
    await rejectsWithCode(
      () => checkVexArchive(archivePath, 'zip', 'top', { maxFileBytes: 100_000 }),
      'VEX_ARCHIVE_TOO_LARGE',
    );
  });

  for (const type of ['tar.gz', 'zip'] as const) {
    it(`${type}: too many entries → VEX_ARCHIVE_TOO_LARGE`, async () => {
      const many = Array.from({ length: 60 }, (_, i) => ({ name: `top/pkg/f${i}.json`, body: '{}' }));
      const entries = withRepo('top', many);
      const { archivePath } = sandbox(type === 'zip' ? makeZip(entries) : makeTarGz(entries), type);
      await rejectsWithCode(
        () => checkVexArchive(archivePath, type, 'top', { maxEntries: 50 }),
        'VEX_ARCHIVE_TOO_LARGE',
      );
    });
  }

  it('zip bomb: an entry holding more bytes than its declared size → VEX_ARCHIVE_TOO_LARGE', async () => {
    const zip = makeZip(withRepo('top', [{ name: 'top/liar.json', body: Buffer.alloc(50_000, 0x41) }]));
    // Rewrite the declared uncompressed size of the last entry in the central directory to 10 bytes.
    let central = -1;
    for (let i = zip.length - 22; i >= 0; i--) {
      if (zip.readUInt32LE(i) === 0x02014b50) {
        central = i;
        break;
      }
    }
    assert.ok(central > 0);
    zip.writeUInt32LE(10, central + 24);
    const { archivePath } = sandbox(zip, 'zip');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'zip', 'top'), 'VEX_ARCHIVE_TOO_LARGE');
  });

  it('zip: a damaged entry fails its CRC-32 → VEX_ARCHIVE_INVALID', async () => {
    const zip = makeZip(withRepo('top', []));
    const at = zip.indexOf(Buffer.from(DOC));
    zip[at + 2] = 0x78;
    const { archivePath } = sandbox(zip, 'zip');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'zip', 'top'), 'VEX_ARCHIVE_INVALID');
  });

  it('tar.gz: an entry of a type tar readers skip (unknown type flag) is refused, never skipped → VEX_ARCHIVE_UNSAFE', async () => {
    const tar = makeTar(withRepo('top', [{ name: 'top/hidden.json', body: 'x' }]));
    // Retype the last entry to 'Z' (no tar type) and fix its header checksum.
    const at = tar.indexOf(Buffer.from('top/hidden.json'));
    tar.write('Z', at + 156, 'ascii');
    tar.write('        ', at + 148, 'ascii');
    let sum = 0;
    for (const byte of tar.subarray(at, at + 512)) sum += byte;
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'ascii');
    const { archivePath, dest } = sandbox(gzipSync(tar), 'tar.gz');
    await rejectsWithCode(() => checkVexArchive(archivePath, 'tar.gz', 'top'), 'VEX_ARCHIVE_UNSAFE');
    await rejectsWithCode(() => extractVexArchive(archivePath, 'tar.gz', 'top', dest), 'VEX_ARCHIVE_UNSAFE');
    assert.ok(!existsSync(dest), 'destDir is left absent as it was found');
  });

  it('tar: a header that lies about its size is refused', async () => {
    const archive = makeTarGz(
      withRepo('top', [{ name: 'top/liar.json', body: 'x'.repeat(2000), headerSize: 10_000 }]),
    );
    const { archivePath } = sandbox(archive, 'tar.gz');
    const error = await rejectsWithCode(
      () => checkVexArchive(archivePath, 'tar.gz', 'top'),
      'VEX_ARCHIVE_INVALID',
    );
    assert.ok(error instanceof Error);
  });
});

describe('damaged VEX archives (seeded byte flips)', () => {
  for (const type of ['zip', 'tar.gz'] as const) {
    it(`${type}: a typed error or a result, the same for checking and extracting, never an unsettled read (TRIVY_AIRGAP_SEED replays)`, async (t) => {
      const seed = testSeed();
      t.diagnostic(`seed ${seed}`);
      const random = seededRandom(seed);
      const repository = vexRepositoryArchive({ type });
      for (let i = 0; i < 120; i++) {
        const bytes = Buffer.from(repository.archive);
        for (let flips = 1 + seededInt(random, 0, 3); flips > 0; flips--) {
          const at = seededInt(random, 0, bytes.length);
          bytes[at] = (bytes[at] ?? 0) ^ seededInt(random, 1, 256);
        }
        const { archivePath, dest } = sandbox(bytes, type);
        const outcome = async (into: string | undefined): Promise<string> => {
          try {
            await unpackVexArchive(archivePath, type, repository.subdir, into);
            return 'ok';
          } catch (error) {
            assert.ok(error instanceof TrivyError, `seed ${seed}, case ${i}: untyped ${String(error)}`);
            return error.code;
          }
        };
        assert.equal(await outcome(undefined), await outcome(dest), `seed ${seed}, case ${i}`);
      }
    });
  }
});

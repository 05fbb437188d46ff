import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { dbLayer, makeTar, trivyArtifact, vexRepositoryArchive, writeOciLayout } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-fixtures-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The fixtures must be readable by stock tools, or tests built on them prove nothing. */
describe('Trivy-shaped fixtures', () => {
  it('db layer: GNU tar lists trivy.db and metadata.json at the root; metadata has zero DownloadedAt', () => {
    const file = join(work, 'db.tar.gz');
    writeFileSync(file, dbLayer('db', { dbContents: 70_000 }));
    assert.deepEqual(execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n'), [
      'trivy.db',
      'metadata.json',
    ]);
    const metadata = JSON.parse(
      execFileSync('tar', ['-xzOf', file, 'metadata.json'], { encoding: 'utf8' }),
    ) as {
      Version: number;
      DownloadedAt: string;
    };
    assert.equal(metadata.Version, 2);
    assert.equal(metadata.DownloadedAt, '0001-01-01T00:00:00Z');
  });

  it('long names use a pax header that GNU tar understands', () => {
    const name = `${'deep/'.repeat(30)}file.txt`;
    const file = join(work, 'long.tar');
    writeFileSync(file, makeTar([{ name, body: 'x' }]));
    assert.equal(execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim(), name);
  });

  it('VEX zip archive opens with python zipfile and holds index.json under the top folder', () => {
    const fixture = vexRepositoryArchive({ type: 'zip' });
    const file = join(work, 'vex.zip');
    writeFileSync(file, fixture.archive);
    const names = execFileSync(
      'python3',
      [
        '-c',
        'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print("\\n".join(z.namelist()))',
        file,
      ],
      { encoding: 'utf8' },
    );
    assert.ok(names.split('\n').includes('vexhub-main/index.json'));
  });

  it('OCI layout is accepted by skopeo (inspect --raw gives the manifest bytes)', () => {
    const dir = join(work, 'layout');
    const artifact = trivyArtifact('db');
    writeOciLayout(dir, [{ ref: 'db', artifact }]);
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${dir}:db`]);
    assert.deepEqual(raw, artifact.manifest);
    assert.deepEqual(
      readFileSync(join(dir, 'blobs', 'sha256', artifact.layerDigest.slice(7))),
      artifact.layer,
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vexRepositoryManifest } from '@trivy-airgap/test-utils';
import {
  parseLocationUrl,
  parseVexIndex,
  parseVexRepositoryManifest,
  vexManifestRequest,
} from '../src/index.js';
import { parseGoDuration, vexManifestUrl } from '../src/vex.js';
import { throwsCode } from './helpers.js';

const VEXHUB_MANIFEST =
  '{"name":"VEX Hub","description":"VEX Repository by Aqua Security","versions":[{"spec_version":"0.1","locations":[{"url":"https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main"}],"update_interval":"24h"}]}';

describe('parseVexRepositoryManifest (trivy-facts: spec_version exactly "0.1", Go duration)', () => {
  it("parses VEX Hub's own manifest", () => {
    const manifest = parseVexRepositoryManifest(Buffer.from(VEXHUB_MANIFEST));
    assert.equal(manifest.name, 'VEX Hub');
    assert.equal(manifest.description, 'VEX Repository by Aqua Security');
    assert.deepEqual(manifest.version, {
      specVersion: '0.1',
      locations: ['https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main'],
      updateInterval: '24h',
      updateIntervalMs: 24 * 3_600_000,
    });
  });
  it('parses the test-utils fixture manifest', () => {
    const manifest = parseVexRepositoryManifest(vexRepositoryManifest('http://127.0.0.1:1/a.zip//top'));
    assert.deepEqual(manifest.version.locations, ['http://127.0.0.1:1/a.zip//top']);
  });
  it('picks the 0.1 entry among several versions', () => {
    const manifest = parseVexRepositoryManifest(
      Buffer.from(
        JSON.stringify({
          name: 'x',
          versions: [
            { spec_version: '0.2', locations: [{ url: 'https://x/b.zip' }], update_interval: '1h' },
            { spec_version: '0.1', locations: [{ url: 'https://x/a.zip' }], update_interval: '1h30m' },
          ],
        }),
      ),
    );
    assert.deepEqual(manifest.version.locations, ['https://x/a.zip']);
    assert.equal(manifest.version.updateIntervalMs, 90 * 60_000);
  });
  const bad: [string, unknown][] = [
    [
      'no 0.1 version ("0.10" is not "0.1")',
      {
        name: 'x',
        versions: [{ spec_version: '0.10', locations: [{ url: 'https://x/a.zip' }], update_interval: '1h' }],
      },
    ],
    [
      'a numeric spec_version',
      {
        name: 'x',
        versions: [{ spec_version: 0.1, locations: [{ url: 'https://x/a.zip' }], update_interval: '1h' }],
      },
    ],
    [
      'no locations',
      { name: 'x', versions: [{ spec_version: '0.1', locations: [], update_interval: '1h' }] },
    ],
    [
      'a bad update_interval',
      {
        name: 'x',
        versions: [
          { spec_version: '0.1', locations: [{ url: 'https://x/a.zip' }], update_interval: '1 day' },
        ],
      },
    ],
    [
      'no name',
      { versions: [{ spec_version: '0.1', locations: [{ url: 'https://x/a.zip' }], update_interval: '1h' }] },
    ],
    ['no versions', { name: 'x' }],
    ['an array', []],
  ];
  for (const [what, value] of bad) {
    it(`VEX_MANIFEST_INVALID for ${what}`, () => {
      throwsCode(
        () => parseVexRepositoryManifest(Buffer.from(JSON.stringify(value))),
        'VEX_MANIFEST_INVALID',
      );
    });
  }
  it('VEX_MANIFEST_INVALID for non-JSON', () => {
    throwsCode(() => parseVexRepositoryManifest(Buffer.from('<html>')), 'VEX_MANIFEST_INVALID');
  });
});

describe('parseGoDuration', () => {
  const table: [string, number][] = [
    ['24h', 86_400_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['300ms', 300],
    ['0', 0],
    ['-2m', -120_000],
    ['1h0m0s', 3_600_000],
  ];
  for (const [input, expected] of table) {
    it(`${input} → ${expected} ms`, () => assert.equal(parseGoDuration(input), expected));
  }
  for (const input of ['', '24', 'h', '1d', '1 h', '.h']) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      throwsCode(() => parseGoDuration(input), 'VEX_MANIFEST_INVALID');
    });
  }
});

describe('parseLocationUrl (trivy-facts: go-getter //subdir, type from the URL path ending)', () => {
  const table: [string, string, string, 'tar.gz' | 'zip'][] = [
    [
      'https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main',
      'https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz',
      'vexhub-main',
      'tar.gz',
    ],
    ['https://vex.example/repo.zip', 'https://vex.example/repo.zip', '', 'zip'],
    ['https://vex.example/repo.tgz//a/b/', 'https://vex.example/repo.tgz', 'a/b', 'tar.gz'],
    ['http://127.0.0.1:8080/r.ZIP//top?token=1', 'http://127.0.0.1:8080/r.ZIP?token=1', 'top', 'zip'],
    ['https://vex.example/download?id=7&archive=zip', 'https://vex.example/download?id=7', '', 'zip'],
    ['https://vex.example/dl//top?archive=tgz', 'https://vex.example/dl', 'top', 'tar.gz'],
  ];
  for (const [input, archiveUrl, subdir, archiveType] of table) {
    it(input, () => assert.deepEqual(parseLocationUrl(input), { archiveUrl, subdir, archiveType }));
  }
  for (const input of [
    'https://vex.example/repo.tar.bz2',
    'https://vex.example/repo',
    'ftp://vex.example/repo.zip',
    'not a url',
    'https://vex.example/repo.zip//../etc',
    'https://vex.example/repo.zip///abs',
  ]) {
    it(`VEX_LOCATION_INVALID for ${input}`, () => {
      throwsCode(() => parseLocationUrl(input), 'VEX_LOCATION_INVALID');
    });
  }
});

describe('vexManifestUrl (trivy-facts: GitHub contents API for github.com, .well-known elsewhere)', () => {
  it('github.com → api.github.com contents API, raw media type', () => {
    const request = vexManifestRequest('https://github.com/aquasecurity/vexhub');
    assert.equal(
      request.url,
      'https://api.github.com/repos/aquasecurity/vexhub/contents/vex-repository.json',
    );
    assert.equal(request.githubApi, true);
    assert.match(request.headers.Accept ?? '', /^application\/vnd\.github\.raw/);
  });
  it('honours a GitHub API URL (GITHUB_API_URL, tests)', () => {
    assert.equal(
      vexManifestUrl('https://github.com/aquasecurity/vexhub/', {
        githubApiUrl: 'http://127.0.0.1:9000/api/',
      }),
      'http://127.0.0.1:9000/api/repos/aquasecurity/vexhub/contents/vex-repository.json',
    );
  });
  it('other hosts → <url>/.well-known/vex-repository.json', () => {
    assert.equal(
      vexManifestUrl('https://vex.internal.example/repos/main/'),
      'https://vex.internal.example/repos/main/.well-known/vex-repository.json',
    );
    assert.equal(
      vexManifestUrl('http://127.0.0.1:8080'),
      'http://127.0.0.1:8080/.well-known/vex-repository.json',
    );
    assert.equal(vexManifestRequest('http://127.0.0.1:8080').githubApi, false);
  });
  it('refuses a github.com URL without owner/repo and non-http URLs', () => {
    throwsCode(() => vexManifestUrl('https://github.com/aquasecurity'), 'VEX_LOCATION_INVALID');
    throwsCode(() => vexManifestUrl('file:///etc/passwd'), 'VEX_LOCATION_INVALID');
  });
});

describe('parseVexIndex (trivy-facts: index.json; location relative and inside the repo dir)', () => {
  it('format absent = openvex; csaf kept', () => {
    const index = parseVexIndex(
      Buffer.from(
        JSON.stringify({
          updated_at: '2026-11-25T01:00:00Z',
          packages: [
            { id: 'pkg:golang/a', location: 'pkg/golang/a/a.openvex.json' },
            { id: 'pkg:npm/b', location: './pkg/npm/b/b.csaf.json', format: 'csaf' },
          ],
        }),
      ),
    );
    assert.deepEqual(
      index.packages.map((entry) => [entry.location, entry.format]),
      [
        ['pkg/golang/a/a.openvex.json', 'openvex'],
        ['pkg/npm/b/b.csaf.json', 'csaf'],
      ],
    );
  });
  it("Trivy's own fixture shape: ID/Location keys, no updated_at (Go decodes JSON keys case-insensitively)", () => {
    const index = parseVexIndex(
      Buffer.from(
        JSON.stringify({ Packages: [{ ID: 'pkg:apk/alpine/musl', Location: 'musl.json', Format: '' }] }),
      ),
    );
    assert.equal(index.updatedAt, undefined);
    assert.deepEqual(index.packages, [
      { id: 'pkg:apk/alpine/musl', location: 'musl.json', format: 'openvex' },
    ]);
  });
  it('every key that folds onto a field decodes into it, the last one wins (as in Go); null counts as absent; the Kelvin sign folds onto k', () => {
    const index = parseVexIndex(
      Buffer.from(
        '{"updated_at":null,"PACKAGES":[{"id":"exact","Id":"folded","location":"a.json"}],' +
          '"pac\u212aages":[{"id":"kelvin","location":"k.json"}]}',
      ),
    );
    assert.equal(index.updatedAt, undefined);
    // Both PACKAGES and pacKages (Kelvin) match; the last one decoded wins, as in Go.
    assert.deepEqual(index.packages, [{ id: 'kelvin', location: 'k.json', format: 'openvex' }]);
    const twice = parseVexIndex(Buffer.from('{"packages":[{"id":"first","Id":"last","location":"a.json"}]}'));
    assert.equal(twice.packages[0]?.id, 'last');
  });
  it('Updated_At is read; a present but invalid timestamp is refused', () => {
    assert.equal(
      parseVexIndex(Buffer.from('{"Updated_At":"2026-11-25T01:00:00Z","packages":[]}')).updatedAt,
      '2026-11-25T01:00:00Z',
    );
    throwsCode(
      () => parseVexIndex(Buffer.from('{"updated_at":"yesterday","packages":[]}')),
      'VEX_ARCHIVE_INVALID',
    );
  });
  for (const location of ['../outside.json', '/etc/passwd', 'a/../../b.json', 'a\\b.json', 'C:/x.json']) {
    it(`refuses location ${JSON.stringify(location)} with VEX_ARCHIVE_INVALID`, () => {
      throwsCode(
        () =>
          parseVexIndex(
            Buffer.from(
              JSON.stringify({ updated_at: '2026-11-25T01:00:00Z', packages: [{ id: 'x', location }] }),
            ),
          ),
        'VEX_ARCHIVE_INVALID',
      );
    });
  }
});

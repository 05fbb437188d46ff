import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  offlineTrivyFlags,
  trivyCapabilities,
  trivyConfigYaml,
  trivyFallsBack,
  type OfflineFlagsInput,
} from '../src/index.js';

const ALL: OfflineFlagsInput = {
  cacheDir: '/srv/trivy',
  defaultCacheDir: '/root/.cache/trivy',
  components: ['db', 'java-db', 'checks', 'vex'],
};

describe('offline flags by Trivy release (trivy-facts "Second reading": flags by release)', () => {
  it('newest Trivy (no version): every flag, custom cache dir', () => {
    assert.deepEqual(offlineTrivyFlags(ALL), [
      '--skip-db-update',
      '--skip-java-db-update',
      '--skip-check-update',
      '--offline-scan',
      '--vex',
      'repo',
      '--skip-vex-repo-update',
      '--cache-dir',
      '/srv/trivy',
      '--skip-version-check',
      '--disable-telemetry',
    ]);
  });
  it('no --cache-dir when it is the default; no VEX flags without VEX', () => {
    assert.deepEqual(
      offlineTrivyFlags({
        cacheDir: '/root/.cache/trivy',
        defaultCacheDir: '/root/.cache/trivy',
        components: ['db'],
      }),
      ['--skip-db-update', '--offline-scan', '--skip-version-check', '--disable-telemetry'],
    );
  });
  // Each boundary: the last release without the flag, the first with it, and the bundle range.
  const table: [string, { check: string; vex: boolean; phoneHome: boolean }][] = [
    ['0.50.4', { check: '--skip-policy-update', vex: false, phoneHome: false }],
    ['<0.51.0', { check: '--skip-policy-update', vex: false, phoneHome: false }],
    ['0.51.0', { check: '--skip-check-update', vex: false, phoneHome: false }],
    ['>=0.51.0 <0.54.0', { check: '--skip-check-update', vex: false, phoneHome: false }],
    ['0.53.9', { check: '--skip-check-update', vex: false, phoneHome: false }],
    ['0.54.0', { check: '--skip-check-update', vex: true, phoneHome: false }],
    ['>=0.58.0 <0.63.0', { check: '--skip-check-update', vex: true, phoneHome: false }],
    ['0.62.1', { check: '--skip-check-update', vex: true, phoneHome: false }],
    ['0.63.0', { check: '--skip-check-update', vex: true, phoneHome: true }],
    ['>=0.63.0 <0.69.0', { check: '--skip-check-update', vex: true, phoneHome: true }],
    ['>=0.69.0', { check: '--skip-check-update', vex: true, phoneHome: true }],
  ];
  for (const [trivyVersion, expected] of table) {
    it(`Trivy ${trivyVersion}: ${expected.check}${expected.vex ? ', --vex repo' : ''}${expected.phoneHome ? ', --skip-version-check --disable-telemetry' : ''}`, () => {
      const flags = offlineTrivyFlags({ ...ALL, trivyVersion });
      assert.deepEqual(flags, [
        '--skip-db-update',
        '--skip-java-db-update',
        expected.check,
        '--offline-scan',
        ...(expected.vex ? ['--vex', 'repo', '--skip-vex-repo-update'] : []),
        '--cache-dir',
        '/srv/trivy',
        ...(expected.phoneHome ? ['--skip-version-check', '--disable-telemetry'] : []),
      ]);
    });
  }
});

describe('trivy.yaml by Trivy release (keys from pkg/flag/*_flags.go of each release)', () => {
  it('newest Trivy: scan.skip-version-check, scan.disable-telemetry, rego.skip-check-update and no made-up keys', () => {
    const config = parse(trivyConfigYaml(ALL)) as Record<string, unknown>;
    assert.deepEqual(config, {
      cache: { dir: '/srv/trivy' },
      db: { 'skip-update': true, 'java-skip-update': true },
      rego: { 'skip-check-update': true },
      scan: { offline: true, 'skip-version-check': true, 'disable-telemetry': true },
      vulnerability: { vex: ['repo'], 'skip-vex-repo-update': true },
    });
  });
  it('Trivy 0.62: no scan.skip-version-check / scan.disable-telemetry (they came in 0.63)', () => {
    const config = parse(trivyConfigYaml({ ...ALL, trivyVersion: '0.62.1' })) as Record<string, unknown>;
    assert.deepEqual(config.scan, { offline: true });
  });
  it('Trivy 0.53: no VEX repository keys (0.54); Trivy 0.50: rego.skip-policy-update', () => {
    const old = parse(trivyConfigYaml({ ...ALL, trivyVersion: '0.53.0' })) as Record<string, unknown>;
    assert.equal(old.vulnerability, undefined);
    assert.deepEqual(old.rego, { 'skip-check-update': true });
    const older = parse(trivyConfigYaml({ ...ALL, trivyVersion: '0.50.4' })) as Record<string, unknown>;
    assert.deepEqual(older.rego, { 'skip-policy-update': true });
  });
  it('repository flags: --policy-bundle-repository before 0.51', () => {
    assert.equal(trivyCapabilities('0.50.4').repositoryFlags.checks, '--policy-bundle-repository');
    assert.equal(trivyCapabilities('0.51.0').repositoryFlags.checks, '--checks-bundle-repository');
    assert.equal(trivyCapabilities().repositoryKeys.checks, 'misconfiguration.checks-bundle-repository');
  });
});

describe('trivyFallsBack (Trivy shouldTryOtherRepo over go-containerregistry transport.Error)', () => {
  const table: [string, number | undefined, string[], boolean][] = [
    ['retried statuses, whatever the body', 503, ['DENIED'], true],
    ['408 without body', 408, [], true],
    ['429', 429, ['TOOMANYREQUESTS'], true],
    ['499 (nginx)', 499, [], true],
    ['522 (Cloudflare)', 522, [], true],
    ['every code temporary', 400, ['UNKNOWN', 'UNAVAILABLE'], true],
    ['BLOB_UPLOAD_INVALID is temporary', 400, ['BLOB_UPLOAD_INVALID'], true],
    ['one code not temporary', 400, ['UNKNOWN', 'DENIED'], false],
    ['BLOB_UNKNOWN in the body (Trivy special-cases GCR)', 404, ['BLOB_UNKNOWN'], true],
    ['a bare 404 on a blob: no body, no code', 404, [], false],
    ['MANIFEST_UNKNOWN', 404, ['MANIFEST_UNKNOWN'], false],
    ['UNAUTHORIZED', 401, ['UNAUTHORIZED'], false],
    ['DENIED', 403, ['DENIED'], false],
    ['501 is not retried', 501, [], false],
    ['no response (network, TLS)', undefined, [], false],
  ];
  for (const [label, status, registryCodes, expected] of table) {
    it(`${label} → ${expected ? 'next repository' : 'stop'}`, () => {
      assert.equal(trivyFallsBack({ status, registryCodes }), expected);
    });
  }
});

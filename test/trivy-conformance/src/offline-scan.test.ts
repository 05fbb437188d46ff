import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  configWithYaml,
  exportBundle,
  importBundle,
  offlineRootfsArgs,
  printedFlags as flagsOf,
  runPrinted,
  sourceFlags,
} from './harness/airgap.js';
import { PROBE } from './harness/fixtures.js';
import { VERSIONS } from './harness/toolchain.js';
import {
  failedChecks,
  reportOf,
  runAirgap,
  runTrivy,
  startWorld,
  vulnerabilities,
  type World,
} from './harness/world.js';

/**
 * export --all → import → the REAL Trivy (the primary pinned release) scans offline with what we
 * installed: the DB and Java DB findings, the imported checks (not Trivy's embedded copy), VEX
 * from the imported repository, and the exact command and trivy.yaml that `import` gives the user.
 */

const TRIVY = VERSIONS.primary;
const ALL_FINDINGS = [
  `${PROBE.os.package} ${PROBE.os.cve}`,
  `${PROBE.maven.groupId}:${PROBE.maven.artifactId} ${PROBE.maven.cve}`,
].sort();
const JAVA_ONLY = [`${PROBE.maven.groupId}:${PROBE.maven.artifactId} ${PROBE.maven.cve}`];

let world: World;
let keys: string;
let cache: string;
let trivyYaml: string;
let printedFlags: string;

function hasRootUserCheck(ids: readonly string[]): boolean {
  return ids.some((id) => (PROBE.rootUserCheck.ids as readonly string[]).includes(id));
}

before(async () => {
  world = await startWorld({ checksMajors: ['2'] });
  keys = join(world.work, 'keys');
  cache = join(world.work, 'cache');
  trivyYaml = join(world.work, 'trivy.yaml');
  const keygen = await runAirgap(world, ['keygen', '--out-dir', keys]);
  assert.equal(keygen.code, 0, keygen.stderr);
});

after(async () => {
  await (world as World | undefined)?.close();
});

describe(`offline scans with the real Trivy ${TRIVY} on what import installed`, () => {
  it('export --all → import: prints the offline command and writes trivy.yaml', async () => {
    const bundle = await exportBundle(
      world,
      'all',
      ['--all', ...sourceFlags(world, world.refs.checks['2']!), '--trivy-version', TRIVY],
      keys,
    );
    const imported = await importBundle(world, bundle, cache, ['--write-trivy-config', trivyYaml], keys);
    assert.equal(imported.code, 0, imported.stderr);
    printedFlags = flagsOf(imported.stdout);
  });

  it('trivy rootfs --skip-db-update --skip-java-db-update --offline-scan finds exactly the DB CVE and the Java CVE', async () => {
    const report = reportOf(await runTrivy(world, TRIVY, offlineRootfsArgs(world, cache)));
    assert.deepEqual(vulnerabilities(report), ALL_FINDINGS);
  });

  it('--vex repo --skip-vex-repo-update suppresses the CVE the imported VEX repository marks not_affected', async () => {
    const report = reportOf(
      await runTrivy(
        world,
        TRIVY,
        offlineRootfsArgs(world, cache, ['--vex', 'repo', '--skip-vex-repo-update']),
      ),
    );
    assert.deepEqual(vulnerabilities(report), JAVA_ONLY);
  });

  it('the command import printed runs verbatim (through a shell) and asks nothing of the network', async () => {
    const refusedBefore = world.proxy.refused.length;
    const shell = await runPrinted(world, TRIVY, printedFlags);
    // The printed command has --vex repo --skip-vex-repo-update: the OS CVE is suppressed.
    assert.deepEqual(vulnerabilities(reportOf(shell)), JAVA_ONLY);
    assert.deepEqual(world.proxy.refused.slice(refusedBefore), []);
  });

  it('trivy --config <the written trivy.yaml>: VEX applied, no version check or telemetry attempted', async () => {
    const refusedBefore = world.proxy.refused.length;
    const report = reportOf(
      await runTrivy(world, TRIVY, [
        'rootfs',
        '--config',
        trivyYaml,
        '--scanners',
        'vuln',
        '--format',
        'json',
        world.rootfs,
      ]),
    );
    assert.deepEqual(vulnerabilities(report), JAVA_ONLY);
    assert.deepEqual(world.proxy.refused.slice(refusedBefore), []);
  });

  it('control: without scan.skip-version-check/scan.disable-telemetry Trivy does try to phone home (refused by the proxy)', async () => {
    const plain = join(world.work, 'no-phone-home-keys.yaml');
    writeFileSync(
      plain,
      readFileSync(trivyYaml, 'utf8')
        .replace(/^\s*skip-version-check: true\n/m, '')
        .replace(/^\s*disable-telemetry: true\n/m, ''),
    );
    const refusedBefore = world.proxy.refused.length;
    reportOf(
      await runTrivy(world, TRIVY, [
        'rootfs',
        '--config',
        plain,
        '--scanners',
        'vuln',
        '--format',
        'json',
        world.rootfs,
      ]),
    );
    assert.notDeepEqual(world.proxy.refused.slice(refusedBefore), []);
  });

  it("status prints the command for the imported bundle's target; --trivy-version prints it for another release", async () => {
    const flagsFor = async (extra: readonly string[]): Promise<{ code: number | null; flags?: string[] }> => {
      const run = await runAirgap(world, ['status', '--cache-dir', cache, '--json', ...extra]);
      if (run.code !== 0) return { code: run.code };
      return { code: run.code, flags: (JSON.parse(run.stdout) as { trivyFlags: string[] }).trivyFlags };
    };
    const target = await flagsFor([]);
    assert.ok(target.flags?.includes('--skip-version-check'), JSON.stringify(target));
    const older = await flagsFor(['--trivy-version', '0.62.1']);
    assert.ok(older.flags !== undefined && !older.flags.includes('--skip-version-check'));
    assert.ok(older.flags.includes('--skip-check-update') && older.flags.includes('--vex'));
    const oldest = await flagsFor(['--trivy-version', '0.50.4']);
    assert.ok(oldest.flags?.includes('--skip-policy-update') && !oldest.flags.includes('--vex'));
    assert.equal((await flagsFor(['--trivy-version', 'latest'])).code, 2, 'not a release: usage error');
  });

  it('trivy config reports the root-user check from the imported bundle', async () => {
    const report = await configWithYaml(world, TRIVY, trivyYaml);
    assert.ok(hasRootUserCheck(failedChecks(report)), JSON.stringify(failedChecks(report)));
  });

  it('…and does NOT after importing the bundle without it (Trivy used the imported checks, not its embedded copy)', async () => {
    const bundle = await exportBundle(
      world,
      'noroot',
      ['--checks', ...sourceFlags(world, world.refs.checksWithoutRootUser['2']!), '--trivy-version', TRIVY],
      keys,
    );
    const imported = await importBundle(world, bundle, cache, [], keys);
    assert.equal(imported.code, 0, imported.stderr);
    const report = await configWithYaml(world, TRIVY, trivyYaml);
    assert.ok(failedChecks(report).length > 0, 'the other Dockerfile checks still run');
    assert.equal(hasRootUserCheck(failedChecks(report)), false, JSON.stringify(failedChecks(report)));
  });

  it('rego.skip-check-update in the written trivy.yaml is honoured: a stale checks cache is not updated', async () => {
    // Age policy/metadata.json by two days in a copy of the cache (relative links copy as links):
    // without the skip key Trivy would pull the FULL bundle from TRIVY_CHECKS_BUNDLE_REPOSITORY.
    const stale = join(world.work, 'stale-cache');
    cpSync(cache, stale, { recursive: true, verbatimSymlinks: true });
    const metadataPath = join(stale, 'policy', 'metadata.json');
    const metadata = JSON.parse(readFileSync(metadataPath, 'utf8')) as Record<string, unknown>;
    metadata.DownloadedAt = new Date(Date.now() - 48 * 3600_000).toISOString();
    writeFileSync(metadataPath, JSON.stringify(metadata));
    const yaml = readFileSync(trivyYaml, 'utf8').replace(cache, stale);
    const staleYaml = join(world.work, 'stale.yaml');
    writeFileSync(staleYaml, yaml);
    const env = { TRIVY_CHECKS_BUNDLE_REPOSITORY: world.refs.checks['2']! };
    const skipped = await configWithYaml(world, TRIVY, staleYaml, env);
    assert.equal(hasRootUserCheck(failedChecks(skipped)), false);
    // Control: the same cache and config without the key → Trivy updates from the registry.
    writeFileSync(staleYaml, yaml.replace(/^\s*skip-check-update: true\n/m, ''));
    const updated = await configWithYaml(world, TRIVY, staleYaml, env);
    assert.ok(hasRootUserCheck(failedChecks(updated)), JSON.stringify(failedChecks(updated)));
  });
});

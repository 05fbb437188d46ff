import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultSources } from '@trivy-airgap/trivy';
import {
  configWithYaml,
  exportBundle,
  importBundle,
  printedFlags,
  runPrinted,
  sourceFlags,
} from './harness/airgap.js';
import { PROBE } from './harness/fixtures.js';
import { VERSIONS } from './harness/toolchain.js';
import { failedChecks, reportOf, startWorld, vulnerabilities, type World } from './harness/world.js';

/**
 * The version matrix (versions.json): for every pinned Trivy release, `export --trivy-version`
 * picks that release's checks major, `import` prints the command and writes the trivy.yaml for it,
 * and that very Trivy accepts both verbatim and finds what it should — VEX applied, the imported
 * checks used (the bundle without the root-user check proves it is ours, not the embedded copy).
 */

const JAVA_ONLY = [`${PROBE.maven.groupId}:${PROBE.maven.artifactId} ${PROBE.maven.cve}`];
let world: World;

/** `1` or `2`: the checks major the release pulls, from the product's own table (its default tag). */
function checksMajor(version: string): '1' | '2' {
  const tag = /:(\d+)$/.exec(defaultSources(version).checks[0] ?? '')?.[1];
  assert.ok(tag === '1' || tag === '2', `no pinned checks bundle for Trivy ${version} (tag ${String(tag)})`);
  return tag;
}

function hasRootUserCheck(report: ReturnType<typeof reportOf>): boolean {
  return failedChecks(report).some((id) => (PROBE.rootUserCheck.ids as readonly string[]).includes(id));
}

before(async () => {
  world = await startWorld({ checksMajors: ['1', '2'] });
});

/**
 * The bundle without the root-user check is imported for the oldest pinned release of each
 * checks major (one per bundle layout: v1 with `./` entries and `.manifest`, v2 files only); the
 * newest release gets the same proof in offline-scan.test.ts. Keeps the matrix within its budget.
 */
const PROVES_IMPORTED_CHECKS = new Set(
  (['1', '2'] as const).map(
    (major) => VERSIONS.trivy.find(({ version }) => checksMajor(version) === major)?.version,
  ),
);

after(async () => {
  await (world as World | undefined)?.close();
});

async function exportAndImport(
  version: string,
  name: string,
  components: readonly string[],
  checksRepository: string,
  cache: string,
): Promise<{ printed: string; trivyYaml: string }> {
  const bundle = await exportBundle(world, name, [
    ...components,
    ...sourceFlags(world, checksRepository),
    '--trivy-version',
    version,
  ]);
  const trivyYaml = join(world.work, `${name}.trivy.yaml`);
  const imported = await importBundle(world, bundle, cache, ['--write-trivy-config', trivyYaml]);
  assert.equal(imported.code, 0, imported.stderr);
  return { printed: printedFlags(imported.stdout), trivyYaml };
}

describe(
  'version matrix: each pinned Trivy accepts what we print for it and scans with what we installed',
  { concurrency: 2 },
  () => {
    for (const { version } of VERSIONS.trivy) {
      it(`Trivy ${version}`, async () => {
        const major = checksMajor(version);
        const cache = join(world.work, `cache-${version}`);
        const { printed, trivyYaml } = await exportAndImport(
          version,
          `all-${version}`,
          ['--all'],
          world.refs.checks[major]!,
          cache,
        );
        // The printed command, verbatim, with that Trivy: VEX applied (the OS CVE is not_affected).
        const scan = await runPrinted(world, version, printed);
        assert.deepEqual(vulnerabilities(reportOf(scan)), JAVA_ONLY);
        // The written trivy.yaml with that Trivy: the imported checks run.
        const config = await configWithYaml(world, version, trivyYaml);
        assert.ok(hasRootUserCheck(config), JSON.stringify(failedChecks(config)));
        assert.deepEqual(world.proxy.refused, []);
        if (!PROVES_IMPORTED_CHECKS.has(version)) return;
        // The same cache after importing the bundle without the root-user check: no root-user finding.
        await exportAndImport(
          version,
          `noroot-${version}`,
          ['--checks'],
          world.refs.checksWithoutRootUser[major]!,
          cache,
        );
        const noRoot = await configWithYaml(world, version, trivyYaml);
        assert.ok(failedChecks(noRoot).length > 0, 'the other Dockerfile checks still run');
        assert.equal(hasRootUserCheck(noRoot), false, JSON.stringify(failedChecks(noRoot)));
      });
    }
  },
);

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRegistry, type TestRegistry } from '@trivy-airgap/test-utils';
import { exportBundle, rootfsArgs, sourceFlags } from './harness/airgap.js';
import { PROBE } from './harness/fixtures.js';
import { startStaticServer, type StaticServer } from './harness/static-server.js';
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
 * Scale-out: `import --to-registry` pushes the artifacts into a site registry and `--vex-serve-dir`
 * lays out VEX Hub for a static web server; then the real Trivy, ONLINE (loopback only, a fresh
 * cache), downloads everything from there with exactly the settings import printed.
 */

const TRIVY = VERSIONS.primary;
let world: World;
let site: TestRegistry;
let web: StaticServer;
let registryFlags: string[];
let registryYaml: string;
let repositoryYaml: string;
const PROBE_JAVA = `${PROBE.maven.groupId}:${PROBE.maven.artifactId} ${PROBE.maven.cve}`;
const PROBE_OS = `${PROBE.os.package} ${PROBE.os.cve}`;

before(async () => {
  world = await startWorld({ checksMajors: ['2'] });
  site = await startRegistry({ mode: 'plain' });
  const serveDir = join(world.work, 'www', 'vex');
  mkdirSync(join(world.work, 'www'), { recursive: true });
  web = await startStaticServer(serveDir);
  const bundle = await exportBundle(world, 'all', ['--all', ...sourceFlags(world, world.refs.checks['2']!)]);
  const published = await runAirgap(world, [
    'import',
    bundle,
    '--allow-unsigned',
    '--no-cache',
    '--to-registry',
    `${site.host}/site`,
    '--plain-http',
    '--vex-serve-dir',
    serveDir,
    '--vex-base-url',
    web.url,
    '--json',
  ]);
  assert.equal(published.code, 0, published.stderr);
  const result = JSON.parse(published.stdout) as {
    registry: { trivyFlags: string[]; trivyYaml: string };
    vexServe: { repositoryYaml: string };
  };
  registryFlags = result.registry.trivyFlags;
  registryYaml = join(world.work, 'site-trivy.yaml');
  writeFileSync(registryYaml, result.registry.trivyYaml);
  repositoryYaml = result.vexServe.repositoryYaml;
});

after(async () => {
  await web.close();
  await site.stop();
  await (world as World | undefined)?.close();
});

describe(`scale-out: Trivy ${TRIVY} online against the site registry and VEX web server`, () => {
  it('the printed settings name only the site registry', () => {
    const refs = registryFlags.filter((flag) => !flag.startsWith('--'));
    assert.equal(refs.length, 3, registryFlags.join(' '));
    for (const ref of refs) assert.ok(ref.startsWith(`${site.host}/site/`), ref);
  });

  it('trivy rootfs with the printed --db-repository/--java-db-repository downloads both DBs and finds both CVEs', async () => {
    const cache = join(world.work, 'client-cache');
    const report = reportOf(await runTrivy(world, TRIVY, rootfsArgs(world, cache, registryFlags)));
    assert.deepEqual(vulnerabilities(report), [PROBE_JAVA, PROBE_OS].sort());
    assert.ok(
      existsSync(join(cache, 'db', 'trivy.db')) && existsSync(join(cache, 'java-db', 'trivy-java.db')),
    );
    assert.deepEqual(world.proxy.refused, []);
  });

  // `trivy config` has no --db-repository flag (cobra: "unknown flag"); the printed trivy.yaml
  // works for every subcommand, since Trivy ignores keys a subcommand does not use.
  it('trivy config --config <the printed trivy.yaml> downloads the checks from the site registry and runs them', async () => {
    const cache = join(world.work, 'client-cache');
    const report = reportOf(
      await runTrivy(world, TRIVY, [
        'config',
        '--config',
        registryYaml,
        '--cache-dir',
        cache,
        '--skip-version-check',
        '--disable-telemetry',
        '--format',
        'json',
        world.project,
      ]),
    );
    assert.ok(failedChecks(report).some((id) => (PROBE.rootUserCheck.ids as readonly string[]).includes(id)));
    const metadata = JSON.parse(readFileSync(join(cache, 'policy', 'metadata.json'), 'utf8')) as {
      MajorVersion: number;
    };
    assert.equal(metadata.MajorVersion, 2);
  });

  it('--vex repo with the printed repository.yaml entry downloads the VEX repository from the web server and applies it', async () => {
    const dataHome = join(world.work, 'client-data');
    mkdirSync(join(dataHome, '.trivy', 'vex'), { recursive: true });
    writeFileSync(join(dataHome, '.trivy', 'vex', 'repository.yaml'), repositoryYaml);
    const cache = join(world.work, 'client-cache');
    const report = reportOf(
      await runTrivy(world, TRIVY, rootfsArgs(world, cache, [...registryFlags, '--vex', 'repo']), {
        XDG_DATA_HOME: dataHome,
      }),
    );
    assert.deepEqual(vulnerabilities(report), [PROBE_JAVA]);
    assert.ok(
      web.requests.some((path) => path.endsWith('/.well-known/vex-repository.json')),
      web.requests.join(),
    );
    assert.ok(existsSync(join(cache, 'vex', 'repositories', 'probe', '0.1', 'index.json')));
    assert.deepEqual(world.proxy.refused, []);
  });
});

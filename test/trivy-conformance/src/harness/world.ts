import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  runProcess,
  seedRegistryWithSkopeo,
  startProxy,
  startRegistry,
  startVexRepositoryServer,
  trivyArtifact,
  vexRepositoryManifest,
  type FixtureArtifact,
  type ProcessRun,
  type TestProxy,
  type TestRegistry,
  type VexRepositoryServer,
} from '@trivy-airgap/test-utils';
import {
  buildChecksLayer,
  buildDockerfileProject,
  buildJavaDbLayer,
  buildRootfs,
  buildVexRepository,
  buildVulnDbLayer,
} from './fixtures.js';
import { startStaticServer } from './static-server.js';
import { CLI, loadToolchain, VERSIONS, type Toolchain } from './toolchain.js';

/** Repositories of the loopback registry, as `host:port/repo:tag`. */
export interface PublishedRefs {
  readonly db: string;
  readonly javaDb: string;
  /** Checks bundle per major (`aquasec/trivy-checks:<major>`), and the same without the root-user check. */
  readonly checks: Readonly<Partial<Record<'1' | '2', string>>>;
  readonly checksWithoutRootUser: Readonly<Partial<Record<'1' | '2', string>>>;
}

/**
 * Everything one test file needs, all on 127.0.0.1: the docker-registry holding the artifacts
 * (pushed with skopeo, Trivy's media types and titles), the VEX repository server, and a
 * recording proxy that refuses every non-loopback target (HTTP(S)_PROXY of every Trivy run, so
 * nothing leaks and the tests can see what Trivy tried to reach).
 */
export interface World {
  readonly work: string;
  readonly tools: Toolchain;
  readonly registry: TestRegistry;
  readonly vex: Pick<VexRepositoryServer, 'url' | 'requests' | 'close'>;
  readonly proxy: TestProxy;
  readonly refs: PublishedRefs;
  /** Alpine rootfs with the vulnerable package and the probe jar. */
  readonly rootfs: string;
  /** A directory with a Dockerfile that runs as root. */
  readonly project: string;
  /** HOME of every process the world runs (Trivy writes ~/.trivy and ~/.cache there if asked). */
  readonly home: string;
  /** XDG_DATA_HOME shared by the importer and Trivy: repository.yaml is under it. */
  readonly dataHome: string;
  close(): Promise<void>;
}

export interface WorldOptions {
  /** Checks bundle majors to build and publish (default: 2). */
  readonly checksMajors?: readonly ('1' | '2')[];
  /**
   * The VEX repository's update_interval (a Go duration). Default: test-utils' server with 24h;
   * given: a static web server whose manifest declares it (`1s` makes an online Trivy update).
   */
  readonly vexUpdateInterval?: string;
}

/** Serves the VEX repository fixture from a static directory with the given update_interval. */
async function startStaticVexServer(work: string, interval: string): Promise<World['vex']> {
  const root = join(work, 'vex-www');
  const server = await startStaticServer(root);
  const fixture = buildVexRepository();
  mkdirSync(join(root, '.well-known'), { recursive: true });
  mkdirSync(join(root, 'archive'), { recursive: true });
  writeFileSync(join(root, 'archive', 'main.tar.gz'), fixture.archive);
  const manifest = JSON.parse(
    vexRepositoryManifest(`${server.url}/archive/main.tar.gz//${fixture.subdir}`, 'probe').toString('utf8'),
  ) as { versions: { update_interval: string }[] };
  for (const version of manifest.versions) version.update_interval = interval;
  writeFileSync(join(root, '.well-known', 'vex-repository.json'), JSON.stringify(manifest));
  return server;
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const tools = loadToolchain();
  const work = mkdtempSync(join(tmpdir(), 'airgap-conformance-'));
  const home = join(work, 'home');
  // Trivy reads ./trivy.yaml by default: every process runs in an empty directory of its own.
  mkdirSync(join(work, 'cwd'), { recursive: true });
  const dataHome = join(work, 'data');
  mkdirSync(home, { recursive: true });
  mkdirSync(dataHome, { recursive: true });
  const rootfs = join(work, 'rootfs');
  const project = join(work, 'project');
  const { jarSha1 } = buildRootfs(rootfs);
  buildDockerfileProject(project);
  const majors = options.checksMajors ?? ['2'];
  const [db, javaDb, ...checks] = await Promise.all([
    buildVulnDbLayer(tools, work),
    buildJavaDbLayer(work, jarSha1),
    ...majors.flatMap((major) => [
      buildChecksLayer(tools.checks[major], major, work),
      buildChecksLayer(tools.checks[major], major, work, { withoutRootUser: true }),
    ]),
  ]);
  const registry = await startRegistry({ mode: 'plain' });
  const targets: Record<string, FixtureArtifact> = {
    'aquasec/trivy-db:2': trivyArtifact('db', { layer: db }),
    'aquasec/trivy-java-db:1': trivyArtifact('java-db', { layer: javaDb }),
  };
  const refs = {
    db: `${registry.host}/aquasec/trivy-db:2`,
    javaDb: `${registry.host}/aquasec/trivy-java-db:1`,
    checks: {} as Partial<Record<'1' | '2', string>>,
    checksWithoutRootUser: {} as Partial<Record<'1' | '2', string>>,
  };
  majors.forEach((major, index) => {
    const version = VERSIONS.checks[major].version;
    targets[`aquasec/trivy-checks:${major}`] = trivyArtifact('checks', {
      layer: checks[index * 2],
      checksVersion: version,
    });
    targets[`noroot/trivy-checks:${major}`] = trivyArtifact('checks', {
      layer: checks[index * 2 + 1],
      checksVersion: version,
    });
    refs.checks[major] = `${registry.host}/aquasec/trivy-checks:${major}`;
    refs.checksWithoutRootUser[major] = `${registry.host}/noroot/trivy-checks:${major}`;
  });
  let vex: World['vex'] | undefined;
  let proxy: TestProxy | undefined;
  try {
    await seedRegistryWithSkopeo(registry, targets);
    vex =
      options.vexUpdateInterval === undefined
        ? await startVexRepositoryServer(buildVexRepository())
        : await startStaticVexServer(work, options.vexUpdateInterval);
    proxy = await startProxy({ hostMap: {} });
  } catch (error) {
    await vex?.close();
    await registry.stop();
    throw error;
  }
  const started = { vex, proxy };
  return {
    work,
    tools,
    registry,
    vex,
    proxy,
    refs,
    rootfs,
    project,
    home,
    dataHome,
    close: async () => {
      await started.proxy.close();
      await started.vex.close();
      await registry.stop();
      // TRIVY_AIRGAP_KEEP_WORK=1 keeps the caches and logs for a look after a failure.
      if (process.env.TRIVY_AIRGAP_KEEP_WORK !== '1') rmSync(work, { recursive: true, force: true });
    },
  };
}

export type { ProcessRun };

/** The environment of every process: loopback only, our HOME and XDG_DATA_HOME, no TRIVY_* leaking in. */
export function worldEnv(world: World, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: world.home,
    XDG_DATA_HOME: world.dataHome,
    XDG_CACHE_HOME: join(world.home, '.cache'),
    TMPDIR: world.work,
    TZ: 'UTC',
    HTTPS_PROXY: world.proxy.url,
    HTTP_PROXY: world.proxy.url,
    https_proxy: world.proxy.url,
    http_proxy: world.proxy.url,
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    ...extra,
  };
}

/** Runs the built trivy-airgap CLI (the VEX server lives in this process: never block it). */
export function runAirgap(
  world: World,
  args: readonly string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ProcessRun> {
  return runProcess(process.execPath, [CLI, ...args], {
    env: worldEnv(world, extraEnv),
    cwd: join(world.work, 'cwd'),
    killAfterMs: 120_000,
  });
}

/**
 * Trivy's own repository settings point at the loopback registry for every run (TRIVY_* env, which
 * a flag on the command line overrides): even an unintended download never leaves the machine.
 */
function loopbackSources(world: World): NodeJS.ProcessEnv {
  return {
    TRIVY_DB_REPOSITORY: world.refs.db,
    TRIVY_JAVA_DB_REPOSITORY: world.refs.javaDb,
    TRIVY_CHECKS_BUNDLE_REPOSITORY: world.refs.checks['2'] ?? world.refs.checks['1'],
    TRIVY_NO_PROGRESS: 'true',
  };
}

/** Runs a pinned real Trivy. */
export function runTrivy(
  world: World,
  version: string,
  args: readonly string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ProcessRun> {
  const binary = world.tools.trivy[version];
  if (binary === undefined) throw new Error(`Trivy ${version} is not pinned in versions.json`);
  return runProcess(binary, args, {
    env: worldEnv(world, { ...loopbackSources(world), ...extraEnv }),
    cwd: join(world.work, 'cwd'),
    killAfterMs: 180_000,
  });
}

/** Runs a POSIX shell script (to run a printed command line exactly as a user would paste it). */
export function runShell(
  world: World,
  script: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ProcessRun> {
  return runProcess('sh', ['-c', script], {
    env: worldEnv(world, { ...loopbackSources(world), ...extraEnv }),
    cwd: join(world.work, 'cwd'),
    killAfterMs: 180_000,
  });
}

/** Trivy's JSON report, parsed; fails with Trivy's stderr when the run did not succeed. */
export function reportOf(run: ProcessRun): TrivyReport {
  if (run.code !== 0) throw new Error(`trivy exited ${String(run.code)}:\n${run.stderr.slice(-4000)}`);
  return JSON.parse(run.stdout) as TrivyReport;
}

export interface TrivyReport {
  readonly Results?: readonly {
    readonly Target: string;
    readonly Vulnerabilities?: readonly { readonly VulnerabilityID: string; readonly PkgName: string }[];
    readonly Misconfigurations?: readonly {
      readonly ID: string;
      readonly AVDID?: string;
      readonly Status: string;
    }[];
  }[];
}

/** `PkgName CVE` of every vulnerability Trivy reported, sorted. */
export function vulnerabilities(report: TrivyReport): string[] {
  return (report.Results ?? [])
    .flatMap((result) => result.Vulnerabilities ?? [])
    .map((v) => `${v.PkgName} ${v.VulnerabilityID}`)
    .sort();
}

/** IDs (ID and AVDID) of every failed misconfiguration Trivy reported. */
export function failedChecks(report: TrivyReport): string[] {
  return (report.Results ?? [])
    .flatMap((result) => result.Misconfigurations ?? [])
    .filter((m) => m.Status === 'FAIL')
    .flatMap((m) => [m.ID, ...(m.AVDID === undefined ? [] : [m.AVDID])]);
}

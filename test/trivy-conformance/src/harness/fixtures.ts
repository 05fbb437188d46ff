import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { makeTarGz, makeZip, type VexRepositoryFixture } from '@trivy-airgap/test-utils';
import { FIXTURES_DIR, VERSIONS, type Toolchain } from './toolchain.js';

const run = promisify(execFile);

/**
 * What the tiny DBs hold and the rootfs carries: one Alpine package advisory and one Maven
 * advisory (the Java DB maps the probe jar's SHA-1 to the Maven coordinates). Every assertion
 * about Trivy's findings reads these values.
 */
export const PROBE = {
  alpineRelease: '3.22.1',
  os: {
    bucket: 'alpine 3.22',
    package: 'musl',
    installed: '1.2.4-r2',
    fixed: '1.2.5-r0',
    cve: 'CVE-2099-10001',
  },
  maven: {
    bucket: 'maven::GitHub Security Advisory Maven',
    groupId: 'org.example.airgap',
    artifactId: 'probe',
    version: '1.0.0',
    cve: 'CVE-2099-10002',
  },
  /** The Dockerfile check trivy-checks ships for "image runs as root". */
  rootUserCheck: { file: 'root_user.rego', ids: ['DS002', 'DS-0002', 'AVD-DS-0002'] },
  /** The DB build time (NextUpdate = +24 h, Java DB +72 h). */
  updatedAt: '2026-08-21T06:12:01.123456789Z',
} as const;

/** A tiny Alpine root filesystem with the vulnerable package and the probe jar. */
export function buildRootfs(dir: string): { jarSha1: string } {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'lib', 'apk', 'db'), { recursive: true });
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'alpine-release'), `${PROBE.alpineRelease}\n`);
  const { package: name, installed } = PROBE.os;
  writeFileSync(
    join(dir, 'lib', 'apk', 'db', 'installed'),
    `P:${name}\nV:${installed}\nA:x86_64\nS:1\nI:1\nT:the musl c library\nL:MIT\no:${name}\nt:1700000000\n\n`,
  );
  // No pom.properties and no manifest: Trivy can only identify it through the Java DB (SHA-1).
  const jar = makeZip([{ name: 'org/example/airgap/Probe.class', body: 'trivy-airgap probe' }]);
  writeFileSync(join(dir, 'app', `${PROBE.maven.artifactId}-${PROBE.maven.version}.jar`), jar);
  return { jarSha1: createHash('sha1').update(jar).digest('hex') };
}

/** A Dockerfile that runs as root (no USER): what the root-user check reports. */
export function buildDockerfileProject(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'Dockerfile'),
    'FROM alpine:3.22\nRUN echo probe > /probe\nCMD ["cat", "/probe"]\n',
  );
}

/** db.tar.gz (trivy.db + metadata.json) written by trivy-db's own Go package. */
export async function buildVulnDbLayer(tools: Toolchain, work: string): Promise<Buffer> {
  const spec = {
    OS: {
      Bucket: PROBE.os.bucket,
      Package: PROBE.os.package,
      CVE: PROBE.os.cve,
      FixedVersion: PROBE.os.fixed,
    },
    Maven: {
      Bucket: PROBE.maven.bucket,
      Package: `${PROBE.maven.groupId}:${PROBE.maven.artifactId}`,
      CVE: PROBE.maven.cve,
      VulnerableVersions: ['< 1.0.1'],
      PatchedVersions: ['1.0.1'],
    },
  };
  const out = join(work, 'vulndb');
  writeFileSync(join(work, 'vulndb-spec.json'), JSON.stringify(spec));
  await run(tools.vulndb, [
    '-out',
    out,
    '-updated-at',
    PROBE.updatedAt,
    '-spec',
    join(work, 'vulndb-spec.json'),
  ]);
  return readFileSync(join(out, 'db.tar.gz'));
}

/** javadb.tar.gz (trivy-java.db + metadata.json): SQLite with trivy-java-db's schema. */
export async function buildJavaDbLayer(work: string, jarSha1: string): Promise<Buffer> {
  const next = new Date(Date.parse(PROBE.updatedAt) + 72 * 3600_000)
    .toISOString()
    .replace('.123Z', '.123456789Z');
  const spec = {
    GroupID: PROBE.maven.groupId,
    ArtifactID: PROBE.maven.artifactId,
    Version: PROBE.maven.version,
    SHA1: jarSha1,
    UpdatedAt: PROBE.updatedAt,
    NextUpdate: next,
  };
  const out = join(work, 'javadb');
  writeFileSync(join(work, 'javadb-spec.json'), JSON.stringify(spec));
  await run('python3', [join(FIXTURES_DIR, 'java_db.py'), out, join(work, 'javadb-spec.json')]);
  return readFileSync(join(out, 'javadb.tar.gz'));
}

function walkFiles(root: string, dir = root): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walkFiles(root, path));
    else if (entry.isFile()) found.push(relative(root, path));
  }
  return found.sort();
}

/** trivy-checks internal/bundler (v2): source dir → bundle dir, and its file filters. */
const V2_JOBS: readonly [string, string][] = [
  ['checks/kubernetes', 'policies/kubernetes/policies'],
  ['checks/cloud', 'policies/cloud/policies'],
  ['checks/docker', 'policies/docker/policies'],
  ['lib/kubernetes', 'policies/kubernetes/lib'],
  ['lib/cloud', 'policies/cloud/lib'],
  ['lib/docker', 'policies/docker/lib'],
  ['lib/test', 'policies/test/lib'],
  ['commands/kubernetes', 'commands/kubernetes'],
  ['commands/config', 'commands/config'],
  ['pkg/compliance', 'specs/compliance'],
];

function v2Keeps(path: string): boolean {
  if (path.startsWith('checks') && !path.endsWith('.rego')) return false;
  if (path.endsWith('.go') || path.endsWith('.md')) return false;
  return !path.endsWith('_test.rego');
}

/** trivy-checks cmd/bundle/bundle.sh (v1): rsync excludes per source dir. */
function v1Keeps(job: string, path: string): boolean {
  const base = path.split('/').pop() ?? '';
  if (job.startsWith('checks/')) {
    if (base === 'README.md' || base.endsWith('_test.rego')) return false;
    if (/\.(go|yml|yaml)$/.test(base)) return false;
    return !/(^|\/)(compliance|test)\//.test(path.slice(job.length + 1));
  }
  if (job.startsWith('lib/')) return !base.endsWith('_test.rego') && !base.endsWith('.go');
  if (job === 'pkg/compliance') return !base.endsWith('.go') && !base.endsWith('.md');
  return true;
}

const V1_JOBS: readonly [string, string][] = [
  ['checks/kubernetes', 'policies/kubernetes/policies'],
  ['checks/cloud', 'policies/cloud/policies'],
  ['checks/docker', 'policies/docker/policies'],
  ['lib/kubernetes', 'policies/kubernetes/lib'],
  ['lib/docker', 'policies/docker/lib'],
  ['lib/cloud', 'policies/cloud/lib'],
  ['lib/test', 'policies/test/lib'],
  ['commands/kubernetes', 'commands/kubernetes'],
  ['commands/config', 'commands/config'],
  ['pkg/compliance', 'specs/compliance'],
];

/**
 * The real checks bundle built from the trivy-checks sources Trivy pins, packed the way upstream
 * packs that major: v2 like internal/bundler (files only, no directory entries, no .manifest), v1
 * like cmd/bundle/bundle.sh (`tar -C bundle -czf … .`: `./` entries, directories, `.manifest`).
 * `withoutRootUser` leaves out the root-user Dockerfile check, to tell our bundle from Trivy's
 * embedded checks.
 */
export async function buildChecksLayer(
  moduleDir: string,
  major: '1' | '2',
  work: string,
  options: { withoutRootUser?: boolean } = {},
): Promise<Buffer> {
  const { layout, version } = VERSIONS.checks[major];
  const stage = join(work, `checks-${major}${options.withoutRootUser === true ? '-noroot' : ''}`);
  const files: string[] = [];
  for (const [from, to] of layout === 'v2' ? V2_JOBS : V1_JOBS) {
    let sources: string[];
    try {
      sources = statSync(join(moduleDir, from)).isDirectory() ? walkFiles(join(moduleDir, from)) : [];
    } catch {
      continue;
    }
    for (const file of sources) {
      const sourcePath = `${from}/${file}`;
      if (!(layout === 'v2' ? v2Keeps(sourcePath) : v1Keeps(from, sourcePath))) continue;
      if (options.withoutRootUser === true && file.endsWith(PROBE.rootUserCheck.file)) continue;
      const target = `${to}/${file}`;
      mkdirSync(join(stage, target, '..'), { recursive: true });
      cpSync(join(moduleDir, sourcePath), join(stage, target));
      files.push(target);
    }
  }
  const out = `${stage}.tar.gz`;
  if (layout === 'v1') {
    writeFileSync(join(stage, '.manifest'), `{\n  "revision" : "${version}",\n  "roots": [""]\n}\n`);
    await run('tar', ['-C', stage, '-czf', out, '.']);
  } else {
    writeFileSync(join(work, 'checks-files.txt'), `${files.join('\n')}\n`);
    await run('tar', ['-C', stage, '-czf', out, '--no-recursion', '-T', join(work, 'checks-files.txt')]);
  }
  return readFileSync(out);
}

/**
 * A VEX repository (vex-repo-spec 0.1) whose OpenVEX document marks the OS CVE not_affected for
 * the probe package. index.json is written the way Trivy's own test fixture is: `ID`/`Location`
 * keys, no `updated_at` (Go reads JSON keys case-insensitively and does not require it).
 */
export function buildVexRepository(): VexRepositoryFixture {
  const purl = `pkg:apk/alpine/${PROBE.os.package}`;
  const location = `pkg/apk/alpine/${PROBE.os.package}/vex.openvex.json`;
  const document = {
    '@context': 'https://openvex.dev/ns/v0.2.0',
    '@id': 'https://trivy-airgap.invalid/vex/probe',
    author: 'trivy-airgap conformance suite',
    timestamp: '2026-08-21T06:12:01Z',
    version: 1,
    statements: [
      {
        vulnerability: { name: PROBE.os.cve },
        products: [{ '@id': purl }],
        status: 'not_affected',
        justification: 'vulnerable_code_not_in_execute_path',
      },
    ],
  };
  const files = new Map<string, Buffer>([
    ['index.json', Buffer.from(JSON.stringify({ Packages: [{ ID: purl, Location: location }] }))],
    [location, Buffer.from(JSON.stringify(document))],
  ]);
  const subdir = 'vex-main';
  const archive = makeTarGz([...files].map(([name, body]) => ({ name: `${subdir}/${name}`, body })));
  return { archive, files, subdir };
}

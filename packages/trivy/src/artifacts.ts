import { isDigest, type Descriptor, type OciComponentKind } from '@trivy-airgap/format';
import { TrivyError } from './errors.js';

/** The three OCI artifacts Trivy downloads (trivy-facts.md: "The three OCI artifacts"). */
export type ArtifactKind = OciComponentKind;
export const ARTIFACT_KINDS: readonly ArtifactKind[] = ['db', 'java-db', 'checks'];

export const TITLE_ANNOTATION = 'org.opencontainers.image.title';
export const VERSION_ANNOTATION = 'org.opencontainers.image.version';
export const CREATED_ANNOTATION = 'org.opencontainers.image.created';

export interface ArtifactFacts {
  readonly kind: ArtifactKind;
  /** The exact layer mediaType Trivy requires. */
  readonly layerMediaType: string;
  /** The `org.opencontainers.image.title` of the layer as published. */
  readonly title: string;
  /** Directory under the cache dir that Trivy wipes and refills for this artifact. */
  readonly cacheDir: 'db' | 'java-db' | 'policy';
  /** Files (relative to the cache dir) Trivy reads; for checks `policy/content` is a directory. */
  readonly cachePaths: readonly string[];
  /** Name of the database file at the root of the layer (absent for checks). */
  readonly databaseFile?: string;
  /** DB schema (db 2, java-db 1) or bundle major version (checks 2). */
  readonly schemaVersion: number;
  /** The tag Trivy appends to a tagless repository (`:latest` for checks!). */
  readonly taglessTag: string;
  /** The Trivy flag that lists repositories for this artifact. */
  readonly repositoryFlag: string;
  /** The Trivy flag that makes an offline host use the cache as is. */
  readonly skipUpdateFlag: string;
}

export const ARTIFACTS: Readonly<Record<ArtifactKind, ArtifactFacts>> = {
  db: {
    kind: 'db',
    layerMediaType: 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip',
    title: 'db.tar.gz',
    cacheDir: 'db',
    cachePaths: ['db/trivy.db', 'db/metadata.json'],
    databaseFile: 'trivy.db',
    schemaVersion: 2,
    taglessTag: '2',
    repositoryFlag: '--db-repository',
    skipUpdateFlag: '--skip-db-update',
  },
  'java-db': {
    kind: 'java-db',
    layerMediaType: 'application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip',
    title: 'javadb.tar.gz',
    cacheDir: 'java-db',
    cachePaths: ['java-db/trivy-java.db', 'java-db/metadata.json'],
    databaseFile: 'trivy-java.db',
    schemaVersion: 1,
    taglessTag: '1',
    repositoryFlag: '--java-db-repository',
    skipUpdateFlag: '--skip-java-db-update',
  },
  checks: {
    kind: 'checks',
    layerMediaType: 'application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip',
    title: 'bundle.tar.gz',
    cacheDir: 'policy',
    cachePaths: ['policy/content', 'policy/metadata.json'],
    schemaVersion: 2,
    taglessTag: 'latest',
    repositoryFlag: '--checks-bundle-repository',
    skipUpdateFlag: '--skip-check-update',
  },
};

/** VEX Hub, Trivy's default VEX repository (the entry Trivy writes into a new repository.yaml). */
export const DEFAULT_VEX_REPOSITORY = {
  name: 'default',
  url: 'https://github.com/aquasecurity/vexhub',
} as const;

/** Repositories per artifact, in Trivy's order (fallback order), for one range of Trivy releases. */
export interface DefaultSources {
  /**
   * The Trivy releases this choice targets, as a semver range (`>=0.69.0`, `>=0.58.0 <0.63.0`, …).
   * Ranges break at every release where a default source OR an offline flag changed, so the
   * lowest release of the range tells which flags all of them accept (`trivyCapabilities`).
   */
  readonly trivyVersions: string;
  readonly db: readonly string[];
  readonly 'java-db': readonly string[];
  readonly checks: readonly string[];
  /** Empty before Trivy 0.54, which reads VEX only from files (`--vex PATH`), never from repositories. */
  readonly vex: readonly { readonly name: string; readonly url: string }[];
}

/** A Trivy release as `major.minor.patch` (pre-release and build suffixes are ignored). */
export interface TrivyVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

const VERSION_PATTERN = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?$/;

/** `0.57.1`, `v0.57`, `0.58.0-rc1` → a TrivyVersion; anything else is TRIVY_VERSION_INVALID. */
export function parseTrivyVersion(value: string): TrivyVersion {
  const match = VERSION_PATTERN.exec(value.trim());
  if (match === null) {
    throw new TrivyError('TRIVY_VERSION_INVALID', `not a Trivy version: ${JSON.stringify(value)}`, {
      hint: 'give it as X.Y.Z, e.g. --trivy-version 0.57.1 (see `trivy --version`)',
    });
  }
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

function compareVersions(a: TrivyVersion, b: TrivyVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** True when `version` is `0.<minor>.0` or later. */
export function trivyAtLeast(version: TrivyVersion, minor: number): boolean {
  return compareVersions(version, { major: 0, minor, patch: 0 }) >= 0;
}

/** The oldest release we know anything about: what an open lower end of a range means. */
const OLDEST: TrivyVersion = { major: 0, minor: 0, patch: 0 };

/**
 * The lowest Trivy release a target names: the release itself (`0.57.1`), or the lower bound of a
 * range as bundle manifests record it (`>=0.58.0 <0.63.0` → 0.58.0; `<0.51.0` → the oldest).
 * Flags computed for it are accepted by every release of the range, since Trivy only adds them.
 */
export function lowestTrivyVersion(target: string): TrivyVersion {
  const clauses = target.trim().split(/\s+/);
  if (clauses.length === 1 && !/^[<>=]/.test(clauses[0] ?? '')) return parseTrivyVersion(target);
  let lowest = OLDEST;
  for (const clause of clauses) {
    const match = /^(>=|>|<=|<|=)?(.+)$/.exec(clause);
    const operator = match?.[1];
    const version = parseTrivyVersion(match?.[2] ?? clause);
    if (operator === undefined || operator === '=' || operator === '>=' || operator === '>') {
      if (compareVersions(version, lowest) > 0) lowest = version;
    }
  }
  return lowest;
}

const GHCR_DB = 'ghcr.io/aquasecurity/trivy-db:2';
const GHCR_JAVA_DB = 'ghcr.io/aquasecurity/trivy-java-db:1';
const MIRROR_DB = 'mirror.gcr.io/aquasec/trivy-db:2';
const MIRROR_JAVA_DB = 'mirror.gcr.io/aquasec/trivy-java-db:1';

/**
 * Trivy's defaults by release, newest first: `from` is the first release of each row. Rows break
 * where a default source changed (trivy-facts.md: checks tag history; ghcr.io-only DBs before
 * 0.58; trivy-policies before 0.51) and where an offline flag appeared (0.51 --skip-check-update,
 * 0.54 VEX repositories, 0.63 --skip-version-check/--disable-telemetry; see flags.ts).
 */
const RELEASE_DEFAULTS: readonly {
  readonly from: number;
  readonly mirrors: boolean;
  readonly checks: string;
  readonly vex: boolean;
}[] = [
  { from: 69, mirrors: true, checks: 'mirror.gcr.io/aquasec/trivy-checks:2', vex: true },
  { from: 63, mirrors: true, checks: 'mirror.gcr.io/aquasec/trivy-checks:1', vex: true },
  { from: 58, mirrors: true, checks: 'mirror.gcr.io/aquasec/trivy-checks:1', vex: true },
  { from: 56, mirrors: false, checks: 'ghcr.io/aquasecurity/trivy-checks:1', vex: true },
  { from: 54, mirrors: false, checks: 'ghcr.io/aquasecurity/trivy-checks:0', vex: true },
  { from: 51, mirrors: false, checks: 'ghcr.io/aquasecurity/trivy-checks:0', vex: false },
  { from: 0, mirrors: false, checks: 'ghcr.io/aquasecurity/trivy-policies:0', vex: false },
];

/**
 * The repositories Trivy of a given release pulls from. Without a version: the latest behaviour.
 */
export function defaultSources(trivyVersion?: string): DefaultSources {
  const version = trivyVersion === undefined ? undefined : parseTrivyVersion(trivyVersion);
  const index =
    version === undefined ? 0 : RELEASE_DEFAULTS.findIndex((row) => trivyAtLeast(version, row.from));
  // The last row starts at 0.0.0, so findIndex always finds one.
  const row = RELEASE_DEFAULTS[index] ?? { from: 0, mirrors: false, checks: '', vex: false };
  const upper = index > 0 ? RELEASE_DEFAULTS[index - 1]?.from : undefined;
  const lower = row.from === 0 ? undefined : `>=0.${row.from}.0`;
  const trivyVersions = [lower, upper === undefined ? undefined : `<0.${upper}.0`]
    .filter((part) => part !== undefined)
    .join(' ');
  return {
    trivyVersions,
    db: row.mirrors ? [MIRROR_DB, GHCR_DB] : [GHCR_DB],
    'java-db': row.mirrors ? [MIRROR_JAVA_DB, GHCR_JAVA_DB] : [GHCR_JAVA_DB],
    checks: [row.checks],
    vex: row.vex ? [{ ...DEFAULT_VEX_REPOSITORY }] : [],
  };
}

/**
 * Trivy's tag rule for a repository flag: a reference without tag or digest gets `:2` (db),
 * `:1` (java-db) or `:latest` (checks). A colon in the registry host (`localhost:5000/x`) is not
 * a tag — except for the DBs in Trivy 0.50 and older, which appended the schema tag only when the
 * string had no `:` at all, so `host:5000/trivy-db` meant `:latest` there (pass `trivyVersion`).
 */
export function normalizeRepository(kind: ArtifactKind, ref: string, trivyVersion?: string): string {
  const trimmed = ref.trim();
  if (trimmed === '' || /\s/.test(trimmed)) {
    throw new TrivyError('REPOSITORY_INVALID', `not a repository reference: ${JSON.stringify(ref)}`);
  }
  if (trimmed.includes('@')) return trimmed;
  const lastSlash = trimmed.lastIndexOf('/');
  const lastSegment = trimmed.slice(lastSlash + 1);
  if (lastSegment.includes(':')) return trimmed;
  const legacyTagRule =
    kind !== 'checks' && trivyVersion !== undefined && !trivyAtLeast(lowestTrivyVersion(trivyVersion), 51);
  if (legacyTagRule && trimmed.includes(':')) return `${trimmed}:latest`;
  return `${trimmed}:${ARTIFACTS[kind].taglessTag}`;
}

/** What `checkArtifactManifest` found: the one layer and what Trivy (and we) read from the manifest. */
export interface CheckedArtifact {
  readonly layer: Descriptor;
  /** The layer's `org.opencontainers.image.title` (`db.tar.gz`, …). */
  readonly title: string;
  /** The manifest's annotations (empty when there are none). */
  readonly annotations: Readonly<Record<string, string>>;
  /** `org.opencontainers.image.version` of the manifest, when present (checks bundles carry it). */
  readonly version?: string;
}

function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function stringMap(value: unknown): Record<string, string> {
  const object = objectOf(value);
  const out: Record<string, string> = {};
  if (object === undefined) return out;
  for (const [key, entry] of Object.entries(object)) if (typeof entry === 'string') out[key] = entry;
  return out;
}

/**
 * Checks an OCI image manifest the way Trivy checks a downloaded artifact: exactly one layer, the
 * exact layer mediaType for the kind, and a title annotation on the layer (trivy-facts.md). The
 * config and artifactType are ignored, as Trivy ignores them.
 */
export function checkArtifactManifest(
  kind: ArtifactKind,
  manifestBytes: Uint8Array | string,
): CheckedArtifact {
  const facts = ARTIFACTS[kind];
  let parsed: unknown;
  try {
    const text =
      typeof manifestBytes === 'string'
        ? manifestBytes
        : Buffer.from(manifestBytes.buffer, manifestBytes.byteOffset, manifestBytes.byteLength).toString(
            'utf8',
          );
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TrivyError('ARTIFACT_MANIFEST_INVALID', `${kind}: the OCI manifest is not JSON`, {
      cause: error,
      context: { kind },
    });
  }
  const manifest = objectOf(parsed);
  if (manifest === undefined) {
    throw new TrivyError('ARTIFACT_MANIFEST_INVALID', `${kind}: the OCI manifest is not a JSON object`, {
      context: { kind },
    });
  }
  const layers = manifest.layers;
  if (!Array.isArray(layers) || layers.length !== 1) {
    const found = Array.isArray(layers) ? layers.length : 0;
    throw new TrivyError(
      'ARTIFACT_LAYER_COUNT',
      `${kind}: Trivy requires exactly one layer, the manifest has ${found}`,
      { context: { kind, expected: 1, found } },
    );
  }
  const layer = objectOf(layers[0]);
  const digest = layer?.digest;
  const size = layer?.size;
  if (
    layer === undefined ||
    !isDigest(digest) ||
    typeof size !== 'number' ||
    !Number.isSafeInteger(size) ||
    size < 0
  ) {
    throw new TrivyError(
      'ARTIFACT_MANIFEST_INVALID',
      `${kind}: the layer descriptor needs a sha256 digest and a non-negative integer size`,
      { context: { kind } },
    );
  }
  if (layer.mediaType !== facts.layerMediaType) {
    const found = typeof layer.mediaType === 'string' ? layer.mediaType : String(layer.mediaType);
    throw new TrivyError(
      'ARTIFACT_MEDIA_TYPE',
      `${kind}: the layer mediaType is ${JSON.stringify(found)}, Trivy requires ${facts.layerMediaType}`,
      { context: { kind, expected: facts.layerMediaType, found } },
    );
  }
  const title = stringMap(layer.annotations)[TITLE_ANNOTATION];
  if (title === undefined || title === '') {
    throw new TrivyError(
      'ARTIFACT_TITLE_MISSING',
      `${kind}: the layer has no ${TITLE_ANNOTATION} annotation, which Trivy needs to name and unpack the file`,
      { context: { kind, expected: facts.title } },
    );
  }
  const annotations = stringMap(manifest.annotations);
  const version = annotations[VERSION_ANNOTATION];
  return {
    layer: { mediaType: facts.layerMediaType, digest, size },
    title,
    annotations,
    ...(version === undefined ? {} : { version }),
  };
}

/** `MajorVersion` / `CustomBuild` of policy/metadata.json, as Trivy derives them. */
export interface ChecksVersionInfo {
  readonly MajorVersion: number;
  readonly CustomBuild?: true;
}

// Semantic version as Trivy parses the annotation (an optional leading "v" is tolerated).
const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/**
 * The checks bundle's `org.opencontainers.image.version` → policy metadata fields
 * (trivy-facts.md: semver major becomes MajorVersion; missing or not semver → MajorVersion 0 +
 * CustomBuild true).
 */
export function checksMajorVersion(annotation: string | undefined): ChecksVersionInfo {
  const match = annotation === undefined ? null : SEMVER.exec(annotation);
  if (match === null) return { MajorVersion: 0, CustomBuild: true };
  return { MajorVersion: Number(match[1]) };
}

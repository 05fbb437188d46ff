import { isDigest, type Descriptor } from '@trivy-airgap/format';
import { TrivyError } from './errors.js';
import {
  ARTIFACTS,
  ARTIFACT_KINDS,
  COMPONENTS,
  COMPONENT_KINDS,
  SCAN_SETTINGS,
  type ArtifactKind,
} from './components.js';
import {
  forRelease,
  lowestTrivyVersion,
  parseTrivyVersion,
  trivyAtLeast,
  type ByRelease,
} from './versions.js';

export {
  ARTIFACTS,
  ARTIFACT_KINDS,
  DEFAULT_VEX_REPOSITORY,
  type ArtifactFacts,
  type ArtifactKind,
} from './components.js';
export { lowestTrivyVersion, parseTrivyVersion, trivyAtLeast, type TrivyVersion } from './versions.js';

export const TITLE_ANNOTATION = 'org.opencontainers.image.title';
export const VERSION_ANNOTATION = 'org.opencontainers.image.version';
export const CREATED_ANNOTATION = 'org.opencontainers.image.created';

/** Repositories per artifact, in Trivy's order (fallback order), for one range of Trivy releases. */
export type DefaultSources = {
  readonly [K in ArtifactKind]: readonly string[];
} & {
  /**
   * The Trivy releases this choice targets, as a semver range (`>=0.69.0`, `>=0.58.0 <0.63.0`, …).
   * Ranges break at every release where a default source OR an offline flag changed, so the
   * lowest release of the range tells which flags all of them accept (`trivyCapabilities`).
   */
  readonly trivyVersions: string;
  /** Empty before Trivy 0.54, which reads VEX only from files (`--vex PATH`), never from repositories. */
  readonly vex: readonly { readonly name: string; readonly url: string }[];
};

/**
 * Every release where something in the component table changed (a default source, an offline
 * flag, a repository option), newest first: the bounds of the `trivyVersions` ranges.
 */
function releaseBoundaries(): number[] {
  const tables: ByRelease<unknown>[] = [SCAN_SETTINGS.phoneHome];
  for (const kind of COMPONENT_KINDS) {
    const facts = COMPONENTS[kind];
    tables.push(facts.repositories, facts.offline);
    if (!facts.perRepository) tables.push(facts.repositoryOption);
  }
  const froms = new Set(tables.flatMap((rows) => rows.map((row) => row.from)));
  return [...froms].sort((a, b) => b - a);
}

/**
 * The repositories Trivy of a given release pulls from (the component table's rows for it), and
 * the range of releases that share this choice. Without a version: the latest behaviour.
 */
export function defaultSources(trivyVersion?: string): DefaultSources {
  const version = trivyVersion === undefined ? undefined : parseTrivyVersion(trivyVersion);
  const boundaries = releaseBoundaries();
  const index = version === undefined ? 0 : boundaries.findIndex((from) => trivyAtLeast(version, from));
  const from = boundaries[index] ?? 0;
  const upper = index > 0 ? boundaries[index - 1] : undefined;
  const lower = from === 0 ? undefined : `>=0.${from}.0`;
  const trivyVersions = [lower, upper === undefined ? undefined : `<0.${upper}.0`]
    .filter((part) => part !== undefined)
    .join(' ');
  // Every release of the range shares the rows of its lowest release.
  const lowest = { major: 0, minor: from, patch: 0 };
  const artifacts = Object.fromEntries(
    ARTIFACT_KINDS.map((kind) => [kind, forRelease(ARTIFACTS[kind].repositories, lowest)]),
  ) as Record<ArtifactKind, readonly string[]>;
  return {
    trivyVersions,
    ...artifacts,
    vex: forRelease(COMPONENTS.vex.repositories, lowest).map((repository) => ({ ...repository })),
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
  const legacyBefore = ARTIFACTS[kind].legacyTagRuleBefore;
  const legacyTagRule =
    legacyBefore !== undefined &&
    trivyVersion !== undefined &&
    !trivyAtLeast(lowestTrivyVersion(trivyVersion), legacyBefore);
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

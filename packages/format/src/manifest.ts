import { isDigest, type Digest } from './digest.js';
import { FormatError, type FieldIssue } from './errors.js';
import { bundlePathProblem, pathSegmentProblem } from './safe-path.js';

/**
 * Bundle manifest v1: the signed root of trust of a transfer bundle (docs/bundle-format.md).
 * It names every component and every other file of the tar with its size and digest.
 */
export const MANIFEST_MEDIA_TYPE = 'application/vnd.trivy-airgap.manifest.v1+json';
const MEDIA_TYPE_PATTERN = /^application\/vnd\.trivy-airgap\.manifest\.v(\d+)\+json$/;

/** Tar entry names of the two leading entries; everything else is listed in `files`. */
export const MANIFEST_PATH = 'manifest.json';
export const SIGNATURE_PATH = 'manifest.json.sig';

/** A manifest larger than this is refused before parsing (it is a few KiB in practice). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/**
 * Entries a bundle may list. The exporter writes about a dozen (the OCI layout with three
 * artifacts, two files per VEX repository); the cap bounds what a reader hashes and what
 * `import --to-registry` copies into its work dir.
 */
export const MAX_BUNDLE_FILES = 4096;

export type SignatureAlgorithm = 'ecdsa-p256-sha256' | 'ed25519';
export const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = ['ecdsa-p256-sha256', 'ed25519'];

/**
 * THE list of component kinds: the names a manifest may carry, in bundle order. Everything else
 * about a kind is a row of @trivy-airgap/trivy's component table, keyed by these names; adding a
 * kind is a name here, a row there, and (only if it is fetched or installed differently from the
 * kinds before it) its steps.
 */
export const OCI_COMPONENT_KINDS = ['db', 'java-db', 'checks'] as const;
export type OciComponentKind = (typeof OCI_COMPONENT_KINDS)[number];
export const COMPONENT_KINDS = [...OCI_COMPONENT_KINDS, 'vex'] as const;
export type ComponentKind = (typeof COMPONENT_KINDS)[number];

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
}

/** The fields of an upstream `metadata.json` (vulnerability DB and Java DB), as published. */
export interface UpstreamDbMetadata {
  /** Schema version; Trivy omits it when 0. */
  readonly Version?: number;
  readonly NextUpdate: string;
  readonly UpdatedAt: string;
  readonly DownloadedAt: string;
}

export interface OciComponent {
  readonly kind: OciComponentKind;
  /** The reference that was asked for, e.g. `mirror.gcr.io/aquasec/trivy-db:2`. */
  readonly source: string;
  /** The reference that actually served it (a later mirror when the first one failed). */
  readonly servedBy: string;
  /** The tag it is published under (`2`, `1`, …); pushes to an internal registry reuse it. */
  readonly tag: string;
  /** `org.opencontainers.image.ref.name` of the manifest in the bundle's OCI layout. */
  readonly layoutRef: string;
  readonly manifest: Descriptor;
  readonly layer: Descriptor & { readonly title: string };
  /** Annotations of the OCI manifest as published. */
  readonly annotations: Readonly<Record<string, string>>;
  /**
   * Upstream metadata.json of a DB layer, recorded by earlier exporters (they inflated every
   * layer to read it). Optional: the importer reads metadata.json from the layer itself, and when
   * this is present the layer's must equal it. Never present for checks.
   */
  readonly metadata?: UpstreamDbMetadata;
  /** `org.opencontainers.image.version` of the checks bundle (absent for DBs). */
  readonly version?: string;
}

export interface VexComponent {
  readonly kind: 'vex';
  /** Repository name as it goes into repository.yaml and `vex/repositories/<name>/`. */
  readonly name: string;
  /** Repository URL as configured (`https://github.com/aquasecurity/vexhub`). */
  readonly url: string;
  /** Bundle path of the repository manifest bytes (vex-repository.json) as fetched. */
  readonly manifestPath: string;
  /** The parsed repository manifest (vex-repo-spec), for inspection without reading the file. */
  readonly repositoryManifest: unknown;
  /** Spec version of the location that was used (`0.1`). */
  readonly specVersion: string;
  /** The location URL as the manifest lists it, including any `//subdir`. */
  readonly location: string;
  /** The URL that finally served the archive (after redirects). */
  readonly servedBy: string;
  /** Bundle path of the archive bytes as fetched. */
  readonly archivePath: string;
  readonly archiveType: 'tar.gz' | 'zip';
  /** Sub directory inside the archive that holds index.json ('' for the archive root). */
  readonly subdir: string;
  /** ETag the server sent for the archive, if any (goes into Trivy's cache.json). */
  readonly etag?: string;
  /** `updated_at` of the repository's index.json. */
  readonly updatedAt?: string;
}

export type Component = OciComponent | VexComponent;

export interface BundleFile {
  readonly path: string;
  readonly size: number;
  readonly digest: Digest;
}

export interface BundleManifest {
  readonly mediaType: typeof MANIFEST_MEDIA_TYPE;
  /** Random id (UUID) of this bundle. */
  readonly bundleId: string;
  /** RFC 3339 timestamps. */
  readonly created: string;
  readonly expires: string;
  readonly tool: { readonly name: string; readonly version: string };
  /** Who signed manifest.json; null for a bundle exported with --unsigned. */
  readonly signer: { readonly keyId: string; readonly algorithm: SignatureAlgorithm } | null;
  /** The Trivy releases the content targets, as a semver range (`>=0.69.0`). */
  readonly trivyVersions: string;
  readonly components: readonly Component[];
  /** Every tar entry other than manifest.json and manifest.json.sig, sorted by path. */
  readonly files: readonly BundleFile[];
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const KEY_ID = /^[0-9a-f]{64}$/;
const VEX_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The exporter writes a UUID; any plain token is fine (it becomes part of generation names). */
const BUNDLE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** OCI distribution tag grammar: it becomes part of a registry URL path on `--to-registry`. */
const OCI_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** OCI image-layout `org.opencontainers.image.ref.name` grammar (component ("/" component)*). */
const OCI_REF_NAME =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;
/**
 * A subdir segment also becomes part of a URL (`location//subdir`, the served VEX location):
 * no `?`, `#`, `%` or spaces, which URL parsing would move or decode.
 */
const SUBDIR_SEGMENT = /^[A-Za-z0-9._~+@=,-]+$/;
/** Bundle paths under this prefix belong to the OCI image layout; VEX entries live elsewhere. */
const OCI_LAYOUT_PREFIX = 'oci/';
/** Layout files every OCI component shares; no component may claim them as its own entry. */
const OCI_LAYOUT_FILES = ['oci/index.json', 'oci/oci-layout'] as const;
/**
 * Control characters (C0, DEL, C1), line/paragraph separators and bidi overrides: a manifest
 * string may be printed to a terminal or written into a file, and must not forge either.
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
/** No manifest string needs more (URLs, references, annotations are far shorter). */
const MAX_STRING_BYTES = 8192;

export function isRfc3339(value: unknown): value is string {
  return typeof value === 'string' && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** A plain local repository name: what may safely become `vex/repositories/<name>/`. */
export function isVexRepositoryName(value: unknown): value is string {
  return typeof value === 'string' && VEX_NAME.test(value) && value !== '..' && value !== '.';
}

/** Collects every problem of an untrusted document instead of stopping at the first. */
class FieldChecker {
  readonly issues: FieldIssue[] = [];

  fail(field: string, problem: string): void {
    this.issues.push({ field, problem });
  }

  object(value: unknown, field: string): Record<string, unknown> | undefined {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return value as Record<string, unknown>;
    }
    this.fail(field, 'must be an object');
    return undefined;
  }

  array(value: unknown, field: string): unknown[] | undefined {
    if (Array.isArray(value)) return value as unknown[];
    this.fail(field, 'must be an array');
    return undefined;
  }

  string(value: unknown, field: string, rule?: (s: string) => string | undefined): string {
    if (typeof value !== 'string' || value.length === 0) {
      this.fail(field, 'must be a non-empty string');
      return '';
    }
    const problem = textProblem(value) ?? rule?.(value);
    if (problem !== undefined) this.fail(field, problem);
    return value;
  }

  optionalString(
    value: unknown,
    field: string,
    rule?: (s: string) => string | undefined,
  ): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      this.fail(field, 'must be a string when present');
      return undefined;
    }
    const problem = textProblem(value) ?? rule?.(value);
    if (problem !== undefined) this.fail(field, problem);
    return value;
  }

  size(value: unknown, field: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      this.fail(field, 'must be a non-negative integer');
      return 0;
    }
    return value;
  }

  digest(value: unknown, field: string): Digest {
    if (!isDigest(value)) this.fail(field, 'must be "sha256:" followed by 64 lowercase hex characters');
    return value as Digest;
  }

  timestamp(value: unknown, field: string): string {
    if (!isRfc3339(value)) this.fail(field, 'must be an RFC 3339 timestamp');
    return value as string;
  }

  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
    if (!allowed.includes(value as T)) this.fail(field, `must be one of ${allowed.join(', ')}`);
    return value as T;
  }

  stringMap(value: unknown, field: string): Record<string, string> {
    const object = this.object(value, field);
    if (object === undefined) return {};
    for (const [key, entry] of Object.entries(object)) {
      const problem =
        typeof entry !== 'string' ? 'must be a string' : (textProblem(key) ?? textProblem(entry));
      if (problem !== undefined) this.fail(`${field}.${JSON.stringify(key.slice(0, 100))}`, problem);
    }
    return object as Record<string, string>;
  }
}

/** Why a manifest string cannot be used at all (unprintable, oversized), or undefined. */
function textProblem(value: string): string | undefined {
  if (UNPRINTABLE.test(value)) return 'contains a control, line-separator or bidi character';
  if (Buffer.byteLength(value, 'utf8') > MAX_STRING_BYTES) return `is longer than ${MAX_STRING_BYTES} bytes`;
  return undefined;
}

function pathRule(path: string): string | undefined {
  const problem = bundlePathProblem(path);
  if (problem !== undefined) return `is not a safe bundle path: ${problem}`;
  if (path === MANIFEST_PATH || path === SIGNATURE_PATH) return 'names a reserved entry';
  return undefined;
}

/** VEX entries: safe bundle paths outside the OCI layout (whose paths are blobs and layout files). */
function vexPathRule(path: string): string | undefined {
  return (
    pathRule(path) ??
    (path.startsWith(OCI_LAYOUT_PREFIX)
      ? `may not lie under ${OCI_LAYOUT_PREFIX} (the OCI layout)`
      : undefined)
  );
}

/** A single file or directory name (it is joined onto a directory by importers). */
function segmentRule(name: string): string | undefined {
  const problem = pathSegmentProblem(name);
  return problem === undefined ? undefined : `must be a single safe name: ${problem}`;
}

function subdirRule(subdir: string): string | undefined {
  if (subdir === '') return undefined;
  const problem = bundlePathProblem(subdir);
  if (problem !== undefined) return `must be empty or a relative normalized path: ${problem}`;
  if (!subdir.split('/').every((segment) => SUBDIR_SEGMENT.test(segment))) {
    return 'may only hold letters, digits and . _ ~ + @ = , - between slashes';
  }
  return undefined;
}

function httpUrlRule(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? undefined : 'must be an http(s) URL';
  } catch {
    return 'must be an http(s) URL';
  }
}

const patternRule =
  (pattern: RegExp, problem: string) =>
  (value: string): string | undefined =>
    pattern.test(value) ? undefined : problem;

function checkDescriptor(check: FieldChecker, value: unknown, field: string): Descriptor {
  const object = check.object(value, field) ?? {};
  return {
    mediaType: check.string(object.mediaType, `${field}.mediaType`),
    digest: check.digest(object.digest, `${field}.digest`),
    size: check.size(object.size, `${field}.size`),
  };
}

function checkDbMetadata(check: FieldChecker, value: unknown, field: string): UpstreamDbMetadata {
  const object = check.object(value, field) ?? {};
  if (object.Version !== undefined && !Number.isSafeInteger(object.Version)) {
    check.fail(`${field}.Version`, 'must be an integer when present');
  }
  return {
    ...(object.Version === undefined ? {} : { Version: object.Version as number }),
    NextUpdate: check.timestamp(object.NextUpdate, `${field}.NextUpdate`),
    UpdatedAt: check.timestamp(object.UpdatedAt, `${field}.UpdatedAt`),
    DownloadedAt: check.timestamp(object.DownloadedAt, `${field}.DownloadedAt`),
  };
}

function checkComponent(check: FieldChecker, value: unknown, field: string): Component | undefined {
  const object = check.object(value, field);
  if (object === undefined) return undefined;
  const kind = check.oneOf(object.kind, `${field}.kind`, COMPONENT_KINDS);
  if (kind === 'vex') {
    const etag = check.optionalString(object.etag, `${field}.etag`);
    const updatedAt = check.optionalString(object.updatedAt, `${field}.updatedAt`, (value) =>
      isRfc3339(value) ? undefined : 'must be an RFC 3339 timestamp',
    );
    if (typeof object.subdir !== 'string') check.fail(`${field}.subdir`, 'must be a string');
    else {
      const problem = textProblem(object.subdir) ?? subdirRule(object.subdir);
      if (problem !== undefined) check.fail(`${field}.subdir`, problem);
    }
    if (object.repositoryManifest === undefined) check.fail(`${field}.repositoryManifest`, 'is missing');
    return {
      kind,
      name: check.string(object.name, `${field}.name`, (n) =>
        isVexRepositoryName(n) ? undefined : 'must be a plain local name (letters, digits, . _ -)',
      ),
      url: check.string(object.url, `${field}.url`, httpUrlRule),
      manifestPath: check.string(object.manifestPath, `${field}.manifestPath`, vexPathRule),
      repositoryManifest: object.repositoryManifest,
      // Becomes a directory name under the repository (`0.1/`): a single safe name; importers
      // further require the one version Trivy reads.
      specVersion: check.string(object.specVersion, `${field}.specVersion`, segmentRule),
      location: check.string(object.location, `${field}.location`, httpUrlRule),
      servedBy: check.string(object.servedBy, `${field}.servedBy`, httpUrlRule),
      archivePath: check.string(object.archivePath, `${field}.archivePath`, vexPathRule),
      archiveType: check.oneOf(object.archiveType, `${field}.archiveType`, ['tar.gz', 'zip'] as const),
      subdir: typeof object.subdir === 'string' ? object.subdir : '',
      ...(etag === undefined ? {} : { etag }),
      ...(updatedAt === undefined ? {} : { updatedAt }),
    };
  }
  if (!(OCI_COMPONENT_KINDS as readonly string[]).includes(kind)) return undefined;
  const layerObject = check.object(object.layer, `${field}.layer`) ?? {};
  const version = check.optionalString(object.version, `${field}.version`);
  const component: OciComponent = {
    kind,
    source: check.string(object.source, `${field}.source`),
    servedBy: check.string(object.servedBy, `${field}.servedBy`),
    tag: check.string(
      object.tag,
      `${field}.tag`,
      patternRule(OCI_TAG, 'must be an OCI tag (letters, digits, _ . -; at most 128)'),
    ),
    layoutRef: check.string(
      object.layoutRef,
      `${field}.layoutRef`,
      patternRule(OCI_REF_NAME, 'must be an OCI image-layout reference name'),
    ),
    manifest: checkDescriptor(check, object.manifest, `${field}.manifest`),
    layer: {
      ...checkDescriptor(check, object.layer, `${field}.layer`),
      // Trivy names the downloaded file after it.
      title: check.string(layerObject.title, `${field}.layer.title`, segmentRule),
    },
    annotations: check.stringMap(object.annotations ?? {}, `${field}.annotations`),
    ...(object.metadata === undefined
      ? {}
      : { metadata: checkDbMetadata(check, object.metadata, `${field}.metadata`) }),
    ...(version === undefined ? {} : { version }),
  };
  return component;
}

/**
 * Validates an untrusted, already JSON-parsed manifest. Returns a typed manifest or throws one
 * FormatError: MANIFEST_MEDIA_TYPE (not ours), MANIFEST_UNSUPPORTED_VERSION (a newer major),
 * or MANIFEST_INVALID listing every invalid field in `issues`. Unknown extra fields are ignored.
 */
export function parseManifest(value: unknown): BundleManifest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError('MANIFEST_INVALID', 'manifest is not a JSON object', {
      issues: [{ field: '$', problem: 'must be an object' }],
    });
  }
  const object = value as Record<string, unknown>;
  const mediaType = object.mediaType;
  const match = typeof mediaType === 'string' ? MEDIA_TYPE_PATTERN.exec(mediaType) : null;
  if (match === null) {
    throw new FormatError(
      'MANIFEST_MEDIA_TYPE',
      `not a trivy-airgap bundle manifest: mediaType is ${JSON.stringify(mediaType ?? null)}, want ${MANIFEST_MEDIA_TYPE}`,
    );
  }
  if (match[1] !== '1') {
    throw new FormatError(
      'MANIFEST_UNSUPPORTED_VERSION',
      `bundle format v${match[1]} is newer than this trivy-airgap understands (v1)`,
      { hint: 'use a trivy-airgap release that reads this bundle format' },
    );
  }

  const check = new FieldChecker();
  const toolObject = check.object(object.tool, 'tool') ?? {};
  let signer: BundleManifest['signer'] = null;
  if (object.signer !== null) {
    const signerObject = check.object(object.signer, 'signer') ?? {};
    signer = {
      keyId: check.string(signerObject.keyId, 'signer.keyId', (k) =>
        KEY_ID.test(k) ? undefined : 'must be 64 lowercase hex characters',
      ),
      algorithm: check.oneOf(signerObject.algorithm, 'signer.algorithm', SIGNATURE_ALGORITHMS),
    };
  }
  const components = (check.array(object.components, 'components') ?? [])
    .map((entry, index) => checkComponent(check, entry, `components[${index}]`))
    .filter((component): component is Component => component !== undefined);
  const files = (check.array(object.files, 'files') ?? []).map((entry, index): BundleFile => {
    const field = `files[${index}]`;
    const file = check.object(entry, field) ?? {};
    return {
      path: check.string(file.path, `${field}.path`, pathRule),
      size: check.size(file.size, `${field}.size`),
      digest: check.digest(file.digest, `${field}.digest`),
    };
  });

  const manifest: BundleManifest = {
    mediaType: MANIFEST_MEDIA_TYPE,
    bundleId: check.string(
      object.bundleId,
      'bundleId',
      patternRule(BUNDLE_ID, 'must be a plain token (letters, digits, . _ -; at most 128)'),
    ),
    created: check.timestamp(object.created, 'created'),
    expires: check.timestamp(object.expires, 'expires'),
    tool: {
      name: check.string(toolObject.name, 'tool.name'),
      version: check.string(toolObject.version, 'tool.version'),
    },
    signer,
    trivyVersions: check.string(object.trivyVersions, 'trivyVersions'),
    components,
    files,
  };
  checkConsistency(check, manifest);

  if (check.issues.length > 0) {
    const list = check.issues.map((issue) => `${issue.field} ${issue.problem}`).join('; ');
    throw new FormatError('MANIFEST_INVALID', `invalid bundle manifest: ${list}`, { issues: check.issues });
  }
  return manifest;
}

/** Rules that span fields: unique paths, every component's files listed, sane dates. */
function checkConsistency(check: FieldChecker, manifest: BundleManifest): void {
  if (isRfc3339(manifest.created) && isRfc3339(manifest.expires)) {
    if (Date.parse(manifest.expires) <= Date.parse(manifest.created)) {
      check.fail('expires', 'must be later than created');
    }
  }
  if (manifest.files.length > MAX_BUNDLE_FILES) {
    check.fail(
      'files',
      `lists ${manifest.files.length} entries, more than the ${MAX_BUNDLE_FILES} a bundle may hold`,
    );
  }
  const byPath = new Map<string, BundleFile>();
  manifest.files.forEach((file, index) => {
    if (byPath.has(file.path)) check.fail(`files[${index}].path`, `duplicates ${JSON.stringify(file.path)}`);
    byPath.set(file.path, file);
  });
  const vexNames = new Set<string>();
  const kinds = new Set<string>();
  // Every entry a component reads has exactly one role: one path used by two components (a
  // shared layer blob, two repositories on one archive, a VEX file on a layout file) is refused
  // here rather than half-supported by readers that map each path to one role.
  const claimedBy = new Map<string, string>(OCI_LAYOUT_FILES.map((path) => [path, 'the OCI layout']));
  const claim = (path: string, field: string): void => {
    const owner = claimedBy.get(path);
    if (owner !== undefined) {
      check.fail(
        field,
        `names ${JSON.stringify(path)}, which is already ${owner}; one entry serves one role`,
      );
      return;
    }
    claimedBy.set(path, field);
  };
  manifest.components.forEach((component, index) => {
    const field = `components[${index}]`;
    if (component.kind === 'vex') {
      // Case-insensitive: the names become directories, and some file systems fold case.
      const folded = component.name.toLowerCase();
      if (vexNames.has(folded)) check.fail(`${field}.name`, 'duplicates another VEX repository');
      vexNames.add(folded);
      for (const key of ['manifestPath', 'archivePath'] as const) {
        if (component[key] === '') continue;
        if (!byPath.has(component[key])) check.fail(`${field}.${key}`, 'is not listed in files');
        claim(component[key], `${field}.${key}`);
      }
      return;
    }
    if (kinds.has(component.kind))
      check.fail(`${field}.kind`, `duplicates another ${component.kind} component`);
    kinds.add(component.kind);
    for (const key of ['manifest', 'layer'] as const) {
      const descriptor = component[key];
      if (!isDigest(descriptor.digest)) continue;
      const path = blobPath(descriptor.digest);
      const listed = byPath.get(path);
      if (listed === undefined) check.fail(`${field}.${key}.digest`, 'has no blob listed in files');
      else if (listed.size !== descriptor.size)
        check.fail(`${field}.${key}.size`, 'differs from the listed blob');
      claim(path, `${field}.${key}.digest`);
    }
  });
}

/**
 * Parses manifest.json bytes: size cap, JSON, then `parseManifest`.
 * The caller keeps the exact bytes: signatures are over them, never over a re-serialization.
 */
export function parseManifestBytes(bytes: Uint8Array): BundleManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new FormatError('MANIFEST_TOO_LARGE', `manifest.json is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new FormatError('MANIFEST_NOT_JSON', 'manifest.json is not valid JSON', { cause: error });
  }
  return parseManifest(value);
}

/** The exact bytes written as manifest.json (stable key order as declared, 2-space indent, final newline). */
export function serializeManifest(manifest: BundleManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}

/** Bundle path of an OCI blob inside the bundle's image layout. */
export function blobPath(digest: Digest): string {
  return `oci/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

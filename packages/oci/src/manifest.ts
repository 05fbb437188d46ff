import { isDigest, type Digest } from '@trivy-airgap/format';
import { OciError } from './errors.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  ociLayout: 'application/vnd.oci.layout.header.v1+json',
} as const;

/** distribution 2.8 answers 404 without the OCI types in Accept (test-infra.md), so always send all four. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerManifestList,
].join(', ');

export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
]);
export const IMAGE_MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
]);

/** Manifests are small; a registry sending more than this is broken or hostile. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';

/** The OCI empty config `{}`: its bytes and digest are fixed by the spec. */
export const EMPTY_CONFIG_BYTES = Buffer.from('{}');
export const EMPTY_CONFIG_DIGEST =
  'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' as Digest;

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string | undefined;
}

/** What every OCI reference points at: type, digest and size of some bytes. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly artifactType?: string | undefined;
  readonly platform?: Platform | undefined;
}

export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly artifactType?: string | undefined;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

function manifestInvalid(what: string, problems: string[]): OciError {
  return new OciError('MANIFEST_INVALID', `invalid ${what}: ${problems.join('; ')}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseAnnotations(
  value: unknown,
  field: string,
  problems: string[],
): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    problems.push(`${field} must be an object of strings`);
    return undefined;
  }
  return value as Record<string, string>;
}

/** Validates one descriptor; every bad field is added to `problems`. */
export function parseDescriptor(value: unknown, field: string, problems: string[]): Descriptor | undefined {
  if (!isRecord(value)) {
    problems.push(`${field} must be an object`);
    return undefined;
  }
  const start = problems.length;
  const { mediaType, digest, size, artifactType, platform } = value;
  if (typeof mediaType !== 'string' || mediaType.length === 0)
    problems.push(`${field}.mediaType must be a string`);
  if (!isDigest(digest)) problems.push(`${field}.digest must be sha256: followed by 64 lowercase hex`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    problems.push(`${field}.size must be a non-negative integer`);
  }
  if (artifactType !== undefined && typeof artifactType !== 'string')
    problems.push(`${field}.artifactType must be a string`);
  const annotations = parseAnnotations(value.annotations, `${field}.annotations`, problems);
  let parsedPlatform: Platform | undefined;
  if (platform !== undefined) {
    if (isRecord(platform) && typeof platform.os === 'string' && typeof platform.architecture === 'string') {
      parsedPlatform = {
        os: platform.os,
        architecture: platform.architecture,
        variant: typeof platform.variant === 'string' ? platform.variant : undefined,
      };
    } else {
      problems.push(`${field}.platform must have os and architecture strings`);
    }
  }
  if (problems.length > start) return undefined;
  return {
    mediaType: mediaType as string,
    digest: digest as Digest,
    size: size as number,
    ...(annotations === undefined ? {} : { annotations }),
    ...(artifactType === undefined ? {} : { artifactType: artifactType as string }),
    ...(parsedPlatform === undefined ? {} : { platform: parsedPlatform }),
  };
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new OciError('MANIFEST_TOO_LARGE', `${what} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new OciError('MANIFEST_INVALID', `${what} is not JSON`, { cause });
  }
  if (!isRecord(value)) throw manifestInvalid(what, ['the top level must be an object']);
  return value;
}

/** Parses an OCI or Docker v2 image manifest; names every invalid field. */
export function parseImageManifest(bytes: Uint8Array): ImageManifest {
  const value = parseJson(bytes, 'image manifest');
  const problems: string[] = [];
  if (value.schemaVersion !== 2) problems.push('schemaVersion must be 2');
  if (value.mediaType !== undefined && !IMAGE_MANIFEST_MEDIA_TYPES.has(value.mediaType as string)) {
    problems.push(`mediaType ${JSON.stringify(value.mediaType)} is not an image manifest type`);
  }
  if (value.artifactType !== undefined && typeof value.artifactType !== 'string') {
    problems.push('artifactType must be a string');
  }
  const config = parseDescriptor(value.config, 'config', problems);
  const layers: Descriptor[] = [];
  if (!Array.isArray(value.layers)) problems.push('layers must be an array');
  else {
    value.layers.forEach((layer: unknown, i) => {
      const parsed = parseDescriptor(layer, `layers[${i}]`, problems);
      if (parsed !== undefined) layers.push(parsed);
    });
  }
  const annotations = parseAnnotations(value.annotations, 'annotations', problems);
  if (problems.length > 0 || config === undefined) throw manifestInvalid('image manifest', problems);
  return {
    schemaVersion: 2,
    mediaType: value.mediaType as string | undefined,
    artifactType: value.artifactType as string | undefined,
    config,
    layers,
    annotations,
  };
}

/** Parses an OCI image index or a Docker manifest list; names every invalid field. */
export function parseImageIndex(bytes: Uint8Array): ImageIndex {
  const value = parseJson(bytes, 'image index');
  const problems: string[] = [];
  if (value.schemaVersion !== 2) problems.push('schemaVersion must be 2');
  if (value.mediaType !== undefined && !INDEX_MEDIA_TYPES.has(value.mediaType as string)) {
    problems.push(`mediaType ${JSON.stringify(value.mediaType)} is not an index type`);
  }
  const manifests: Descriptor[] = [];
  if (!Array.isArray(value.manifests)) problems.push('manifests must be an array');
  else {
    value.manifests.forEach((entry: unknown, i) => {
      const parsed = parseDescriptor(entry, `manifests[${i}]`, problems);
      if (parsed !== undefined) manifests.push(parsed);
    });
  }
  const annotations = parseAnnotations(value.annotations, 'annotations', problems);
  if (problems.length > 0) throw manifestInvalid('image index', problems);
  return { schemaVersion: 2, mediaType: value.mediaType as string | undefined, manifests, annotations };
}

/**
 * The media type of manifest bytes: the `mediaType` field when present (it is what a registry
 * needs as Content-Type on push), else what the response said.
 */
export function manifestMediaType(bytes: Uint8Array, fallback?: string): string {
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (isRecord(value) && typeof value.mediaType === 'string') return value.mediaType;
    if (isRecord(value) && Array.isArray(value.manifests)) return MEDIA_TYPES.ociIndex;
  } catch {
    // fall through to the fallback
  }
  if (fallback !== undefined) return fallback;
  return MEDIA_TYPES.ociManifest;
}

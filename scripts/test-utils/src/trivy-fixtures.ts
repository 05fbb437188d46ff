import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTarGz, makeZip, type ArchiveEntry } from './archives.js';

/**
 * Content shaped like Trivy's real artifacts (trivy-facts.md: "The three OCI artifacts",
 * "VEX repositories"), small enough for tests. Everything is built in code, deterministically.
 */

export type FixtureKind = 'db' | 'java-db' | 'checks';

export const LAYER_MEDIA_TYPES: Record<FixtureKind, string> = {
  db: 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip',
  'java-db': 'application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip',
  checks: 'application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip',
};
export const LAYER_TITLES: Record<FixtureKind, string> = {
  db: 'db.tar.gz',
  'java-db': 'javadb.tar.gz',
  checks: 'bundle.tar.gz',
};
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_EMPTY_CONFIG_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
export const LEGACY_TRIVY_CONFIG_MEDIA_TYPE = 'application/vnd.aquasec.trivy.config.v1+json';

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface DbFixtureOptions {
  /** Build time; NextUpdate = +24 h (db) or +72 h (java-db). */
  readonly updatedAt?: Date;
  /** Schema version in metadata.json (db 2, java-db 1 by default). */
  readonly version?: number;
  /** Contents of trivy.db / trivy-java.db, or a size in bytes of deterministic filler. */
  readonly dbContents?: Buffer | number;
  /** Extra metadata.json fields, to prove that unknown upstream fields survive. */
  readonly extraMetadata?: Record<string, unknown>;
  /** Leave metadata.json out of the layer. */
  readonly withoutMetadata?: boolean;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Deterministic filler bytes of `size` from `seed` (a sha256 chain): stable digests across runs. */
export function deterministicBytes(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** metadata.json as published: compact JSON, DownloadedAt zero (trivy-facts: "As published"). */
export function upstreamMetadata(kind: 'db' | 'java-db', options: DbFixtureOptions = {}): Buffer {
  const updatedAt = options.updatedAt ?? new Date('2026-11-25T06:12:01.123456789Z');
  const hours = kind === 'db' ? 24 : 72;
  const next = new Date(updatedAt.getTime() + hours * 3600_000);
  const metadata = {
    Version: options.version ?? (kind === 'db' ? 2 : 1),
    NextUpdate: next.toISOString(),
    UpdatedAt: updatedAt.toISOString(),
    DownloadedAt: ZERO_TIME,
    ...options.extraMetadata,
  };
  return Buffer.from(JSON.stringify(metadata));
}

/** The gzip layer of the vulnerability DB or Java DB: `trivy.db` (or `trivy-java.db`) + `metadata.json` at the root. */
export function dbLayer(kind: 'db' | 'java-db' = 'db', options: DbFixtureOptions = {}): Buffer {
  const dbName = kind === 'db' ? 'trivy.db' : 'trivy-java.db';
  const contents =
    typeof options.dbContents === 'number'
      ? deterministicBytes(options.dbContents, dbName)
      : (options.dbContents ?? Buffer.from(`${dbName} fixture ${options.updatedAt?.toISOString() ?? ''}`));
  const entries: ArchiveEntry[] = [{ name: dbName, body: contents }];
  if (options.withoutMetadata !== true)
    entries.push({ name: 'metadata.json', body: upstreamMetadata(kind, options) });
  return makeTarGz(entries);
}

/** The files of a checks bundle (files only, no directory entries, no .manifest: checks v2). */
export function checksFiles(marker = 'v2'): ArchiveEntry[] {
  return [
    {
      name: 'policies/kubernetes/policies/general/privileged.rego',
      body: `package builtin.kubernetes.KSV017\n# ${marker}\n`,
    },
    { name: 'policies/docker/policies/root_user.rego', body: 'package builtin.dockerfile.DS002\n' },
    { name: 'commands/kubernetes/kubelet.yaml', body: 'id: CMD-0001\n' },
    { name: 'specs/compliance/k8s-cis-1.23.yaml', body: 'spec:\n  id: k8s-cis-1.23\n' },
  ];
}

export function checksLayer(marker?: string): Buffer {
  return makeTarGz(checksFiles(marker));
}

export interface FixtureArtifact {
  readonly kind: FixtureKind;
  readonly manifest: Buffer;
  readonly manifestDigest: string;
  readonly config: Buffer;
  readonly configDigest: string;
  readonly configMediaType: string;
  readonly layer: Buffer;
  readonly layerDigest: string;
  readonly layerMediaType: string;
  readonly title: string;
}

export interface ArtifactOptions extends DbFixtureOptions {
  /** Replace the layer bytes entirely. */
  readonly layer?: Buffer;
  /** `org.opencontainers.image.version` of a checks bundle ('2.2.0' by default; null to omit). */
  readonly checksVersion?: string | null;
  /** Old-style config (application/vnd.aquasec.trivy.config.v1+json) instead of the OCI empty config. */
  readonly legacyConfig?: boolean;
  /** Adversarial shapes for validation tests. */
  readonly layerMediaType?: string;
  readonly omitTitle?: boolean;
  readonly extraLayer?: boolean;
  /** Value of org.opencontainers.image.created (differs per push upstream). */
  readonly created?: string;
}

/** A complete OCI artifact as Trivy's publishers push it: one layer, title annotation, created stamp. */
export function trivyArtifact(kind: FixtureKind, options: ArtifactOptions = {}): FixtureArtifact {
  const layer = options.layer ?? (kind === 'checks' ? checksLayer() : dbLayer(kind, options));
  const config = Buffer.from('{}');
  const configMediaType =
    options.legacyConfig === true ? LEGACY_TRIVY_CONFIG_MEDIA_TYPE : OCI_EMPTY_CONFIG_MEDIA_TYPE;
  const layerMediaType = options.layerMediaType ?? LAYER_MEDIA_TYPES[kind];
  const title = LAYER_TITLES[kind];
  const layerDescriptor = {
    mediaType: layerMediaType,
    digest: sha256Digest(layer),
    size: layer.length,
    ...(options.omitTitle === true ? {} : { annotations: { 'org.opencontainers.image.title': title } }),
  };
  const annotations: Record<string, string> = {
    'org.opencontainers.image.created': options.created ?? '2026-11-25T06:20:00Z',
  };
  if (kind === 'checks' && options.checksVersion !== null) {
    annotations['org.opencontainers.image.version'] = options.checksVersion ?? '2.2.0';
  }
  const manifestObject = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    ...(options.legacyConfig === true ? {} : { artifactType: `application/vnd.aquasec.trivy.${kind}.v1` }),
    config: { mediaType: configMediaType, digest: sha256Digest(config), size: config.length },
    layers: options.extraLayer === true ? [layerDescriptor, layerDescriptor] : [layerDescriptor],
    annotations,
  };
  const manifest = Buffer.from(JSON.stringify(manifestObject));
  return {
    kind,
    manifest,
    manifestDigest: sha256Digest(manifest),
    config,
    configDigest: sha256Digest(config),
    configMediaType,
    layer,
    layerDigest: sha256Digest(layer),
    layerMediaType,
    title,
  };
}

/**
 * Writes an OCI image layout holding the artifacts, each named by `ref`
 * (`org.opencontainers.image.ref.name`), e.g. to seed a registry with `skopeo copy oci:DIR:REF …`.
 */
export function writeOciLayout(
  dir: string,
  artifacts: readonly { ref: string; artifact: FixtureArtifact }[],
): void {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  for (const { artifact } of artifacts) {
    for (const [digest, bytes] of [
      [artifact.manifestDigest, artifact.manifest],
      [artifact.configDigest, artifact.config],
      [artifact.layerDigest, artifact.layer],
    ] as const) {
      writeFileSync(join(blobs, digest.slice(7)), bytes);
    }
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: artifacts.map(({ ref, artifact }) => ({
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      digest: artifact.manifestDigest,
      size: artifact.manifest.length,
      annotations: { 'org.opencontainers.image.ref.name': ref },
    })),
  };
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
}

export interface VexRepositoryFixture {
  /** The archive bytes (tar.gz or zip). */
  readonly archive: Buffer;
  /** Relative path (inside the repository root, i.e. what ends up in `0.1/`) → contents. */
  readonly files: ReadonlyMap<string, Buffer>;
  /** The top folder inside the archive ('' for none), i.e. the `//subdir` a location needs. */
  readonly subdir: string;
}

/**
 * A VEX repository like VEX Hub: index.json + OpenVEX documents, a crawler manifest.json per
 * package (ignored by Trivy) and a dotfile dir, optionally under a top folder (`vexhub-main/`).
 */
export function vexRepositoryArchive(
  options: { type?: 'tar.gz' | 'zip'; topDir?: string; updatedAt?: string; packages?: number } = {},
): VexRepositoryFixture {
  const topDir = options.topDir ?? 'vexhub-main';
  const count = options.packages ?? 3;
  const files = new Map<string, Buffer>();
  const packages = [];
  for (let i = 0; i < count; i++) {
    const location = `pkg/golang/example.com/module${i}/module${i}.openvex.json`;
    files.set(
      location,
      Buffer.from(
        JSON.stringify({
          '@context': 'https://openvex.dev/ns/v0.2.0',
          '@id': `https://example.com/vex/${i}`,
          statements: [{ vulnerability: { name: `CVE-2026-${1000 + i}` }, status: 'not_affected' }],
        }),
      ),
    );
    files.set(`pkg/golang/example.com/module${i}/manifest.json`, Buffer.from('{"crawler":true}'));
    packages.push({
      id: `pkg:golang/example.com/module${i}`,
      location,
      ...(i === 0 ? {} : { format: 'openvex' }),
    });
  }
  files.set('.github/workflows/update.yaml', Buffer.from('on: schedule\n'));
  files.set('README.md', Buffer.from('# VEX Hub fixture\n'));
  files.set(
    'index.json',
    Buffer.from(JSON.stringify({ updated_at: options.updatedAt ?? '2026-11-25T01:00:00Z', packages })),
  );
  const prefix = topDir === '' ? '' : `${topDir}/`;
  const entries: ArchiveEntry[] = [...files.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, body]) => ({ name: `${prefix}${name}`, body }));
  const archive = options.type === 'zip' ? makeZip(entries) : makeTarGz(entries);
  return { archive, files, subdir: topDir };
}

/** A vex-repo-spec 0.1 repository manifest pointing at `locationUrl` (include any `//subdir`). */
export function vexRepositoryManifest(locationUrl: string, name = 'VEX Hub'): Buffer {
  return Buffer.from(
    JSON.stringify({
      name,
      description: 'VEX Repository fixture',
      versions: [{ spec_version: '0.1', locations: [{ url: locationUrl }], update_interval: '24h' }],
    }),
  );
}

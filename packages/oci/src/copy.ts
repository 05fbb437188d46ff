import type { Readable } from 'node:stream';
import { OciError } from './errors.js';
import type { OciLayout } from './layout.js';
import { INDEX_MEDIA_TYPES, parseImageManifest, type Descriptor, type ImageManifest } from './manifest.js';
import { formatReference, parseReference, type ImageReference } from './reference.js';
import type { ManifestResult, PushManifestResult, RegistryClient } from './registry-client.js';

export interface PullToLayoutOptions {
  /** Name of the manifest in the layout's index.json (`org.opencontainers.image.ref.name`). */
  readonly refName: string;
  /** Extra annotations for the index.json entry. */
  readonly indexAnnotations?: Readonly<Record<string, string>> | undefined;
  /** Every byte of every layer, in order, as it is stored (also for blobs the layout already had). */
  readonly onLayerData?: ((layer: Descriptor, chunk: Buffer) => void) | undefined;
  readonly onProgress?: ((blob: Descriptor, done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface PulledArtifact {
  /** The manifest exactly as the registry sent it. */
  readonly manifest: ManifestResult;
  readonly parsed: ImageManifest;
  /** The index.json entry (manifest descriptor with the ref name annotation). */
  readonly descriptor: Descriptor;
}

/**
 * Copies one image manifest with its config and layers from a registry into a layout, byte for
 * byte (so every digest is kept). Interrupted downloads resume from `<layout>/.partial`.
 */
export async function pullToLayout(
  client: RegistryClient,
  ref: ImageReference | string,
  layout: OciLayout,
  options: PullToLayoutOptions,
): Promise<PulledArtifact> {
  const source = typeof ref === 'string' ? parseReference(ref) : ref;
  const manifest = await client.getManifest(source, { signal: options.signal });
  if (INDEX_MEDIA_TYPES.has(manifest.mediaType)) {
    throw new OciError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${formatReference(source)} is an index, not an artifact manifest`,
      {
        found: manifest.mediaType,
      },
    );
  }
  const parsed = parseImageManifest(manifest.bytes);
  for (const blob of [parsed.config, ...parsed.layers]) {
    const isLayer = blob !== parsed.config;
    const onData =
      isLayer && options.onLayerData !== undefined
        ? (chunk: Buffer): void => options.onLayerData?.(blob, chunk)
        : undefined;
    const onProgress = (done: number, total: number): void => options.onProgress?.(blob, done, total);
    if (await layout.hasBlob(blob)) {
      if (onData !== undefined) {
        // The caller reads layers as they pass; replay the stored one (verified on the way).
        for await (const chunk of layout.openBlob(blob) as AsyncIterable<Buffer>) onData(chunk);
      }
      onProgress(blob.size, blob.size);
      continue;
    }
    const partial = await layout.partialBlobPath(blob.digest);
    await client.downloadBlob(source, blob, partial, { onData, onProgress, signal: options.signal });
    await layout.commitBlob(blob, partial);
  }
  const descriptor = await layout.addManifest(manifest.bytes, options.refName, {
    mediaType: manifest.mediaType,
    annotations: options.indexAnnotations,
  });
  return { manifest, parsed, descriptor };
}

export interface PushFromLayoutOptions {
  /** Repositories of the destination registry to try cross-repo mounts from. */
  readonly mountFrom?: readonly string[] | undefined;
  readonly onProgress?: ((blob: Descriptor, done: number, total: number) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Pushes the manifest named `refName` in a layout, with its blobs, to `destination` (which
 * carries the tag). Blobs the registry has are not uploaded; the manifest bytes, hence the
 * digest, are unchanged.
 */
export async function pushFromLayout(
  client: RegistryClient,
  layout: OciLayout,
  refName: string,
  destination: ImageReference | string,
  options: PushFromLayoutOptions = {},
): Promise<PushManifestResult> {
  const target = typeof destination === 'string' ? parseReference(destination) : destination;
  const descriptor = await layout.resolve(refName);
  const bytes = await layout.readBlob(descriptor);
  const parsed = parseImageManifest(bytes);
  for (const blob of [parsed.config, ...parsed.layers]) {
    await client.pushBlob(target, blob, (): Readable => layout.openBlob(blob), {
      mountFrom: options.mountFrom,
      onProgress: (done, total) => options.onProgress?.(blob, done, total),
      signal: options.signal,
    });
  }
  return client.pushManifest(target, bytes, descriptor.mediaType, options.signal);
}

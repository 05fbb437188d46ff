import { createReadStream } from 'node:fs';
import { mkdir, open as openFile, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFileAtomic } from '@trivy-airgap/durable';
import { digestHex, digestOfBytes, isDigest, type Digest } from '@trivy-airgap/format';
import { OciError } from './errors.js';
import {
  ANNOTATION_REF_NAME,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPES,
  manifestMediaType,
  parseImageIndex,
  type Descriptor,
  type ImageIndex,
} from './manifest.js';
import { BlobVerifier, digestMismatch, sizeMismatch, VerifyingStream } from './verify.js';

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const LAYOUT_VERSION = '1.0.0';
/** Downloads in progress live inside the layout so the final rename stays on one filesystem. */
const PARTIAL_DIR = '.partial';

export interface LayoutRef {
  /** The `org.opencontainers.image.ref.name` annotation (the tag in `oci:DIR:TAG`). */
  readonly refName: string;
  readonly descriptor: Descriptor;
}

export interface WriteBlobOptions {
  /** Called with every byte as it is written (to parse a layer while it is stored). */
  readonly onData?: ((chunk: Buffer) => void) | undefined;
}

/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), the form
 * skopeo and oras read with `oci:DIR:TAG`. Blobs are written to a temp file inside the layout,
 * verified, fsynced and renamed, so a blob path either holds the right bytes or nothing.
 */
export class OciLayout {
  private constructor(
    readonly root: string,
    private readonly durable: boolean,
  ) {}

  /**
   * Opens an existing layout; `create: true` makes an empty one when the directory has none.
   * `durable: false` is for a cache whose every use re-checks the digests (the exporter's work
   * dir): blobs are not fsynced before their rename; a copy a crash tore is found by that check,
   * removed and fetched by the next run (exporter bundle-writer.ts), and the fsyncs were on the path to the first byte of every export.
   */
  static async open(root: string, options: { create?: boolean; durable?: boolean } = {}): Promise<OciLayout> {
    const layout = new OciLayout(root, options.durable !== false);
    let header: string | undefined;
    try {
      header = await readFile(join(root, LAYOUT_FILE), 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new OciError('LAYOUT_INVALID', `cannot read ${join(root, LAYOUT_FILE)}`, { cause });
      }
    }
    if (header === undefined) {
      if (options.create !== true)
        throw new OciError('LAYOUT_INVALID', `${root} is not an OCI image layout (no ${LAYOUT_FILE})`);
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      await writeFileAtomic(
        join(root, INDEX_FILE),
        indexBytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }),
      );
      await writeFileAtomic(
        join(root, LAYOUT_FILE),
        Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })),
      );
      return layout;
    }
    let version: unknown;
    try {
      version = (JSON.parse(header) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      version = undefined;
    }
    if (version !== LAYOUT_VERSION) {
      throw new OciError(
        'LAYOUT_INVALID',
        `${join(root, LAYOUT_FILE)} does not declare imageLayoutVersion ${LAYOUT_VERSION}`,
      );
    }
    return layout;
  }

  /** Path of a blob; the digest is validated first, so no string from outside becomes a path unchecked. */
  blobPath(digest: Digest | string): string {
    if (!isDigest(digest)) {
      throw new OciError('LAYOUT_INVALID', `not a sha256 digest: ${JSON.stringify(digest.slice(0, 80))}`);
    }
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  /** Where a download of this blob may be kept between attempts (for RegistryClient.downloadBlob). */
  async partialBlobPath(digest: Digest): Promise<string> {
    this.blobPath(digest);
    await mkdir(join(this.root, PARTIAL_DIR), { recursive: true });
    return join(this.root, PARTIAL_DIR, `sha256-${digestHex(digest)}`);
  }

  /** True when the blob is present with the expected size (a descriptor) or at all (a digest). */
  async hasBlob(blob: Descriptor | Digest): Promise<boolean> {
    const digest = typeof blob === 'string' ? blob : blob.digest;
    try {
      const info = await stat(this.blobPath(digest));
      return info.isFile() && (typeof blob === 'string' || info.size === blob.size);
    } catch {
      return false;
    }
  }

  /** Streams `source` into the layout, verifying size and digest before the blob becomes visible. */
  async writeBlob(
    descriptor: Descriptor,
    source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: WriteBlobOptions = {},
  ): Promise<void> {
    const target = this.blobPath(descriptor.digest);
    const temp = join(dirname(target), `.tmp-${randomBytes(8).toString('hex')}`);
    const verifier = new BlobVerifier(descriptor, 'source', `blob ${descriptor.digest}`);
    const file = await openFile(temp, 'wx');
    let committed = false;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        verifier.update(buffer);
        options.onData?.(buffer);
        await file.write(buffer);
      }
      verifier.finish();
      if (this.durable) await file.sync();
      await file.close();
      await rename(temp, target);
      committed = true;
    } finally {
      if (!committed) {
        await file.close().catch(() => undefined);
        await rm(temp, { force: true });
      }
    }
  }

  /** Stores small bytes (a manifest or config) and returns their descriptor. */
  async writeBlobBytes(bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const descriptor: Descriptor = { mediaType, digest: digestOfBytes(bytes), size: bytes.byteLength };
    if (!(await this.hasBlob(descriptor))) await this.writeBlob(descriptor, [bytes]);
    return descriptor;
  }

  /**
   * Moves a file already verified against `descriptor` (e.g. by RegistryClient.downloadBlob, which
   * fsyncs unless told not to) into place. The size is rechecked; the content was hashed while it was written.
   */
  async commitBlob(descriptor: Descriptor, verifiedPath: string): Promise<void> {
    const target = this.blobPath(descriptor.digest);
    const info = await stat(verifiedPath);
    if (info.size !== descriptor.size) {
      throw sizeMismatch(`blob ${descriptor.digest}`, descriptor.size, info.size, 'destination', false);
    }
    await rename(verifiedPath, target);
    if (this.durable) await fsyncDir(dirname(target));
  }

  /** A stream of a stored blob that fails instead of ending if the bytes on disk are not the descriptor's. */
  openBlob(descriptor: Descriptor): Readable {
    const verifier = new VerifyingStream(
      descriptor,
      'destination',
      `blob ${descriptor.digest} in ${this.root}`,
    );
    const source = createReadStream(this.blobPath(descriptor.digest));
    source.on('error', (cause) => verifier.destroy(cause));
    return source.pipe(verifier);
  }

  /** Reads a small blob (manifest, config) whole, verified; refuses anything over `limit` bytes. */
  async readBlob(descriptor: Descriptor, limit = MAX_MANIFEST_BYTES): Promise<Buffer> {
    if (descriptor.size > limit) {
      throw new OciError(
        'MANIFEST_TOO_LARGE',
        `blob ${descriptor.digest} is ${descriptor.size} bytes, more than ${limit}`,
      );
    }
    const bytes = await readFile(this.blobPath(descriptor.digest));
    if (bytes.byteLength !== descriptor.size) {
      throw sizeMismatch(
        `blob ${descriptor.digest}`,
        descriptor.size,
        bytes.byteLength,
        'destination',
        false,
      );
    }
    const found = digestOfBytes(bytes);
    if (found !== descriptor.digest)
      throw digestMismatch(`blob ${descriptor.digest}`, descriptor.digest, found, 'destination');
    return bytes;
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.root, INDEX_FILE);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (cause) {
      throw new OciError('LAYOUT_INVALID', `cannot read ${path}`, { cause });
    }
    try {
      return parseImageIndex(bytes);
    } catch (cause) {
      throw new OciError('LAYOUT_INVALID', `${path} is not a valid image index`, { cause });
    }
  }

  /** Every manifest in index.json that has a ref name. */
  async listRefs(): Promise<LayoutRef[]> {
    const index = await this.readIndex();
    return index.manifests.flatMap((descriptor) => {
      const refName = descriptor.annotations?.[ANNOTATION_REF_NAME];
      return refName === undefined ? [] : [{ refName, descriptor }];
    });
  }

  /** The manifest descriptor tagged `refName` (LAYOUT_REF_UNKNOWN when absent). */
  async resolve(refName: string): Promise<Descriptor> {
    const found = (await this.listRefs()).find((ref) => ref.refName === refName);
    if (found === undefined)
      throw new OciError(
        'LAYOUT_REF_UNKNOWN',
        `no manifest named ${JSON.stringify(refName)} in ${this.root}`,
      );
    return found.descriptor;
  }

  /**
   * Stores manifest bytes and names them `refName` in index.json (replacing an entry of the same
   * name). Extra annotations are added to the index entry. Returns the entry's descriptor.
   */
  async addManifest(
    manifestBytes: Buffer,
    refName: string,
    options: { mediaType?: string; annotations?: Readonly<Record<string, string>> } = {},
  ): Promise<Descriptor> {
    const mediaType = options.mediaType ?? manifestMediaType(manifestBytes);
    const stored = await this.writeBlobBytes(manifestBytes, mediaType);
    const descriptor: Descriptor = {
      ...stored,
      annotations: { ...options.annotations, [ANNOTATION_REF_NAME]: refName },
    };
    await this.updateIndex((manifests) => [
      ...manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== refName),
      descriptor,
    ]);
    return descriptor;
  }

  /**
   * Removes the downloads-in-progress directory (`.partial`, which holds no blob the index needs).
   * Not done automatically: another download may be using it. Call it when no download is running.
   */
  async removePartials(): Promise<void> {
    await rm(join(this.root, PARTIAL_DIR), { recursive: true, force: true });
  }

  private async updateIndex(change: (manifests: readonly Descriptor[]) => Descriptor[]): Promise<void> {
    const index = await this.readIndex();
    const next: ImageIndex = {
      ...index,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: change(index.manifests),
    };
    await writeFileAtomic(join(this.root, INDEX_FILE), indexBytes(next));
  }
}

function indexBytes(index: ImageIndex): Buffer {
  const clean = {
    schemaVersion: 2,
    mediaType: index.mediaType ?? MEDIA_TYPES.ociIndex,
    manifests: index.manifests,
    ...(index.annotations === undefined ? {} : { annotations: index.annotations }),
  };
  return Buffer.from(JSON.stringify(clean));
}

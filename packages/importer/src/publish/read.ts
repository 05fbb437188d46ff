import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import type { BundleFile, OciComponent, ProgressListener } from '@trivy-airgap/format';
import { checkLayerContent } from '../content.js';
import { LayerUnpacker } from '../layer.js';
import {
  readBundle,
  type EntryRole,
  type EntrySink,
  type PolicyOptions,
  type ReadBundleResult,
  type TrustedBundle,
  type VerificationCheck,
} from '../reader.js';
import type { BundleInput } from '../source.js';
import { loadTrustedKeys, type TrustOptions } from '../trust.js';

/**
 * Writes one bundle entry to a new file. No fsync: what it writes is a work copy that is read
 * back verified (OCI blobs) or published by a rename that is synced as a whole (VEX trees).
 */
class WorkFileSink implements EntrySink {
  private handle: FileHandle | undefined;

  constructor(private readonly path: string) {}

  private async opened(): Promise<FileHandle> {
    if (this.handle === undefined) {
      await mkdir(dirname(this.path), { recursive: true });
      this.handle = await open(this.path, 'wx', 0o644);
    }
    return this.handle;
  }

  async write(chunk: Buffer): Promise<void> {
    await (await this.opened()).write(chunk);
  }

  async end(): Promise<void> {
    await (await this.opened()).close();
    this.handle = undefined;
  }

  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}

/** Feeds one entry to several sinks (a work file and the layer inspector). */
class TeeSink implements EntrySink {
  constructor(private readonly sinks: readonly EntrySink[]) {}

  async write(chunk: Buffer): Promise<void> {
    for (const sink of this.sinks) await sink.write(chunk);
  }

  async end(): Promise<void> {
    for (const sink of this.sinks) await sink.end();
  }

  async abort(): Promise<void> {
    for (const sink of this.sinks) await sink.abort();
  }
}

export interface VerifiedReadOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly onProgress?: ProgressListener;
  /**
   * Where to keep a verified copy of an entry (a new file), or undefined to only verify it.
   * Called once per entry, after the signature was verified and before its bytes are read.
   */
  readonly destinationOf: (file: BundleFile, role: EntryRole) => string | undefined;
  /** Runs once signature and policy passed, before the first content entry is read. */
  readonly onTrusted?: (bundle: TrustedBundle) => Promise<void>;
}

export interface VerifiedRead extends ReadBundleResult {
  /** Every check, the inspected layer contents included. */
  readonly allChecks: readonly VerificationCheck[];
}

/**
 * The importer's one verified pass over a bundle (signature, policy, every entry's size and
 * sha256, nothing unlisted), keeping copies of the entries asked for; every OCI layer is also
 * inflated on the way and checked as `verify` checks it (database file and metadata.json
 * matching the signed manifest). Nothing kept may be used before this resolves.
 */
export async function readVerifiedBundle(options: VerifiedReadOptions): Promise<VerifiedRead> {
  const trustedKeys = await loadTrustedKeys(options);
  const layers: { component: OciComponent; unpacker: LayerUnpacker }[] = [];
  const result = await readBundle(options.bundle, {
    ...options,
    trustedKeys,
    openEntry: (file, role) => {
      const sinks: EntrySink[] = [];
      const destination = options.destinationOf(file, role);
      if (destination !== undefined) sinks.push(new WorkFileSink(destination));
      if (role.kind === 'layer') {
        const unpacker = new LayerUnpacker(`${role.component.kind} layer`, file.size, undefined);
        layers.push({ component: role.component, unpacker });
        sinks.push(unpacker);
      }
      const [only] = sinks;
      return Promise.resolve(sinks.length > 1 ? new TeeSink(sinks) : only);
    },
  });
  const allChecks = [...result.checks];
  for (const { component, unpacker } of layers) {
    const layer = await unpacker.result();
    checkLayerContent(component, layer);
    allChecks.push({
      check: 'layer-content',
      subject: component.kind,
      ok: true,
      detail: `${layer.files.length} files, ${layer.bytes} bytes unpacked; contents match the manifest`,
    });
  }
  return { ...result, allChecks };
}

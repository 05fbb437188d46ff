import type { Readable } from 'node:stream';
import {
  DigestHasher,
  MANIFEST_PATH,
  MAX_MANIFEST_BYTES,
  SIGNATURE_PATH,
  blobPath,
  bundlePathProblem,
  ignoreProgress,
  parseManifestBytes,
  TarReader,
  type BundleFile,
  type BundleManifest,
  type OciComponent,
  type ProgressListener,
  type TarEntry,
  type TrustedKey,
  type VexComponent,
} from '@trivy-airgap/format';
import { ImporterError, TAMPERED_HINT, abortedError, fromTarReadError, throwIfAborted } from './errors.js';
import { checkBundleContent } from './oci-content.js';
import { checkTrust, type PolicyOptions, type TrustedBundle, type VerificationCheck } from './policy.js';
import { openBundle, type BundleInput } from './source.js';

/**
 * The one streaming pass over a bundle (docs/bundle-format.md): gunzip → strict tar parse →
 * manifest.json first (size-capped) → manifest.json.sig second, verified against the trusted keys
 * and the expiry policy BEFORE any content entry is read → each content entry checked (listed,
 * not a duplicate, in order, a regular file at a safe path, header size = listed size, sha256
 * while streaming) and handed to a sink → missing entries detected at the end. Sinks may write
 * (import) or not (verify); nothing a sink produced may be used before `readBundle` resolves.
 */

/** What a content entry is for, so a sink knows what to do with it. */
export type EntryRole =
  | { readonly kind: 'layer'; readonly component: OciComponent }
  | { readonly kind: 'oci-manifest'; readonly component: OciComponent }
  | { readonly kind: 'vex-manifest'; readonly component: VexComponent }
  | { readonly kind: 'vex-archive'; readonly component: VexComponent }
  | { readonly kind: 'oci-index' }
  | { readonly kind: 'other' };

/** Receives one entry's bytes. `end` runs before the digest is known to be right: stage only. */
export interface EntrySink {
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
  /** Called instead of `end` (or after it) when the entry or the bundle failed. */
  abort(): Promise<void>;
}

export interface ReadBundleOptions extends PolicyOptions {
  readonly trustedKeys: readonly TrustedKey[];
  readonly onProgress?: ProgressListener;
  /** Runs once signature and policy passed, before the first content entry is read. */
  readonly onTrusted?: (bundle: TrustedBundle) => Promise<void>;
  /** A sink for a content entry, or undefined to only verify it. */
  readonly openEntry?: (file: BundleFile, role: EntryRole) => Promise<EntrySink | undefined>;
  /** Standard input, for `-`. */
  readonly stdin?: Readable;
  /** Stops the pass (Ctrl-C): it then rejects with ABORTED; sinks are aborted. */
  readonly signal?: AbortSignal;
}

export interface ReadBundleResult extends TrustedBundle {
  readonly checks: readonly VerificationCheck[];
  /** Small content entries kept in memory (OCI manifests, index.json, VEX manifests), verified. */
  readonly smallFiles: ReadonlyMap<string, Buffer>;
  /** Compressed bytes read and tar bytes parsed. */
  readonly bytesRead: number;
  readonly tarBytes: number;
  readonly label: string;
}

const MAX_SIGNATURE_BYTES = 16 * 1024;
/** Emit a progress event at most every this many bytes. */
const PROGRESS_STEP = 1024 * 1024;
const MAX_SMALL_FILE_BYTES = 4 * 1024 * 1024;
/** Slack for tar framing beyond headers and padding: end blocks and record padding (20 blocks). */
const TAR_SLACK = 20 * 512 + 2048;

function entryBlocks(size: number): number {
  // header + one possible pax header pair + padded body
  return 3 * 512 + Math.ceil(size / 512) * 512;
}

/** The most inflated tar bytes a bundle with this manifest can legitimately have. */
export function tarSizeLimit(manifest: BundleManifest, manifestSize: number, signatureSize: number): number {
  let total = entryBlocks(manifestSize) + entryBlocks(signatureSize) + TAR_SLACK;
  for (const file of manifest.files) total += entryBlocks(file.size);
  return total;
}

export function rolesOf(manifest: BundleManifest): Map<string, EntryRole> {
  const roles = new Map<string, EntryRole>();
  for (const component of manifest.components) {
    if (component.kind === 'vex') {
      roles.set(component.manifestPath, { kind: 'vex-manifest', component });
      roles.set(component.archivePath, { kind: 'vex-archive', component });
    } else {
      roles.set(blobPath(component.layer.digest), { kind: 'layer', component });
      roles.set(blobPath(component.manifest.digest), { kind: 'oci-manifest', component });
    }
  }
  roles.set('oci/index.json', { kind: 'oci-index' });
  return roles;
}

function pass(checks: VerificationCheck[], check: string, subject: string, detail: string): void {
  checks.push({ check, subject, ok: true, detail });
}

async function expectEntry(tar: TarReader, name: string, why: string): Promise<TarEntry> {
  const entry = await tar.next();
  if (entry === undefined) {
    throw new ImporterError('BUNDLE_ENTRY_MISSING', `the bundle has no ${name} (${why})`, {
      path: name,
      hint: TAMPERED_HINT,
    });
  }
  return entry;
}

function assertRegular(entry: TarEntry): void {
  if (entry.type !== 'File') {
    throw new ImporterError(
      'BUNDLE_ENTRY_UNSAFE',
      `bundle entry ${JSON.stringify(entry.path)} is a ${entry.type}, but a bundle holds only regular files`,
      { path: entry.path, hint: TAMPERED_HINT },
    );
  }
  const problem = bundlePathProblem(entry.path);
  if (problem !== undefined) {
    throw new ImporterError('BUNDLE_ENTRY_UNSAFE', `bundle entry ${JSON.stringify(entry.path)} ${problem}`, {
      path: entry.path,
      hint: TAMPERED_HINT,
    });
  }
}

/** Reads manifest.json (and its signature bytes) from the head of the tar. */
async function readHead(
  tar: TarReader,
  checks: VerificationCheck[],
): Promise<{
  manifest: BundleManifest;
  manifestBytes: Buffer;
  signatureBytes: Buffer | undefined;
  next: TarEntry | undefined;
}> {
  const first = await expectEntry(tar, MANIFEST_PATH, 'it must be the first entry');
  if (first.path !== MANIFEST_PATH) {
    throw new ImporterError(
      'BUNDLE_ENTRY_ORDER',
      `the first bundle entry is ${JSON.stringify(first.path)}, but must be ${MANIFEST_PATH}`,
      { path: first.path, hint: TAMPERED_HINT },
    );
  }
  assertRegular(first);
  if (first.size > MAX_MANIFEST_BYTES) {
    throw new ImporterError(
      'BUNDLE_CORRUPT',
      `${MANIFEST_PATH} is ${first.size} bytes, over the ${MAX_MANIFEST_BYTES} cap`,
      {
        path: MANIFEST_PATH,
        hint: TAMPERED_HINT,
      },
    );
  }
  const manifestBytes = await tar.readAll(first, MAX_MANIFEST_BYTES);
  if (manifestBytes.length !== first.size) {
    throw new ImporterError('BUNDLE_CORRUPT', `${MANIFEST_PATH} is truncated`, {
      path: MANIFEST_PATH,
      hint: TAMPERED_HINT,
    });
  }
  const manifest = parseManifestBytes(manifestBytes);
  pass(
    checks,
    'manifest',
    MANIFEST_PATH,
    `first entry, ${manifestBytes.length} bytes, valid ${manifest.mediaType}`,
  );
  const second = await tar.next();
  if (second?.path !== SIGNATURE_PATH)
    return { manifest, manifestBytes, signatureBytes: undefined, next: second };
  assertRegular(second);
  if (manifest.signer === null) {
    throw new ImporterError(
      'BUNDLE_ENTRY_UNLISTED',
      `the manifest says the bundle is unsigned, yet it has ${SIGNATURE_PATH}`,
      {
        path: SIGNATURE_PATH,
        hint: TAMPERED_HINT,
      },
    );
  }
  const signatureBytes = await tar.readAll(second, MAX_SIGNATURE_BYTES);
  return { manifest, manifestBytes, signatureBytes, next: await tar.next() };
}

export interface BundleHead {
  readonly manifest: BundleManifest;
  readonly manifestBytes: Buffer;
  readonly signatureBytes: Buffer | undefined;
  readonly label: string;
  readonly size: number | undefined;
}

/** Reads only the manifest and signature (for inspect); stops reading the bundle there. */
export async function readBundleHead(input: BundleInput, stdin?: Readable): Promise<BundleHead> {
  const opened = await openBundle(input, stdin);
  const tar = new TarReader(opened.stream, {
    framing: 'bundle',
    label: `bundle ${opened.label}`,
    mapError: fromTarReadError,
    limit: () => MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + 64 * 1024,
  });
  try {
    const head = await readHead(tar, []);
    return { ...head, label: opened.label, size: opened.size };
  } finally {
    tar.close();
  }
}

/** Reads and verifies a whole bundle in one pass (see the top of this file). */
export async function readBundle(input: BundleInput, options: ReadBundleOptions): Promise<ReadBundleResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const opened = await openBundle(input, options.stdin);
  let limit = MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + 64 * 1024;
  const tar = new TarReader(opened.stream, {
    framing: 'bundle',
    label: `bundle ${opened.label}`,
    mapError: fromTarReadError,
    limit: () => limit,
  });
  const checks: VerificationCheck[] = [];
  const smallFiles = new Map<string, Buffer>();
  let sink: EntrySink | undefined;
  const onAbort = (): void => tar.fail(abortedError());
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    throwIfAborted(options.signal);
    onProgress({ type: 'task-start', task: 'bundle', label: `verify ${opened.label}` });
    const head = await readHead(tar, checks);
    const trusted = checkTrust(
      head.manifestBytes,
      head.manifest,
      head.signatureBytes,
      options.trustedKeys,
      options,
      checks,
      onProgress,
    );
    const manifest = trusted.manifest;
    limit = tarSizeLimit(manifest, head.manifestBytes.length, head.signatureBytes?.length ?? 0);
    await options.onTrusted?.(trusted);
    throwIfAborted(options.signal);

    const listed = new Map(manifest.files.map((file) => [file.path, file]));
    // Progress counts verified content bytes against the declared total (known for stdin too).
    const total = manifest.files.reduce((sum, file) => sum + file.size, 0);
    let done = 0;
    let reported = 0;
    onProgress({ type: 'task-progress', task: 'bundle', done, total });
    const roles = rolesOf(manifest);
    const seen = new Set<string>();
    let previous = '';
    for (let entry = head.next; entry !== undefined; entry = await tar.next()) {
      assertRegular(entry);
      const file = listed.get(entry.path);
      if (entry.path === MANIFEST_PATH || entry.path === SIGNATURE_PATH || seen.has(entry.path)) {
        throw new ImporterError(
          'BUNDLE_ENTRY_DUPLICATE',
          `bundle entry ${JSON.stringify(entry.path)} appears twice`,
          {
            path: entry.path,
            hint: TAMPERED_HINT,
          },
        );
      }
      if (file === undefined) {
        throw new ImporterError(
          'BUNDLE_ENTRY_UNLISTED',
          `bundle entry ${JSON.stringify(entry.path)} is not listed in the signed manifest`,
          { path: entry.path, hint: TAMPERED_HINT },
        );
      }
      if (Buffer.compare(Buffer.from(entry.path), Buffer.from(previous)) <= 0) {
        throw new ImporterError(
          'BUNDLE_ENTRY_ORDER',
          `bundle entry ${JSON.stringify(entry.path)} comes after ${JSON.stringify(previous)}: entries must be sorted`,
          { path: entry.path, hint: TAMPERED_HINT },
        );
      }
      if (entry.size !== file.size) {
        throw new ImporterError(
          'BUNDLE_SIZE_MISMATCH',
          `bundle entry ${entry.path} is ${entry.size} bytes, the manifest says ${file.size}`,
          { path: entry.path, expected: file.size, found: entry.size, hint: TAMPERED_HINT },
        );
      }
      seen.add(entry.path);
      previous = entry.path;
      const role = roles.get(entry.path) ?? { kind: 'other' as const };
      const keep = role.kind === 'oci-manifest' || role.kind === 'oci-index' || role.kind === 'vex-manifest';
      if (keep && file.size > MAX_SMALL_FILE_BYTES) {
        throw new ImporterError(
          'BUNDLE_CONTENT_INVALID',
          `${entry.path} is too large for what it claims to be`,
          {
            path: entry.path,
          },
        );
      }
      const kept: Buffer[] = [];
      sink = await options.openEntry?.(file, role);
      const hasher = new DigestHasher();
      for await (const chunk of tar.chunks(entry)) {
        hasher.update(chunk);
        done += chunk.length;
        if (done - reported >= PROGRESS_STEP) {
          reported = done;
          onProgress({ type: 'task-progress', task: 'bundle', done, total });
        }
        if (keep) kept.push(chunk);
        if (sink !== undefined) await sink.write(chunk);
      }
      if (hasher.size !== file.size) {
        throw new ImporterError(
          'BUNDLE_CORRUPT',
          `bundle entry ${entry.path} is truncated (${hasher.size} of ${file.size} bytes)`,
          {
            path: entry.path,
            expected: file.size,
            found: hasher.size,
            hint: TAMPERED_HINT,
          },
        );
      }
      const digest = hasher.digest();
      if (digest !== file.digest) {
        throw new ImporterError(
          'BUNDLE_DIGEST_MISMATCH',
          `bundle entry ${entry.path} has digest ${digest}, the manifest says ${file.digest}`,
          {
            path: entry.path,
            expected: file.digest,
            found: digest,
            hint: TAMPERED_HINT,
          },
        );
      }
      if (sink !== undefined) {
        const current = sink;
        sink = undefined;
        try {
          await current.end();
        } catch (error) {
          await current.abort();
          throw error;
        }
      }
      if (keep) smallFiles.set(entry.path, Buffer.concat(kept));
      pass(checks, 'entry', entry.path, `listed, regular file, ${file.size} bytes, ${file.digest}`);
    }
    const missing = manifest.files.filter((file) => !seen.has(file.path));
    if (missing.length > 0) {
      throw new ImporterError(
        'BUNDLE_ENTRY_MISSING',
        `the bundle lacks ${missing.length} listed entr${missing.length === 1 ? 'y' : 'ies'}: ${missing
          .slice(0, 5)
          .map((file) => file.path)
          .join(', ')}${missing.length > 5 ? ', …' : ''}`,
        { path: missing[0]?.path ?? '', hint: TAMPERED_HINT },
      );
    }
    pass(checks, 'complete', 'bundle', `all ${manifest.files.length} listed entries present, none extra`);
    checkBundleContent(manifest, smallFiles, checks);
    onProgress({
      type: 'task-done',
      task: 'bundle',
      summary: `${manifest.files.length} entries, ${total} bytes verified (${
        // An unsigned bundle (--allow-unsigned) must not read as if its signature was checked.
        trusted.signature === null
          ? 'sizes, sha256; UNSIGNED, origin not verified'
          : 'signature, sizes, sha256'
      })`,
    });
    return {
      ...trusted,
      checks,
      smallFiles,
      bytesRead: tar.sourceBytes,
      tarBytes: tar.bytes,
      label: opened.label,
    };
  } catch (error) {
    onProgress({
      type: 'task-fail',
      task: 'bundle',
      reason: error instanceof Error ? error.message : String(error),
    });
    await sink?.abort();
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    tar.close();
  }
}

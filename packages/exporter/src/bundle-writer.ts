import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AirgapError,
  DigestHasher,
  MANIFEST_PATH,
  SIGNATURE_PATH,
  bundlePathProblem,
  digestHex,
  digestOfBytes,
  fileSystemError,
  ignoreProgress,
  parseManifest,
  serializeManifest,
  signBytes,
  type BundleFile,
  type BundleManifest,
  type Digest,
  type ProgressListener,
  type SigningKey,
  formatBytes,
} from '@trivy-airgap/format';
import { ExporterError } from './errors.js';
import { OutputSink, partPath, type WrittenFile } from './output-sink.js';
import { StoredGzipFramer } from './stored-gzip.js';
import { TAR_END, tarEntrySize, tarFileHeader, tarPadding } from './tar-writer.js';

/** Work-dir files are read in 1 MiB chunks: 4 MiB reads were slower (cache misses). */
const READ_CHUNK = 1024 * 1024;
/** Entries smaller than this may be given as bytes in memory; anything larger must be a file. */
const MAX_IN_MEMORY_ENTRY = 16 * 1024 * 1024;

/** One file of the bundle other than manifest.json and its signature. */
export interface BundleEntry {
  /** Bundle path (docs/bundle-format.md), e.g. `oci/blobs/sha256/<hex>`. */
  readonly path: string;
  readonly size: number;
  readonly digest: Digest;
  /**
   * Where the bytes are: a file on disk (streamed, never buffered), small bytes in memory, or a
   * producer that writes them while the bundle is written (a download straight from the registry:
   * see BundleStream).
   */
  readonly source:
    { readonly file: string } | { readonly bytes: Uint8Array } | { readonly stream: BundleStream };
  /**
   * Hash the bytes again while packing and refuse a mismatch. For files that were not verified
   * by this process (reused from an earlier export's work dir); sizes are always enforced.
   */
  readonly verify?: boolean;
}

/**
 * Produces an entry's bytes while the bundle is written: calls `write` with each chunk in order
 * (awaiting it: backpressure) and resolves once every byte was written AND checked against the
 * entry's digest, or rejects (then the bundle is discarded). `write` rejects once the bundle
 * write has stopped; the producer then stops too.
 */
export type BundleStream = (write: (chunk: Buffer) => Promise<void>) => Promise<void>;

/** The manifest fields the caller decides; `signer` and `files` are filled in by the writer. */
export type ManifestDraft = Omit<BundleManifest, 'signer' | 'files'>;

export interface WriteBundleOptions {
  /** Final bundle path (`trivy-bundle.tgz`); parts, `.sha256` and `.sha256.sig` go beside it. */
  readonly output: string;
  readonly manifest: ManifestDraft;
  readonly entries: readonly BundleEntry[];
  /** The signing key; `null` writes an unsigned bundle (no manifest.json.sig, no .sha256.sig). */
  readonly signingKey: SigningKey | null;
  /** Tar mtime of every entry; defaults to the manifest's `created` (callers pass SOURCE_DATE_EPOCH). */
  readonly mtime?: Date;
  /** Cut the bundle into parts of at most this many bytes (`<bundle>.part-000`, …). */
  readonly splitSize?: number;
  /** Replace an existing output (and remove stale parts of an earlier split). */
  readonly force?: boolean;
  /**
   * Files to carry with the bundle (e.g. the single-file importer, `export --with-tool`): copied
   * beside it under their base name and listed in the signed checksum file after the bundle.
   */
  readonly companions?: readonly string[];
  readonly onProgress?: ProgressListener;
  readonly signal?: AbortSignal;
}

export interface WrittenBundle {
  /** The bundle path (for a split bundle: the name the parts rejoin to; that file is not written). */
  readonly path: string;
  /** Size and sha256 of the whole gzip stream (the bundle, or the parts joined). */
  readonly size: number;
  readonly digest: Digest;
  /** The files written: the bundle alone, or its parts in order. */
  readonly files: readonly WrittenFile[];
  readonly checksumPath: string;
  /** The companion files as written beside the bundle (also listed in the checksum file). */
  readonly companions: readonly WrittenFile[];
  /** `<bundle>.sha256.sig`, or null for an unsigned bundle. */
  readonly checksumSignaturePath: string | null;
  /** The manifest as written, its exact bytes and their digest. */
  readonly manifest: BundleManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDigest: Digest;
}

/** Bundle paths sort by their UTF-8 bytes (docs/bundle-format.md: "sorted by path (byte order)"). */
export function compareBundlePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The checksum file's text: GNU `sha256sum -c` format, `<hex>  <file name>` per line. */
export function checksumFileText(files: readonly WrittenFile[]): string {
  return files.map((file) => `${digestHex(file.digest)}  ${basename(file.path)}\n`).join('');
}

/** Builds the complete manifest from the draft, the signer and the sorted entry list. */
export function completeManifest(
  draft: ManifestDraft,
  signingKey: SigningKey | null,
  entries: readonly BundleEntry[],
): BundleManifest {
  const files: BundleFile[] = [...entries]
    .sort((a, b) => compareBundlePaths(a.path, b.path))
    .map((entry) => ({ path: entry.path, size: entry.size, digest: entry.digest }));
  // Key order as declared in BundleManifest, so the bytes are stable whatever the draft's order.
  return {
    mediaType: draft.mediaType,
    bundleId: draft.bundleId,
    created: draft.created,
    expires: draft.expires,
    tool: { name: draft.tool.name, version: draft.tool.version },
    signer: signingKey === null ? null : { keyId: signingKey.keyId, algorithm: signingKey.algorithm },
    trivyVersions: draft.trivyVersions,
    components: draft.components,
    files,
  };
}

/** The files an export to `output` may create (the parts are found by listing the directory). */
async function existingOutputs(output: string): Promise<string[]> {
  const found: string[] = [];
  for (const path of [output, `${output}.sha256`, `${output}.sha256.sig`]) {
    if (await exists(path)) found.push(path);
  }
  const partPattern = partName(output);
  try {
    for (const entry of await readdir(dirname(output))) {
      if (partPattern.test(entry)) found.push(`${dirname(output)}/${entry}`);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return found;
}

/**
 * Refuses (OUTPUT_EXISTS) when the bundle, one of its parts or its checksum file exists and
 * `force` is not set. The exporter calls this before downloading anything, so a mistake costs
 * nothing; the writer calls it again just before writing.
 */
export async function assertOutputFree(output: string, force: boolean): Promise<void> {
  if (force) return;
  const found = await existingOutputs(output);
  if (found.length > 0) {
    throw new ExporterError('OUTPUT_EXISTS', `${found[0] ?? output} already exists`, {
      hint: 'choose another -o path, or pass --force to replace it',
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function checkEntries(entries: readonly BundleEntry[]): void {
  const seen = new Set<string>();
  for (const entry of entries) {
    const problem = bundlePathProblem(entry.path);
    if (problem !== undefined) {
      throw new ExporterError('ENTRY_MISMATCH', `bundle path ${JSON.stringify(entry.path)} ${problem}`);
    }
    if (entry.path === MANIFEST_PATH || entry.path === SIGNATURE_PATH || seen.has(entry.path)) {
      throw new ExporterError('ENTRY_MISMATCH', `bundle path ${entry.path} is reserved or listed twice`);
    }
    seen.add(entry.path);
    if ('bytes' in entry.source) {
      if (entry.source.bytes.byteLength > MAX_IN_MEMORY_ENTRY) {
        throw new ExporterError('ENTRY_MISMATCH', `${entry.path}: large entries must be files`);
      }
      if (
        entry.source.bytes.byteLength !== entry.size ||
        digestOfBytes(entry.source.bytes) !== entry.digest
      ) {
        throw new ExporterError('ENTRY_MISMATCH', `${entry.path}: bytes differ from the declared digest`);
      }
    }
  }
}

/**
 * The bytes of a work-dir file, exactly `size` of them: a longer or shorter file is refused, and
 * (with `verify`) so are bytes that do not hash to `digest`. Errors carry expected and found. The
 * work dir is a cache written without fsync: a copy found damaged (a crash tore it) is removed, so
 * the next export downloads it anew instead of failing on it again.
 */
async function* guardedFile(entry: BundleEntry, progress: (bytes: number) => void): AsyncGenerator<Buffer> {
  const file = (entry.source as { file: string }).file;
  const hasher = entry.verify === true ? new DigestHasher() : undefined;
  const mismatch = async (what: string, expected: string, found: string): Promise<ExporterError> => {
    await rm(file, { force: true }).catch(() => undefined);
    return new ExporterError(
      'WORK_DIR_CORRUPT',
      `${entry.path}: the work dir copy has the wrong ${what} (expected ${expected}, found ${found}); it was removed`,
      { expected, found, hint: 'export again: it downloads that file anew' },
    );
  };
  let count = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) {
    const bytes = chunk as Buffer;
    count += bytes.length;
    if (count > entry.size) throw await mismatch('size', String(entry.size), `more than ${entry.size}`);
    hasher?.update(bytes);
    progress(bytes.length);
    yield bytes;
  }
  if (count !== entry.size) throw await mismatch('size', String(entry.size), String(count));
  const digest = hasher?.digest();
  if (digest !== undefined && digest !== entry.digest) throw await mismatch('digest', entry.digest, digest);
}

/**
 * Writes a streamed entry: its producer calls `write` with each chunk, which goes straight into
 * the bundle (no queue, no copy; the producer waits for it: backpressure). Exactly `size` bytes,
 * and the entry ends only once the producer resolved, i.e. after its own check of the digest; if
 * that fails the bundle write fails and the temp output is discarded, so no bundle holds
 * unverified bytes. A failure of the bundle side stops the producer (its `write` rejects) and is
 * the error thrown, whatever the producer makes of the stop.
 */
async function writeStreamedEntry(
  entry: BundleEntry,
  produce: BundleStream,
  put: (chunk: Buffer) => Promise<void>,
  progress: (bytes: number) => void,
): Promise<void> {
  let count = 0;
  let failure: { error: unknown } | undefined;
  const write = async (chunk: Buffer): Promise<void> => {
    if (failure !== undefined) throw stopped(entry);
    try {
      if (count + chunk.length > entry.size) {
        throw new ExporterError(
          'ENTRY_MISMATCH',
          `${entry.path}: more than the ${entry.size} bytes declared`,
          {
            expected: String(entry.size),
            found: `more than ${entry.size}`,
          },
        );
      }
      count += chunk.length;
      progress(chunk.length);
      await put(chunk);
    } catch (error) {
      failure = { error };
      throw stopped(entry);
    }
  };
  try {
    await produce(write);
  } catch (error) {
    throw failure === undefined ? error : failure.error;
  }
  if (failure !== undefined) throw failure.error; // a producer that swallowed the stop
  if (count !== entry.size) {
    throw new ExporterError('ENTRY_MISMATCH', `${entry.path}: ${count} bytes, ${entry.size} declared`, {
      expected: String(entry.size),
      found: String(count),
    });
  }
}

function stopped(entry: BundleEntry): ExporterError {
  return new ExporterError('ABORTED', `${entry.path}: the bundle write stopped`);
}

/**
 * Writes a bundle (docs/bundle-format.md): one tar stream with manifest.json first,
 * manifest.json.sig second, then every entry sorted by path; regular files only, mode 0644,
 * uid/gid 0, no user or group names, one fixed mtime; stored gzip around it (see stored-gzip.ts). Blobs are streamed from disk, never held in memory. The output is written
 * under temp names and renamed at the end, then `<bundle>.sha256` and `<bundle>.sha256.sig`.
 * The same inputs (and mtime) give the same bytes: ECDSA signatures use RFC 6979 nonces.
 */
export async function writeBundle(options: WriteBundleOptions): Promise<WrittenBundle> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const output = options.output;
  const force = options.force === true;
  if (
    options.splitSize !== undefined &&
    (!Number.isSafeInteger(options.splitSize) || options.splitSize < 1)
  ) {
    throw new ExporterError('INVALID_OPTION', `split size must be a positive number of bytes`);
  }
  checkEntries(options.entries);
  const manifest = completeManifest(options.manifest, options.signingKey, options.entries);
  const manifestBytes = serializeManifest(manifest);
  // Never write a bundle our own importer would refuse: run the reader's validation on it.
  parseManifest(JSON.parse(manifestBytes.toString('utf8')));
  const signature = options.signingKey === null ? undefined : signBytes(manifestBytes, options.signingKey);
  const mtime = options.mtime ?? new Date(manifest.created);
  const sorted = [...options.entries].sort((a, b) => compareBundlePaths(a.path, b.path));

  await assertOutputFree(output, force);
  const previous = force ? await existingOutputs(output) : [];
  const companions = await planCompanions(output, options.companions ?? [], force);

  const leading: { name: string; bytes: Buffer }[] = [{ name: MANIFEST_PATH, bytes: manifestBytes }];
  if (signature !== undefined) leading.push({ name: SIGNATURE_PATH, bytes: signature });
  const total =
    leading.reduce((sum, entry) => sum + tarEntrySize(entry.name, entry.bytes.length), 0) +
    sorted.reduce((sum, entry) => sum + tarEntrySize(entry.path, entry.size), 0) +
    TAR_END.length;
  const task = 'bundle';
  onProgress({ type: 'task-start', task, label: `writing ${basename(output)}`, total });

  let done = 0;
  let lastReport = 0;
  const progress = (bytes: number) => {
    done += bytes;
    if (done - lastReport >= 4 * 1024 * 1024) {
      lastReport = done;
      onProgress({ type: 'task-progress', task, done, total });
    }
  };
  const sink = new OutputSink(output, options.splitSize);
  const framer = new StoredGzipFramer(total);
  const signal = options.signal;
  const put = async (chunk: Buffer): Promise<void> => {
    if (signal?.aborted === true) throw new ExporterError('ABORTED', 'the export was cancelled');
    await sink.write(framer.frame(chunk));
  };
  try {
    await sink.write([framer.header()]);
    for (const entry of leading) {
      await put(tarFileHeader(entry.name, entry.bytes.length, mtime));
      await put(entry.bytes);
      await put(tarPadding(entry.bytes.length));
    }
    for (const entry of sorted) {
      await put(tarFileHeader(entry.path, entry.size, mtime));
      if ('bytes' in entry.source) await put(Buffer.from(entry.source.bytes));
      else if ('stream' in entry.source) await writeStreamedEntry(entry, entry.source.stream, put, progress);
      else for await (const chunk of guardedFile(entry, progress)) await put(chunk);
      await put(tarPadding(entry.size));
    }
    await put(TAR_END);
    await sink.write(framer.trailer());
    await sink.finish();
  } catch (error) {
    await sink.discard();
    throw wrapWriteError(error, output, signal);
  }
  onProgress({ type: 'task-progress', task, done: total, total });

  const whole = sink.total;
  const checksumPath = `${output}.sha256`;
  const checksumSignaturePath = signature === undefined ? null : `${output}.sha256.sig`;
  const copied: { file: WrittenFile; temp: string | undefined }[] = [];
  try {
    for (const companion of companions) copied.push(await copyCompanion(companion.source, companion.target));
    const listed = [...sink.files, ...copied.map((entry) => entry.file)];
    const checksumText = Buffer.from(checksumFileText(listed), 'utf8');
    const temp = `${checksumPath}.tmp-${process.pid}`;
    await writeFile(temp, checksumText, { mode: 0o644 });
    let tempSig: string | undefined;
    if (checksumSignaturePath !== null && options.signingKey !== null) {
      tempSig = `${checksumSignaturePath}.tmp-${process.pid}`;
      await writeFile(tempSig, signBytes(checksumText, options.signingKey), { mode: 0o644 });
    }
    await sink.commit();
    for (const entry of copied) if (entry.temp !== undefined) await rename(entry.temp, entry.file.path);
    await rename(temp, checksumPath);
    if (tempSig !== undefined && checksumSignaturePath !== null) await rename(tempSig, checksumSignaturePath);
    // With --force, leftovers of an earlier export to the same name would confuse `cat` and readers.
    const keep = new Set([...sink.files.map((file) => file.path), checksumPath, checksumSignaturePath]);
    for (const path of previous) if (!keep.has(path)) await rm(path, { force: true });
  } catch (error) {
    await sink.discard();
    for (const entry of copied) if (entry.temp !== undefined) await rm(entry.temp, { force: true });
    throw wrapWriteError(error, output, options.signal);
  }
  onProgress({
    type: 'task-done',
    task,
    summary: `${formatBytes(whole.size)}, sha256:${digestHex(whole.digest).slice(0, 12)}${
      sink.files.length > 1 || options.splitSize !== undefined
        ? `, ${sink.files.length} part${sink.files.length === 1 ? '' : 's'}`
        : ''
    }`,
  });
  return {
    path: output,
    size: whole.size,
    digest: whole.digest,
    files: sink.files,
    companions: copied.map((entry) => entry.file),
    checksumPath,
    checksumSignaturePath,
    manifest,
    manifestBytes,
    manifestDigest: digestOfBytes(manifestBytes),
  };
}

/** Where each companion goes (beside the bundle), refusing clashes and existing files without force. */
async function planCompanions(
  output: string,
  sources: readonly string[],
  force: boolean,
): Promise<{ source: string; target: string }[]> {
  const plans: { source: string; target: string }[] = [];
  const reserved = new Set([output, `${output}.sha256`, `${output}.sha256.sig`]);
  for (const source of sources) {
    const target = join(dirname(output), basename(source));
    if (reserved.has(target) || partName(output).test(basename(target))) {
      throw new ExporterError(
        'INVALID_OPTION',
        `${basename(source)} would clash with the bundle's own files`,
      );
    }
    reserved.add(target);
    if (!force && resolve(source) !== target && (await exists(target))) {
      throw new ExporterError('OUTPUT_EXISTS', `${target} already exists`, {
        hint: 'choose another -o directory, or pass --force to replace it',
      });
    }
    plans.push({ source, target });
  }
  return plans;
}

/** Copies (or, when it already is there, just hashes) a companion; the copy stays a temp file until commit. */
async function copyCompanion(
  source: string,
  target: string,
): Promise<{ file: WrittenFile; temp: string | undefined }> {
  const hasher = new DigestHasher();
  const temp = resolve(source) === target ? undefined : `${target}.tmp-${process.pid}`;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hasher.update(chunk);
      callback(null, chunk);
    },
  });
  try {
    if (temp === undefined) await pipeline(createReadStream(source), hashing, new PassThrough().resume());
    else await pipeline(createReadStream(source), hashing, createWriteStream(temp, { mode: 0o644 }));
  } catch (error) {
    if (temp !== undefined) await rm(temp, { force: true });
    throw (
      fileSystemError(error, { where: dirname(target), elsewhere: 'choose another -o directory' }) ??
      new ExporterError('OUTPUT_FAILED', `cannot copy ${source} beside the bundle`, {
        cause: error,
        path: source,
      })
    );
  }
  return { file: { path: target, size: hasher.size, digest: hasher.digest() }, temp };
}

function partName(output: string): RegExp {
  return new RegExp(`^${escapeRegExp(basename(output))}\\.part-\\d{3,}$`);
}

function wrapWriteError(error: unknown, output: string, signal: AbortSignal | undefined): unknown {
  // Already named (e.g. a streamed entry's source or work dir): not an output failure.
  if (error instanceof AirgapError) return error;
  if (signal?.aborted === true)
    return new ExporterError('ABORTED', 'the export was cancelled', { cause: error });
  const detail = error instanceof Error ? error.message : String(error);
  return (
    fileSystemError(error, { where: output, elsewhere: 'choose another -o path' }) ??
    new ExporterError('OUTPUT_FAILED', `cannot write ${output}: ${detail}`, { cause: error, path: output })
  );
}

export { partPath };

// The public surface of @trivy-airgap/format: what the other packages and the CLI use (README.md).
// Everything else stays inside; tests reach internals through their own module paths.

export {
  AirgapError,
  FORMAT_ERROR_CODES,
  FormatError,
  TAR_READ_ERROR_CODES,
  TarReadError,
  type AirgapErrorOptions,
  type ErrorCategory,
  type ErrorCodeTable,
  type ErrorContext,
  type FieldIssue,
  type FormatErrorCode,
  type TarReadErrorCode,
} from './errors.js';
export {
  FILE_SYSTEM_ERROR_CODES,
  FileSystemError,
  asFileSystemError,
  fileSystemError,
  type FileSystemErrorCode,
  type FileSystemErrorContext,
} from './file-system-errors.js';
export {
  DigestHasher,
  digestFromIntegrity,
  digestHex,
  digestOfBytes,
  digestToIntegrity,
  isDigest,
  parseDigest,
  type Digest,
} from './digest.js';
export { bundlePathProblem, isInside, resolveInside } from './safe-path.js';
export {
  COMPONENT_KINDS,
  OCI_COMPONENT_KINDS,
  MANIFEST_MEDIA_TYPE,
  MANIFEST_PATH,
  MAX_BUNDLE_FILES,
  MAX_MANIFEST_BYTES,
  SIGNATURE_PATH,
  blobPath,
  isRfc3339,
  isVexRepositoryName,
  parseManifest,
  parseManifestBytes,
  serializeManifest,
  type BundleFile,
  type BundleManifest,
  type Component,
  type ComponentKind,
  type Descriptor,
  type OciComponent,
  type OciComponentKind,
  type SignatureAlgorithm,
  type UpstreamDbMetadata,
  type VexComponent,
} from './manifest.js';
export {
  KEY_TYPES,
  generateKeyPair,
  loadSigningKey,
  loadTrustedKey,
  opensslVerifyArgs,
  signBytes,
  verifySignature,
  type GeneratedKeyPair,
  type KeyType,
  type SigningKey,
  type TrustedKey,
  type VerifiedSignature,
} from './signing.js';
export { formatBytes, ignoreProgress, type ProgressEvent, type ProgressListener } from './events.js';
export { BUNDLE_GZIP_HEADER, TAR_BLOCK, TAR_RECORD } from './framing.js';
export { TarReader, type TarEntry, type TarReaderOptions } from './tar-reader.js';

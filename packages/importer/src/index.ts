// The public surface of @trivy-airgap/importer: what the CLI uses (README.md).
// Everything else stays inside; tests reach internals through their own module paths.

export { IMPORTER_ERROR_CODES, ImporterError, type ImporterErrorCode } from './errors.js';
export type { BundleInput } from './source.js';
export { defaultTrustDirs, type TrustOptions } from './trust.js';
export type { PolicyOptions, VerificationCheck } from './policy.js';
export { verifyBundle, type VerifyBundleOptions, type VerifyBundleResult } from './verify.js';
export {
  inspectBundle,
  type ComponentSummary,
  type InspectBundleOptions,
  type InspectBundleResult,
  type SignatureStatus,
} from './inspect.js';
export {
  importBundle,
  type ImportBundleOptions,
  type ImportBundleResult,
  type InstalledComponent,
} from './install.js';
export { repairCache } from './cache.js';
export { rollback, type RollbackOptions, type RollbackResult, type RolledBackComponent } from './rollback.js';
export {
  cacheStatus,
  parseDuration,
  type CacheStatus,
  type CacheStatusOptions,
  type ChangedComponent,
  type LockedBy,
  type StaleComponent,
} from './status.js';
export { PUBLISH_ERROR_CODES, PublishError, type PublishErrorCode } from './publish/errors.js';
export { describeBlobs, type PushedArtifact, type PushedBlob } from './publish/to-registry.js';
export type { ServedVexRepository, VexServeDirResult } from './publish/vex-serve-dir.js';
export {
  publishBundle,
  type PublishBundleOptions,
  type PublishBundleResult,
  type RegistryPublishResult,
  type ToRegistryOptions,
  type VexServeOptions,
} from './publish/publish.js';

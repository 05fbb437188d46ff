// The public surface of @trivy-airgap/trivy: what the other packages and the CLI use (README.md).
// Everything else stays inside; tests reach internals through their own module paths.

export { TRIVY_ERROR_CODES, TrivyError, type TrivyErrorCode } from './errors.js';
export {
  ARTIFACT_KINDS,
  COMPONENTS,
  COMPONENT_KINDS,
  SCAN_SETTINGS,
  componentCachePath,
  perKind,
  type ArtifactFacts,
  type ComponentFacts,
  type DatabaseStatusRule,
  type OfflineSetting,
  type UnpackLimits,
  type VexFacts,
} from './components.js';
export { type ByRelease } from './versions.js';
export {
  ARTIFACTS,
  CREATED_ANNOTATION,
  DEFAULT_VEX_REPOSITORY,
  VERSION_ANNOTATION,
  checkArtifactManifest,
  checksMajorVersion,
  defaultSources,
  normalizeRepository,
  parseTrivyVersion,
  type ArtifactKind,
  type CheckedArtifact,
  type DefaultSources,
  type TrivyVersion,
} from './artifacts.js';
export { dbSchemaProblem, parseDbMetadata } from './metadata.js';
export { resolveCacheDirDetailed, resolveVexConfigPath, type ResolvedCacheDir } from './cache-dir.js';
export {
  renderDbMetadata,
  renderPolicyMetadata,
  renderVexCacheJson,
  type DbMetadataFields,
} from './render.js';
export { mergeRepositoryYaml, readRepositoryYaml, type ImportedVexRepository } from './repository-yaml.js';
export {
  MAX_VEX_MANIFEST_BYTES,
  VEX_SPEC_VERSION,
  WELL_KNOWN_VEX_MANIFEST,
  parseLocationUrl,
  parseVexIndex,
  parseVexRepositoryManifest,
  vexManifestRequest,
  type VexRepositoryManifest,
} from './vex.js';
export { checkVexArchive, collisionKey, extractVexArchive, unpackVexArchive } from './vex-archive.js';
export {
  decidesVerdict,
  diagnoseCache,
  offlineComponents,
  readBuildTime,
  type CacheDiagnosis,
  type ComponentDiagnosis,
} from './doctor.js';
export { trivyFallsBack, type RegistryFailure } from './fallback.js';
export {
  offlineSettingOf,
  offlineTrivyFlags,
  shellQuote,
  trivyCapabilities,
  trivyConfigYaml,
  type OfflineFlagsInput,
} from './flags.js';

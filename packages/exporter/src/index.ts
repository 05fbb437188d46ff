// The public surface of @trivy-airgap/exporter: what the CLI uses (README.md).
// Everything else stays inside; tests reach internals through their own module paths.

export { EXPORTER_ERROR_CODES, ExporterError, type ExporterErrorCode } from './errors.js';
export {
  EXPORT_COMPONENT_KINDS,
  exportBundle,
  type ExportComponentKind,
  type ExportedComponent,
  type ExportOptions,
  type ExportResult,
  type RegistryOptions,
} from './export.js';
export type { WrittenFile } from './output-sink.js';
export { parseDuration, parseSize, parseVexRepositorySpecs, type VexRepositorySpec } from './options.js';
export { fetchVexRepository, type FetchedVexRepository, type VexFetchContext } from './vex-component.js';

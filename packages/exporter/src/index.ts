export * from './errors.js';
export * from './bundle-writer.js';
export type { WrittenFile } from './output-sink.js';
export * from './options.js';
export * from './export.js';
export { fetchOciComponent, verifyWithMirrors, COMPONENT_LABELS } from './oci-component.js';
export type { FetchedOciComponent, OciFetchContext, StoredBlob } from './oci-component.js';
export { fetchVexRepository, vexBundlePaths, MAX_VEX_ARCHIVE_BYTES } from './vex-component.js';
export type { FetchedVexRepository, VexFetchContext } from './vex-component.js';

export * from './errors.js';
export * from './bundle-writer.js';
export type { WrittenFile } from './output-sink.js';

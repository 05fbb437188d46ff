export * from './errors.js';
export * from './target.js';
export * from './read.js';
export * from './to-registry.js';
export * from './vex-serve-dir.js';
export * from './publish.js';

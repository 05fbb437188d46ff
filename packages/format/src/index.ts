export * from './errors.js';
export * from './file-system-errors.js';
export * from './digest.js';
export * from './safe-path.js';
export * from './manifest.js';
export * from './signing.js';
export * from './events.js';
export * from './framing.js';

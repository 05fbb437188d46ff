export * from './errors.js';
export * from './trust.js';
export * from './source.js';
export * from './reader.js';
export * from './layer.js';
export * from './content.js';
export * from './verify.js';
